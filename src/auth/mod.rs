//! Accounts, sessions and MFA. Routes are mounted under `/api/v1` by [`routes`].
//!
//! For other layers:
//! - [`AuthUser`]: extractor for the caller of a bearer-authenticated route.
//! - [`RequireMfa::within`]: route guard for sensitive actions (recent second factor, live session).
//! - [`RequireRole`]: route guard on the user's current role.
//!
//! Layout: `routes.rs` is HTTP only; `accounts.rs`, `sessions.rs` and `mfa.rs` hold the logic;
//! `domain.rs`, `tokens.rs`, `password.rs` and `totp.rs` are pure and unit-tested; `guard.rs` holds
//! the extractor and the guards; `throttle.rs` and `audit.rs` the brute-force limits and the audit
//! trail; `jobs.rs` the background work (password reset requests); `prune.rs` what housekeeping
//! deletes once it is of no further use.
pub mod accounts;
pub mod audit;
pub mod config;
pub mod domain;
pub mod dto;
pub mod error;
pub mod guard;
pub mod jobs;
pub mod mfa;
pub mod password;
pub mod prune;
pub mod routes;
pub mod sessions;
mod sql;
pub mod throttle;
pub mod tokens;
pub mod totp;

pub use config::AuthConfig;
pub use domain::{Aal, Role};
pub use error::AuthError;
pub use guard::{AuthUser, RequireMfa, RequireRole};
pub use routes::routes;
