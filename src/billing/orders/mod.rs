//! One-time orders, owned by the organisation: checkout, the order state machine, what a Stripe
//! event does to an order, licences and receipts, cancelling, and reconciling stuck orders.
//!
//! - `checkout.rs`: one order per Idempotency-Key, its Checkout Session created at Stripe;
//!   `catalogue.rs`: the products on sale.
//! - `rows.rs`: order rows (read, locked, moved by an outcome); `views.rs`: request and response
//!   types, the customer's reads.
//! - `state.rs`: the order state machine; `events.rs`: which order event a Stripe event means. Pure,
//!   unit-tested without a database.
//! - `webhook.rs`: what an event does to an order, decided and carried out in the Stripe
//!   processor's transaction (and by reconciliation).
//! - `jobs.rs`: licence delivery, receipts, licence revocation/suspension.
//! - `cancel.rs`: the customer cancels an unpaid order (its Checkout Session expired first).
//! - `reconcile.rs`: stuck orders brought in line with their Checkout Session (and its periodic
//!   job).
//! - `org_routes.rs`, `personal_routes.rs`: HTTP (the org's routes, and their older personal
//!   aliases), mounted by [`routes`].
//!
//! Its front door: the jobs the layer registers; for the Stripe room, [`interpret`] and [`decide`]
//! (its processor applies an event to its order), and the order facts `trigger` reads.
pub mod cancel;
pub mod catalogue;
pub mod checkout;
pub mod events;
pub mod jobs;
pub mod org_routes;
pub mod personal_routes;
pub mod reconcile;
pub mod rows;
pub mod state;
pub mod views;
pub mod webhook;

use utoipa_actix_web::service_config::ServiceConfig;

pub use events::{
    HANDLED_TYPES, Interpretation, interpret, interpret_async_payment, interpret_session,
};
pub use jobs::{DeliverLicense, RestrictLicenses, SendReceipt};
pub use reconcile::ReconcileStuckOrders;
pub use rows::{OrderRow, Source, find};
pub use state::{OrderEvent, OrderStatus};
pub(in crate::billing) use webhook::decide;

/// Mounts the orders' routes: the organisation's, then their personal aliases.
pub fn routes(cfg: &mut ServiceConfig) {
    org_routes::routes(cfg);
    personal_routes::routes(cfg);
}
