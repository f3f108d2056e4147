//! Accounts, sessions and MFA. Routes are mounted under `/api/v1` by [`routes`].
pub mod routes;

pub use routes::routes;
