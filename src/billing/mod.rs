//! Checkout, orders, licences, subscriptions and Stripe webhooks.
//!
//! The front door, for the composition root: [`BillingState`], [`BillingConfig`], [`routes`] and
//! [`operator::routes`] (mounted under `/api/v1`), [`register_jobs`], [`BillingMetrics`]. Its one
//! contact with auth is [`Customer`] (and the guards on its operator routes); with admin, the admin
//! audit trail its operator routes write. Its tables come from the billing migrations README lists
//! under "How to remove a module".
//!
//! The layer is split into rooms, each a folder whose `mod.rs` says what it owns and re-exports
//! what the other rooms may use. A room imports another only through that front door, and never
//! climbs back to this file: what every room shares is the kernel below (`tests/architecture.rs`
//! checks both).
//!
//! - `stripe/`: the Stripe integration. The API client (`stripe_api.rs`, paced by `pacing.rs`),
//!   the webhook's signing scheme and what it stores (`signature.rs`, `event.rs`, `inbox.rs`), the
//!   processor that applies stored events (`processor/`), catching up from the Events API
//!   (`sync.rs`), the operator's review and replay of events, and the dev loop's `trigger.rs`.
//! - `orders/`: one-time orders. Checkout, the order state machine, what an event does to an order
//!   (`events.rs`, `webhook.rs`), licences and receipts (`jobs.rs`), cancelling, reconciling stuck
//!   orders, the catalogue, and the customer's HTTP routes.
//! - `subscriptions/`: recurring billing (plans, the subscription copy, entitlements, dunning).
//! - Invoices will get a room of their own when they come (issue #30); there is no code for them yet.
//!
//! The kernel, shared by every room: `app.rs` ([`BillingState`], [`register_jobs`]), `config.rs`,
//! `error.rs` (one error enum for the layer), `metrics.rs`, `money.rs`, `customer.rs` (the
//! [`Customer`] extractor) and `contact.rs` (the billing email). Above the rooms, and used by none
//! of them: `routes.rs` (the catalogue and the webhook, and it mounts the rooms' routes),
//! `operator.rs` (the operator routes under `/admin`, across rooms) and `seed.rs` (the demo
//! catalogue).
pub mod app;
pub mod config;
pub mod contact;
pub mod customer;
pub mod error;
pub mod metrics;
pub mod money;
pub mod operator;
pub mod orders;
pub mod routes;
pub mod seed;
pub mod stripe;
pub mod subscriptions;

pub use self::stripe::StripeApi;
pub use app::{BillingState, register_jobs};
pub use config::BillingConfig;
pub use customer::Customer;
pub use error::BillingError;
pub use metrics::BillingMetrics;
pub use routes::routes;
pub use subscriptions::RequireEntitlement;
