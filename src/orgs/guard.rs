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
//! The membership is read from the database on every request: a removed member or a changed role
//! counts at once.
//!
//! ```ignore
//! #[patch("/orgs/{org}", wrap = "RequireOrgPermission(Action::Update)")]
//! async fn update(member: OrgMember, ...) { ... }
//! ```
use std::{
    future::{Ready, ready},
    rc::Rc,
};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest, ResponseError,
    body::EitherBody,
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::header,
    web,
};
use futures_util::future::LocalBoxFuture;
use sea_orm::FromQueryResult;
use uuid::Uuid;

use super::{
    OrgError, OrgsState, api_keys,
    audit::Actor,
    key_format::KeyToken,
    policy::{Action, OrgRole, Scope, allows, key_allows},
};
use crate::{
    auth::{AuthUser, guard::authenticate, request_meta::RequestMeta},
    db::stmt,
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

#[derive(FromQueryResult)]
struct Membership {
    role: String,
    personal: bool,
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
                    let user = authenticate(req).await?;
                    person(state, org_id.ok_or(OrgError::NotFound)?, user).await?
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

/// `user`'s membership of `org_id`, read now; a non-member (or a deleted org) is not found.
async fn person(state: &OrgsState, org_id: Uuid, user: AuthUser) -> Result<OrgMember, OrgError> {
    let membership = Membership::find_by_statement(stmt(
        "SELECT m.role, o.personal_for IS NOT NULL AS personal \
         FROM org_members m JOIN orgs o ON o.id = m.org_id \
         WHERE m.org_id = $1 AND m.user_id = $2 AND o.deleted_at IS NULL",
        [org_id.into(), user.user_id.into()],
    ))
    .one(&state.db)
    .await?
    .ok_or(OrgError::NotFound)?;
    Ok(OrgMember {
        org_id,
        personal: membership.personal,
        principal: Principal::Member {
            role: OrgRole::parse(&membership.role).ok_or(OrgError::NotFound)?,
            user,
        },
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

pub struct OrgGuardMiddleware<S> {
    service: Rc<S>,
    action: Action,
}

impl<S, B> Transform<S, ServiceRequest> for RequireOrgPermission
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = OrgGuardMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(OrgGuardMiddleware {
            service: Rc::new(service),
            action: self.0,
        }))
    }
}

impl<S, B> Service<ServiceRequest> for OrgGuardMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let action = self.action;
        Box::pin(async move {
            match member(req.request(), action).await {
                Ok(_) => Ok(service.call(req).await?.map_into_left_body()),
                // A refusal is the answer (see the auth guards): other middleware sees a response.
                Err(refusal) => Ok(req
                    .into_response(refusal.error_response())
                    .map_into_right_body()),
            }
        })
    }
}
