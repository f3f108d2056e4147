//! What protects an organisation's routes (`/orgs/{org}/…`):
//!
//! - [`RequireOrgPermission`]: middleware declared on the route: the caller is signed in, is a
//!   member of the organisation named by the path's `{org}`, and their role allows the action
//!   (the table in `policy.rs`) — or the caller is one of that organisation's API keys
//!   (`Authorization: Bearer ic_…`) and its scopes allow it. A non-member — or an `{org}` that is not an organisation — gets
//!   **404**, so an org's existence is not leaked; a member whose role does not allow it, 403.
//! - [`OrgMember`]: the extractor a handler takes: the membership the guard found (looked up
//!   once per request and kept in its extensions; without a guard, it checks `Read` itself).
//!
//! The membership is read from the database on every request, in the same query as the session
//! (the composition root tells auth's `identify` to leave `/orgs/{org}/…` to this guard) and the
//! org itself: one query per request. A removed member or a changed role counts at once.
//!
//! ```ignore
//! #[patch("/orgs/{org}", wrap = "RequireOrgPermission(Action::Update)")]
//! async fn update(member: OrgMember, ...) { ... }
//! ```
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::header, web};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use sea_orm::FromQueryResult;
use uuid::Uuid;

use super::{
    OrgError, OrgsState, api_keys,
    audit::Actor,
    dto::OrgView,
    key_format::KeyToken,
    policy::{Action, OrgRole, Scope, allows, key_allows},
};
use crate::{
    auth::{
        AuthError, AuthUser,
        guard::{bearer_claims, live_session_sql, remember},
        request_meta::RequestMeta,
        users::UserRow,
    },
    db::stmt,
    http::guard::{RouteGuard, route_guard},
};

/// Who acts on the organisation: a member (a person with a role) or one of its API keys.
#[derive(Debug, Clone)]
pub enum Principal {
    Member { user: AuthUser, role: OrgRole },
    Key { id: Uuid, scopes: Vec<Scope> },
}

/// The caller as a member (or key) of the organisation the path names.
#[derive(Debug, Clone)]
pub struct OrgMember {
    pub org_id: Uuid,
    /// A personal organisation (its owner's, made with the account).
    pub personal: bool,
    /// The organisation as read with the membership (the caller's role in it; none for a key).
    pub org: OrgView,
    pub principal: Principal,
}

impl OrgMember {
    pub fn may(&self, action: Action) -> Result<(), OrgError> {
        let allowed = match &self.principal {
            Principal::Member { role, .. } => allows(*role, action),
            Principal::Key { scopes, .. } => key_allows(scopes, action),
        };
        if allowed {
            Ok(())
        } else {
            Err(OrgError::Permission(action.as_str()))
        }
    }

    /// The person acting, for what only people do (membership, invitations, keys).
    pub fn person(&self) -> Result<(&AuthUser, OrgRole), OrgError> {
        match &self.principal {
            Principal::Member { user, role } => Ok((user, *role)),
            Principal::Key { .. } => {
                Err(OrgError::Refused("only people may do this, not API keys"))
            }
        }
    }

    /// The caller's user id; `None` for an API key.
    pub fn user_id(&self) -> Option<Uuid> {
        match &self.principal {
            Principal::Member { user, .. } => Some(user.user_id),
            Principal::Key { .. } => None,
        }
    }

    /// Who to record in the org's audit trail.
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::Member { user, .. } => Actor::User(user.user_id),
            Principal::Key { id, .. } => Actor::Key(*id),
        }
    }
}

/// Idempotency keys are per (organisation, principal): two members, or one member in two orgs,
/// never meet.
impl crate::http::idempotency::IdempotencyScope for OrgMember {
    fn idempotency_scope(&self) -> String {
        match &self.principal {
            Principal::Member { user, .. } => format!("org:{}:user:{}", self.org_id, user.user_id),
            Principal::Key { id, .. } => format!("org:{}:key:{id}", self.org_id),
        }
    }
}

