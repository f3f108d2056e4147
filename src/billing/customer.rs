//! Who is buying: an organisation, and who acts for it. The one place billing meets auth and orgs.
//!
//! Billing's handlers take a [`Customer`] (or a [`Buyer`], to buy) rather than the other layers'
//! extractors, so the coupling is this one file:
//! - on `/orgs/{org}/billing/…` routes, the organisation's guard ([`crate::orgs::guard::member`]):
//!   a member whose role allows [`Action::ManageBilling`], or one of the org's API keys with the
//!   `billing:write` scope (403 otherwise, 404 for a non-member);
//! - on the older `/billing/…` routes, the signed-in user (401 otherwise) acting for their personal
//!   organisation.
use std::fmt;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::{app::BillingState, error::BillingError};
use crate::{
    auth::{AuthError, guard::authenticate},
    db::stmt,
    http::idempotency::IdempotencyScope,
    orgs::{Action, guard::Principal},
};

/// The organisation buying or reading its orders, and who acts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Customer {
    pub org_id: Uuid,
    pub placer: Placer,
    /// Whether the person acting has a verified email address (a key: always).
    verified: bool,
}

/// Who places an order for the organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placer {
    /// A member (or, on the older routes, the personal org's owner).
    User(Uuid),
    /// One of the organisation's API keys.
    Key(Uuid),
}

impl Placer {
    /// The order columns `placed_by` and `placed_by_key`: exactly one is set.
    pub fn columns(self) -> (Option<Uuid>, Option<Uuid>) {
        match self {
            Self::User(id) => (Some(id), None),
            Self::Key(id) => (None, Some(id)),
        }
    }
}

impl fmt::Display for Placer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Key(id) => write!(f, "key:{id}"),
        }
    }
}

impl Customer {
    /// For services and tests that already know who buys (a person with a verified address).
    pub fn new(org_id: Uuid, placer: Placer) -> Self {
        Self {
            org_id,
            placer,
            verified: true,
        }
    }

    async fn of(req: &HttpRequest) -> Result<Self, actix_web::Error> {
        if req.match_info().get("org").is_some() {
            let member = crate::orgs::guard::member(req, Action::ManageBilling).await?;
            let (placer, verified) = match &member.principal {
                Principal::Member { user, .. } => {
                    (Placer::User(user.user_id), user.email_verified())
                }
                Principal::Key { id, .. } => (Placer::Key(*id), true),
            };
            return Ok(Self {
                org_id: member.org_id,
                placer,
                verified,
            });
        }
        let user = authenticate(req).await?;
        let app = req.app_data::<web::Data<BillingState>>().ok_or_else(|| {
            BillingError::Internal(anyhow::anyhow!("BillingState is not registered"))
        })?;
        let org_id = personal_org(app, user.user_id).await?;
        Ok(Self {
            org_id,
            placer: Placer::User(user.user_id),
            verified: user.email_verified(),
        })
    }
}

/// The personal organisation every account has (made with it).
async fn personal_org(app: &BillingState, user_id: Uuid) -> Result<Uuid, BillingError> {
    let row = app
        .db
        .query_one_raw(stmt(
            "SELECT id FROM orgs WHERE personal_for = $1",
            [user_id.into()],
        ))
        .await?
        .ok_or_else(|| {
            BillingError::Internal(anyhow::anyhow!("user {user_id} has no personal org"))
        })?;
    Ok(row.try_get("", "id")?)
}

impl FromRequest for Customer {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Customer::of(&req).await })
    }
}

/// A [`Customer`] allowed to buy: a person needs a verified email address first (403
/// `email-verification-required`). Checked before the Idempotency-Key is claimed, so a refused
/// attempt leaves nothing to replay once the address is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buyer(pub Customer);

impl FromRequest for Buyer {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let customer = Customer::of(&req).await?;
            if !customer.verified {
                return Err(AuthError::EmailVerificationRequired.into());
            }
            Ok(Buyer(customer))
        })
    }
}

/// Keys are per (organisation, principal): two members, or one member in two orgs, never meet.
impl IdempotencyScope for Buyer {
    fn idempotency_scope(&self) -> String {
        format!("org:{}:{}", self.0.org_id, self.0.placer)
    }
}
