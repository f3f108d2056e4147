//! Checkout, orders, licences and Stripe webhooks. Routes are mounted under `/api/v1` by [`routes`].
pub mod config;
pub mod routes;

pub use config::BillingConfig;
pub use routes::routes;
