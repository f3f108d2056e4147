//! Operator tools under `/api/v1/admin`: dead jobs, webhook events that need a look, stuck orders.
//! Every route needs the admin role *and* a second factor verified within the last 5 minutes.
//!
//! - `routes.rs`: HTTP only.
//! - `service.rs`: the webhook review list and the admin audit trail (`admin_actions`).
//! - The work itself stays in its layer: [`crate::jobs::JobQueue::retry_dead`],
//!   [`crate::billing::webhook::replay`], [`crate::billing::reconcile`].
pub mod error;
pub mod routes;
pub mod service;

pub use error::AdminError;
pub use routes::routes;
