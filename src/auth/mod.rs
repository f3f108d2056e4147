//! Accounts, sessions and MFA. Routes are mounted under `/api/v1` by [`routes`].
pub mod config;
pub mod routes;

pub use config::AuthConfig;
pub use routes::routes;
