//! `RequireEntitlement("feature")`: a route guard, declared like `RequireMfa`, that lets a
//! request through only if the path's org's subscription grants the feature now. Answered from
//! our copy (one indexed query, never a Stripe call), after the org's membership guard: an
//! outsider still gets the org's 404, a member of an org without the feature a 402 naming why.
//!
//! ```ignore
//! #[get("/orgs/{org}/audit-log",
//!       wrap = "RequireEntitlement(\"audit_log\")",
//!       wrap = "RequireOrgPermission(Action::ManageMembers)")]
//! ```
use actix_web::{HttpRequest, HttpResponse, ResponseError, http::StatusCode, web};

use super::{copy, policy};
use crate::{
    billing::{
        app::BillingState,
        error::{BillingError, Entitlement},
    },
    http::guard::{RouteGuard, route_guard},
    orgs::{Action, OrgError, guard::member},
};

#[derive(Debug, Clone, Copy)]
pub struct RequireEntitlement(pub &'static str);

/// Why the guard refused: the org's own answer (401/403/404), or billing's (402).
#[derive(Debug, thiserror::Error)]
pub enum EntitlementRefused {
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl ResponseError for EntitlementRefused {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Org(e) => e.status_code(),
            Self::Billing(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Org(e) => e.error_response(),
            Self::Billing(e) => e.error_response(),
        }
    }
}

impl RouteGuard for RequireEntitlement {
    type Refusal = EntitlementRefused;

    async fn check(self, req: &HttpRequest) -> Result<(), EntitlementRefused> {
        let org = member(req, Action::Read).await?;
        let app = req.app_data::<web::Data<BillingState>>().ok_or_else(|| {
            BillingError::Internal(anyhow::anyhow!("BillingState is not registered"))
        })?;
        let standing = copy::standing(&app.db, org.org_id)
            .await
            .map_err(BillingError::from)?;
        policy::entitled(
            standing.as_ref(),
            self.0,
            chrono::Utc::now(),
            app.config.subscriptions.past_due_grace,
        )
        .map_err(|refusal| {
            BillingError::NotEntitled(Entitlement {
                feature: self.0,
                refusal,
            })
            .into()
        })
    }
}

route_guard!(RequireEntitlement);
