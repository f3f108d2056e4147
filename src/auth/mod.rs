//! Accounts, sessions and MFA.
//!
//! The front door, for the composition root: [`AuthState`] (what every handler, service and job of
//! this layer uses), [`AuthConfig`], [`routes`] (mounted under `/api/v1`), [`register_jobs`] and
//! [`housekeeping_step`], [`AuthMetrics`]. Its tables come from the `m20261123_000003_auth`
//! migration.
//!
//! For other layers:
//! - [`AuthUser`]: extractor for the caller of a bearer-authenticated route (its session checked
//!   live on every request).
//! - [`RequireMfa::within`]: route guard for sensitive actions (recent second factor, live session).
//! - [`RequireRole`]: route guard on the user's current role.
//! - [`RequireVerifiedEmail`]: route guard for what an unverified account may not do (buy, enrol
//!   MFA, create what others trust).
//!
//! Layout: `routes.rs` (and `mfa_routes.rs`, the second factor's) is HTTP only, `dto.rs` its bodies (parsed into domain types there). The
//! logic: `users.rs` (the account row and profile), `verification.rs` (registration, email
//! verification), `password_reset.rs` (reset and change), `account_mail.rs` (email links and
//! notices they share), `login.rs` (password, then MFA step), `sessions.rs` (refresh, reuse
//! detection, logout, list and revoke), `mfa.rs` (enrolment, step-up, disabling, new recovery
//! codes) over `second_factor.rs` (checking a TOTP or recovery code, each usable once), `reauth.rs`
//! (the current password again, before changing credentials).
//! `domain.rs`, `tokens.rs`, `password.rs` and `totp.rs` are pure and unit-tested; `guard.rs` holds
//! the extractor and the guards, `request_meta.rs` who calls from where; `throttle.rs` and
//! `audit.rs` the brute-force limits and the audit trail; `jobs.rs` the background work (password
//! reset and verification link requests); `prune.rs` what housekeeping deletes once it is of no
//! further use; `metrics.rs` its Prometheus series.
pub mod account_mail;
pub mod audit;
pub mod config;
pub mod domain;
pub mod dto;
pub mod error;
pub mod guard;
pub mod jobs;
pub mod login;
pub mod metrics;
pub mod mfa;
pub mod mfa_routes;
pub mod password;
pub mod password_reset;
pub mod prune;
pub mod reauth;
pub mod request_meta;
pub mod routes;
pub mod second_factor;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod users;
pub mod verification;

pub use config::AuthConfig;
pub use domain::{Aal, Role};
pub use error::AuthError;
pub use guard::{AuthUser, RequireMfa, RequireRole, RequireVerifiedEmail};
pub use metrics::AuthMetrics;
pub use routes::routes;

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;

use crate::{
    housekeeping::{self, Step},
    jobs::{JobQueue, Workers},
};

/// What the auth layer's handlers, services and jobs use. Cheap to clone (handles only).
#[derive(Clone)]
pub struct AuthState {
    pub db: DatabaseConnection,
    pub config: Arc<AuthConfig>,
    pub jobs: JobQueue,
    pub metrics: AuthMetrics,
    /// The public base URL, for links in emails.
    pub public_url: String,
}

/// Registers the auth layer's job kinds.
pub fn register_jobs(workers: &mut Workers, state: &AuthState) {
    workers.register::<jobs::RequestPasswordReset>(state.clone());
    workers.register::<jobs::ResendVerification>(state.clone());
}

/// The housekeeping step deleting what auth keeps only while it can matter (see [`prune`]).
pub fn housekeeping_step(state: &AuthState, keep_ended_sessions: Duration) -> Step {
    let config = state.config.clone();
    housekeeping::step(move |db| {
        let config = config.clone();
        async move { prune::prune(&db, &config, keep_ended_sessions).await }
    })
}