/// The caller of `req` as a member (or key) of the path's `{org}`, allowed to do `action`. Looked
/// up once per request: the outcome is kept in the request's extensions.
pub async fn member(req: &HttpRequest, action: Action) -> Result<OrgMember, OrgError> {
    let found = req.extensions().get::<OrgMember>().cloned();
    let member = match found {
        Some(member) => member,
        None => {
            let org_id = req
                .match_info()
                .get("org")
                .and_then(|raw| Uuid::parse_str(raw).ok());
            let state = req.app_data::<web::Data<OrgsState>>().ok_or_else(|| {
                OrgError::Database(sea_orm::DbErr::Custom("OrgsState is not registered".into()))
            })?;
            let member = match bearer(req).filter(|raw| KeyToken::looks_like(raw)) {
                Some(raw) => {
                    let key = api_keys::authenticate(state, raw, RequestMeta::of(req).ip).await?;
                    match org_id {
                        Some(org) if org == key.org_id => key,
                        // Another org's key is an outsider there.
                        _ => return Err(OrgError::NotFound),
                    }
                }
                None => {
                    let member = person(req, state, org_id).await?;
                    if let Principal::Member { user, .. } = &member.principal {
                        // For the guards and extractors after this one (a step-up, `AuthUser`).
                        remember(req, user);
                    }
                    member
                }
            };
            req.extensions_mut().insert(member.clone());
            member
        }
    };
    member.may(action)?;
    Ok(member)
}

/// The `Authorization: Bearer` value, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The caller's row, and their membership of the org with the org, in one query.
#[derive(FromQueryResult)]
struct CallerInOrg {
    #[sea_orm(nested)]
    account: UserRow,
    org_role: Option<String>,
    org_id: Option<Uuid>,
    org_name: Option<String>,
    org_slug: Option<String>,
    org_personal: Option<bool>,
    org_members: Option<i64>,
    org_seat_limit: Option<i32>,
    org_created_at: Option<DateTime<Utc>>,
}

/// The signed-in caller of `req` as a member of `org_id`: the session checked live, the
/// membership, its role and the org read in **one** query. An ended session is 401; a
/// non-member (or a deleted org, or an `{org}` that is no id) 404.
async fn person(
    req: &HttpRequest,
    state: &OrgsState,
    org_id: Option<Uuid>,
) -> Result<OrgMember, OrgError> {
    let claims = bearer_claims(req)?;
    let (sid, sub) = (claims.sid, claims.sub);
    let row = CallerInOrg::find_by_statement(stmt(
        &format!(
            "WITH caller AS ({}) \
             SELECT caller.*, m.role AS org_role, o.id AS org_id, o.name AS org_name, \
                o.slug AS org_slug, o.personal_for IS NOT NULL AS org_personal, \
                o.member_count::bigint AS org_members, o.seat_limit AS org_seat_limit, \
                o.created_at AS org_created_at \
             FROM caller \
             LEFT JOIN org_members m ON m.org_id = $3 AND m.user_id = caller.id \
             LEFT JOIN orgs o ON o.id = m.org_id AND o.deleted_at IS NULL",
            live_session_sql()
        ),
        [sid.into(), sub.into(), org_id.into()],
    ))
    .one(&state.db)
    .await?
    .ok_or_else(|| OrgError::Auth(AuthError::Unauthenticated("the session has ended".into())))?;
    let user = AuthUser::new(claims, row.account);
    let role = row.org_role.as_deref().and_then(OrgRole::parse);
    let (
        Some(role),
        Some(id),
        Some(name),
        Some(slug),
        Some(personal),
        Some(members),
        Some(created_at),
    ) = (
        role,
        row.org_id,
        row.org_name,
        row.org_slug,
        row.org_personal,
        row.org_members,
        row.org_created_at,
    )
    else {
        // Signed in, but not a member: remembered for what else runs, then 404.
        remember(req, &user);
        return Err(OrgError::NotFound);
    };
    Ok(OrgMember {
        org_id: id,
        personal,
        org: OrgView {
            id,
            name,
            slug,
            personal,
            role: Some(role.as_str().to_owned()),
            members,
            seat_limit: row.org_seat_limit,
            created_at,
        },
        principal: Principal::Member { user, role },
    })
}

impl FromRequest for OrgMember {
    type Error = OrgError;
    type Future = LocalBoxFuture<'static, Result<Self, OrgError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { member(&req, Action::Read).await })
    }
}

/// Route guard: the caller is a member of the path's `{org}` whose role allows the action.
#[derive(Debug, Clone, Copy)]
pub struct RequireOrgPermission(pub Action);

impl RouteGuard for RequireOrgPermission {
    type Refusal = OrgError;
    async fn check(self, req: &HttpRequest) -> Result<(), OrgError> {
        member(req, self.0).await.map(drop)
    }
}

route_guard!(RequireOrgPermission);
