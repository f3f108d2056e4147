//! Checkout, orders, licences and Stripe webhooks. Routes are mounted under `/api/v1` by [`routes`].
//!
//! - `routes.rs`: HTTP only (extract, call one function, answer).
//! - `orders.rs`, `webhook.rs`, `catalogue.rs`: the logic and its SQL.
//! - `cancel.rs`: the customer cancels an unpaid order (its Checkout Session expired first).
//! - `state.rs` (the order state machine), `signature.rs` (Stripe's signing scheme), `events.rs`
//!   (what a Stripe event means for an order), `money.rs`: pure, unit-tested without a database.
//! - `jobs.rs`: licence delivery, receipts, licence revocation/suspension.
//! - `reconcile.rs`: stuck orders brought in line with their Checkout Session (and its periodic job).
//! - `stripe_api.rs`: the Stripe calls (async-stripe), pointed at `STRIPE_API_BASE`.
pub mod cancel;
pub mod catalogue;
pub mod config;
pub mod customer;
pub mod error;
pub mod events;
pub mod jobs;
pub mod money;
pub mod orders;
pub mod reconcile;
pub mod routes;
pub mod signature;
pub mod state;
pub mod stripe_api;
pub mod webhook;

pub use config::BillingConfig;
pub use customer::Customer;
pub use error::BillingError;
pub use routes::routes;
pub use stripe_api::StripeApi;

/// A raw Postgres statement with positional (`$1`...) parameters.
pub(crate) fn sql(
    sql: &str,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> sea_orm::Statement {
    sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}
