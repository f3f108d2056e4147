//! Operator tools under `/api/v1/admin`: dead jobs and the security events of every account. Every
//! route needs the admin role (and, but for the auth events, a second factor verified within the
//! last 5 minutes).
//!
//! For other layers' operator routes (billing's webhook review and stuck orders live in billing):
//! [`audit::record`] (the admin audit trail), [`STEP_UP`] and [`limit`].
//!
//! - `routes.rs`: HTTP only.
//! - `audit.rs`: the admin audit trail (`admin_actions`).
pub mod audit;
pub mod error;
pub mod routes;

use std::time::Duration;

pub use error::AdminError;
pub use routes::routes;

/// How recent an admin's second factor must be.
pub const STEP_UP: Duration = Duration::from_secs(300);
/// The most rows an operator list returns.
pub const MAX_LIMIT: u64 = 1000;

/// A list's page size: the requested one (default 100) within 1..=[`MAX_LIMIT`].
pub fn limit(requested: Option<u64>) -> u64 {
    requested.unwrap_or(100).clamp(1, MAX_LIMIT)
}
