//! Recurring billing, owned by the organisation: the plan catalogue, subscribing through Stripe
//! Checkout, our copy of each subscription kept true through the events inbox, entitlements and
//! the billing banner, plan changes, cancellation and the customer portal, and dunning emails.
//!
//! - `plans.rs`: the catalogue (demo plans come from a migration, like the demo products).
//! - `checkout.rs`: subscribing (one open Checkout Session per org).
//! - `events.rs`: subscription and invoice events, applied by the inbox's processor: each reads
//!   the subscription from Stripe and stores it (`copy.rs`), whatever order events come in.
//! - `facts.rs` (what Stripe's objects say) and `policy.rs` (entitlements, billing status): pure.
//! - `guard.rs`: `RequireEntitlement("feature")`, declared on routes.
//! - `manage.rs`: change plan or seats, cancel, resume, portal; `notices.rs`: the emails.
//! - `recovery.rs`: MRR, MRR at risk, dunning and recovered revenue (operators, Prometheus).
//! - `sweep.rs`: re-reads subscriptions whose period ended unpaid (a missed event).
//! - `stripe.rs`: the Stripe calls; `routes.rs`: HTTP; `config.rs`: `BILLING_*` settings.
//!
//! Its front door: [`RequireEntitlement`] and [`SubscriptionConfig`] for the layer, [`Refusal`] for
//! its error, the recovery gauges for its metrics; [`classify_event`] and [`apply_event`] for the
//! Stripe room's processor, [`sweep_subscriptions`] for the orders room's periodic reconcile.
pub mod checkout;
pub mod config;
pub mod copy;
pub mod events;
pub mod facts;
pub mod guard;
pub mod manage;
pub mod notices;
pub mod plans;
pub mod policy;
pub mod recovery;
pub mod routes;
pub mod stripe;
pub mod sweep;
pub mod views;

pub use config::SubscriptionConfig;
pub use events::{apply as apply_event, classify as classify_event};
pub use guard::RequireEntitlement;
pub use policy::Refusal;
pub use recovery::{MRR_AT_RISK_BY_CURRENCY, MRR_BY_CURRENCY, SUBSCRIPTIONS_BY_STATUS};
pub use sweep::sweep as sweep_subscriptions;
