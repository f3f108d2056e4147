//! Organisations: members with roles. The organisation is who a SaaS sells to (billing moves to
//! it) and every account has a personal one, made with the account (a trigger of the
//! `m20261202_000070_orgs` migration, so no layer has to remember it).
//!
//! The front door, for the composition root: [`OrgsState`], [`OrgsConfig`], [`routes`] (mounted
//! under `/api/v1`), [`housekeeping_step`].
//!
//! For other layers:
//! - [`RequireOrgPermission`]: route guard for `/orgs/{org}/…` routes: a member whose role allows
//!   the [`Action`] (404 for a non-member, 403 for a role that may not).
//! - [`OrgMember`]: extractor for the caller's membership of the path's organisation — a person
//!   with a role, or one of its API keys with scopes ([`guard::Principal`]).
//!
//! Layout: `routes.rs` (and `invitation_routes.rs`, `api_key_routes.rs`) is HTTP only, `dto.rs` its bodies (parsed into `domain.rs` types there).
//! `policy.rs` is pure and unit-tested: the role × action table and the rules for changing a
//! membership. `guard.rs` holds the guard and the extractor; `organisations.rs` creating,
//! reading, updating and deleting orgs; `members.rs` listing and changing members (under the
//! org's row lock); `invitations.rs` inviting, resending, revoking and accepting; `api_keys.rs`
//! creating, listing, revoking and checking keys, `key_format.rs` their format; `audit.rs` the organisation's audit trail; `prune.rs` what housekeeping deletes.
pub mod api_key_routes;
pub mod api_keys;
pub mod audit;
pub mod config;
pub mod domain;
pub mod dto;
pub mod error;
pub mod guard;
pub mod invitation_routes;
pub mod invitations;
pub mod key_format;
pub mod members;
pub mod organisations;
pub mod policy;
pub mod prune;
pub mod routes;

use std::{sync::Arc, time::Duration};

pub use config::OrgsConfig;
pub use error::OrgError;
pub use guard::{OrgMember, RequireOrgPermission};
pub use policy::{Action, OrgRole};

use sea_orm::DatabaseConnection;

use crate::jobs::JobQueue;

/// How recent a second factor must be to delete an organisation or hand over its ownership
/// (for accounts with MFA on).
pub const STEP_UP: Duration = Duration::from_secs(300);

/// Registers the orgs routes (organisations, members, invitations).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    routes::routes(cfg);
    invitation_routes::routes(cfg);
    api_key_routes::routes(cfg);
}

/// The housekeeping step deleting invitations that ended long ago (see [`prune`]).
pub fn housekeeping_step() -> crate::housekeeping::Step {
    crate::housekeeping::step(|db| async move { prune::prune(&db).await })
}

/// What the orgs layer's handlers and services use. Cheap to clone.
#[derive(Clone)]
pub struct OrgsState {
    pub db: DatabaseConnection,
    pub config: Arc<OrgsConfig>,
    pub jobs: JobQueue,
    /// The public base URL, for links in emails.
    pub public_url: String,
    /// New API keys are `ic_live_…` (production) or `ic_test_…`.
    pub live_keys: bool,
}
