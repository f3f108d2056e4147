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
//!   response types, the customer's reads), `webhook.rs` (the delivery pipeline), `replay.rs`,
//!   `catalogue.rs`: the logic and its SQL.
//! - `cancel.rs`: the customer cancels an unpaid order (its Checkout Session expired first).
//! - `state.rs` (the order state machine), `signature.rs` (Stripe's signing scheme), `events.rs`
//!   (what a Stripe event means for an order), `money.rs`: pure, unit-tested without a database.
//! - `jobs.rs`: licence delivery, receipts, licence revocation/suspension.
//! - `reconcile.rs`: stuck orders brought in line with their Checkout Session (and its periodic job).
//! - `stripe_api.rs`: the Stripe calls (async-stripe), pointed at `STRIPE_API_BASE`.
//! - `metrics.rs`: its Prometheus series (webhook handling time).
pub mod cancel;
pub mod catalogue;
pub mod checkout;
pub mod config;
pub mod customer;
pub mod error;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod money;
pub mod operator;
pub mod orders;
pub mod reconcile;
pub mod replay;
pub mod review;
pub mod routes;
pub mod signature;
pub mod state;
pub mod stripe_api;
pub mod views;
pub mod webhook;

pub use config::BillingConfig;
pub use customer::Customer;
pub use error::BillingError;
pub use metrics::BillingMetrics;
pub use routes::routes;
pub use stripe_api::StripeApi;

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
}

/// Registers the billing layer's job kinds and its periodic sweep of stuck orders.
pub fn register_jobs(workers: &mut Workers, state: &BillingState) {
    workers
        .register::<jobs::DeliverLicense>(state.clone())
        .register::<jobs::SendReceipt>(state.clone())
        .register::<jobs::RestrictLicenses>(state.clone())
        .periodic::<reconcile::ReconcileStuckOrders>(
            state.clone(),
            state.config.reconcile_interval,
        );
}
