//! The layer's state and its workers: what every room's handlers, services and jobs share, and the
//! one place that registers the layer's jobs. Here rather than in `mod.rs`, so the rooms import it
//! from the kernel and never climb back to the layer's front door.
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::{
    config::BillingConfig,
    metrics::BillingMetrics,
    orders,
    stripe::{self, Inbox, StripeApi},
};
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
    /// Where the webhook stores verified events (`stripe/inbox.rs`).
    pub inbox: Inbox,
}

/// Registers the billing layer's job kinds, its periodic sweep of stuck orders, and the Stripe
/// inbox processor (a service of every process that runs workers).
pub fn register_jobs(workers: &mut Workers, state: &BillingState) {
    let processor = stripe::Processor::new(state.clone());
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
        .register::<orders::DeliverLicense>(state.clone())
        .register::<orders::SendReceipt>(state.clone())
        .register::<orders::RestrictLicenses>(state.clone())
        .periodic::<orders::ReconcileStuckOrders>(state.clone(), state.config.reconcile_interval);
}
