//! Checkout, orders, licences and Stripe webhooks.
//!
//! The front door, for the composition root: [`BillingState`], [`BillingConfig`], [`routes`] and
//! [`operator::routes`] (mounted under `/api/v1`), [`register_jobs`], [`BillingMetrics`]. Its one
//! contact with auth is [`Customer`] (and the guards on its operator routes); with admin, the admin
//! audit trail its operator routes write. Its tables come from the billing migrations README lists
//! under "How to remove a module".
//!
//! - `routes.rs`: HTTP only (extract, call one function, answer); `operator.rs` the operator routes
//!   under `/admin` (webhook events to review and replay, stuck orders), `review.rs` their list.
//! - `checkout.rs`, `orders.rs` (order rows, locks, applying outcomes), `views.rs` (request and
//!   response types, the customer's reads), `catalogue.rs`: the logic and its SQL.
//! - The Stripe events inbox: `inbox.rs` (the webhook's one durable write, group-committed),
//!   `processor.rs` (claims and applies stored events, retries, dead events), `webhook.rs` (what an
//!   event does to an order), `replay.rs`, `sync.rs` (catching up from Stripe's Events API).
//! - `cancel.rs`: the customer cancels an unpaid order (its Checkout Session expired first).
//! - `state.rs` (the order state machine), `signature.rs` (Stripe's signing scheme), `events.rs`
//!   (what a Stripe event means for an order), `money.rs`: pure, unit-tested without a database.
//! - `jobs.rs`: licence delivery, receipts, licence revocation/suspension.
//! - `reconcile.rs`: stuck orders brought in line with their Checkout Session (and its periodic job).
//! - `stripe_api.rs`: the Stripe calls (async-stripe), pointed at `STRIPE_API_BASE`, all paced by
//!   one limiter (`pacing.rs`) that backs off on 429.
//! - `subscriptions/`: recurring billing (plans, the subscription copy, entitlements, dunning).
//! - `metrics.rs`: its Prometheus series (webhook ack time, processing lag, inbox depth).
pub mod cancel;
pub mod catalogue;
pub mod checkout;
pub mod config;
pub mod contact;
pub mod customer;
pub mod error;
pub mod events;
pub mod inbox;
pub mod jobs;
pub mod metrics;
pub mod money;
pub mod operator;
pub mod orders;
pub mod org_routes;
pub mod pacing;
pub mod personal_routes;
pub mod processor;
pub mod reconcile;
pub mod replay;
pub mod review;
pub mod routes;
pub mod seed;
pub mod signature;
pub mod state;
pub mod stripe_api;
pub mod subscriptions;
pub mod sync;
pub mod trigger;
pub mod views;
pub mod webhook;

pub use config::BillingConfig;
pub use customer::Customer;
pub use error::BillingError;
pub use metrics::BillingMetrics;
pub use routes::routes;
pub use stripe_api::StripeApi;
pub use subscriptions::RequireEntitlement;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    jobs::{JobQueue, Workers},
    mail::MailState,
};

/// What the billing layer's handlers, services and jobs use. Cheap to clone (handles only).
#[derive(Clone)]
pub struct BillingState {
    pub db: DatabaseConnection,
    pub config: Arc<BillingConfig>,
    pub jobs: JobQueue,
    /// The Stripe API (at `STRIPE_API_BASE`).
    pub stripe: StripeApi,
    pub metrics: BillingMetrics,
    /// Receipts are sent by billing's own job (at most once per order), through the mailer.
    pub mail: MailState,
    /// The public base URL, for links in emails.
    pub public_url: String,
    /// Where the webhook stores verified events (`inbox.rs`).
    pub inbox: inbox::Inbox,
}

/// Registers the billing layer's job kinds, its periodic sweep of stuck orders, and the Stripe
/// inbox processor (a service of every process that runs workers).
pub fn register_jobs(workers: &mut Workers, state: &BillingState) {
    let processor = processor::Processor::new(state.clone());
    let drainer = processor.clone();
    workers
        .service(
            "stripe_inbox",
            move |shutdown| Box::pin(processor.run(shutdown)),
            move || {
                let drainer = drainer.clone();
                Box::pin(async move { drainer.drain().await })
            },
        )
        .register::<jobs::DeliverLicense>(state.clone())
        .register::<jobs::SendReceipt>(state.clone())
        .register::<jobs::RestrictLicenses>(state.clone())
        .periodic::<reconcile::ReconcileStuckOrders>(
            state.clone(),
            state.config.reconcile_interval,
        );
}
