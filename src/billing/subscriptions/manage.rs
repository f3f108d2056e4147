//! Changing a subscription: plan and seats, cancelling and resuming, and the customer portal.
//! Each change is made at Stripe (keyed by the request's Idempotency-Key), then our copy is read
//! again from Stripe, so the answer shows what Stripe now has; the webhook that follows finds
//! nothing left to change.
use sea_orm::{FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    copy::{self, CopyRow},
    events::refresh,
    facts::{SubscriptionFacts, SubscriptionStatus},
    plans::{self, Interval},
    policy::{self, BillingStatus},
    stripe as calls,
    views::SubscriptionView,
};
use crate::{
    billing::{app::BillingState, customer::Customer, error::BillingError},
    db::stmt,
};

/// The org's subscription as its billing page shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "subscription": {
        "id": "0193a4c0-4444-7000-8000-000000000001", "plan": "business", "interval": "month",
        "status": "active", "seats": 5, "current_period_start": "2026-12-01T00:00:00Z",
        "current_period_end": "2027-01-01T00:00:00Z", "cancel_at_period_end": false,
        "trial_end": null, "ended_at": null
    },
    "billing_status": "ok", "features": ["projects", "audit_log", "priority_support"],
    "members": 3
}))]
pub struct SubscriptionStatusView {
    /// None: the organisation never subscribed.
    pub subscription: Option<SubscriptionView>,
    /// For the app's banner.
    pub billing_status: BillingStatus,
    /// The features granted right now.
    pub features: Vec<String>,
    pub members: i64,
}

pub async fn status(
    app: &BillingState,
    org_id: Uuid,
) -> Result<SubscriptionStatusView, BillingError> {
    #[derive(FromQueryResult)]
    struct Members {
        members: i64,
    }
    let members = Members::find_by_statement(stmt(
        "SELECT member_count::bigint AS members FROM orgs WHERE id = $1",
        [org_id.into()],
    ))
    .one(&app.db)
    .await?
    .map_or(0, |m| m.members);
    let standing = copy::standing(&app.db, org_id).await?;
    let now = chrono::Utc::now();
    let grace = app.config.subscriptions.past_due_grace;
    let features = match &standing {
        Some(s) if policy::access(Some(s), now, grace).is_ok() => s.features.clone(),
        _ => Vec::new(),
    };
    Ok(SubscriptionStatusView {
        subscription: copy::current(&app.db, org_id)
            .await?
            .map(SubscriptionView::from),
        billing_status: policy::billing_status(standing.as_ref(), members),
        features,
        members,
    })
}

/// The org's live subscription, or 404.
async fn live(app: &BillingState, org_id: Uuid) -> Result<CopyRow, BillingError> {
    match copy::current(&app.db, org_id).await? {
        Some(row) if row.status().is_some_and(|s| !s.is_terminal()) => Ok(row),
        _ => Err(BillingError::NoSubscription),
    }
}

/// Reads the subscription from Stripe into our copy, in a transaction of its own.
async fn resync(app: &BillingState, subscription: &str) -> Result<(), BillingError> {
    let txn = app.db.begin().await?;
    refresh(app, &txn, subscription)
        .await
        .map_err(BillingError::Internal)?;
    txn.commit().await?;
    Ok(())
}

/// Cancels: at the period's end, or — for a subscription that is past due, unpaid or never
/// started — at once (it has no paid period left to run).
#[tracing::instrument(level = "info", skip_all)]
pub async fn cancel(
    app: &BillingState,
    customer: Customer,
    key: &str,
) -> Result<SubscriptionStatusView, BillingError> {
    let sub = live(app, customer.org_id).await?;
    let stripe_key = calls::change_key("cancel", sub.id, key);
    // Stripe's status decides, not our copy's (which may lag an event behind).
    let now = calls::retrieve_subscription(&app.stripe, &sub.stripe_subscription_id).await?;
    let now = SubscriptionFacts::read(&now).map_err(|e| BillingError::Stripe(e.into()))?;
    match now.status {
        SubscriptionStatus::Active | SubscriptionStatus::Trialing => {
            calls::set_cancel_at_period_end(
                &app.stripe,
                &sub.stripe_subscription_id,
                true,
                &stripe_key,
            )
            .await?
        }
        status if status.is_terminal() => return Err(BillingError::NoSubscription),
        _ => calls::cancel_now(&app.stripe, &sub.stripe_subscription_id, &stripe_key).await?,
    };
    resync(app, &sub.stripe_subscription_id).await?;
    status(app, customer.org_id).await
}

/// Undoes a cancellation while the period lasts.
#[tracing::instrument(level = "info", skip_all)]
pub async fn resume(
    app: &BillingState,
    customer: Customer,
    key: &str,
) -> Result<SubscriptionStatusView, BillingError> {
    let sub = live(app, customer.org_id).await?;
    if !sub.cancel_at_period_end {
        return Err(BillingError::NotChangeable(
            "the subscription is not set to cancel",
        ));
    }
    let stripe_key = calls::change_key("resume", sub.id, key);
    calls::set_cancel_at_period_end(&app.stripe, &sub.stripe_subscription_id, false, &stripe_key)
        .await?;
    resync(app, &sub.stripe_subscription_id).await?;
    status(app, customer.org_id).await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"plan": "business", "interval": "year", "seats": 8}))]
pub struct ChangeRequest {
    pub plan: String,
    pub interval: Interval,
    #[serde(deserialize_with = "crate::http::json::whole_number")]
    pub seats: u32,
}

/// What a change needs, checked: the plan's price, the live subscription and its one item.
struct Change {
    price: plans::PlanPrice,
    sub: CopyRow,
    item: String,
}

async fn check_change(
    app: &BillingState,
    customer: Customer,
    request: &ChangeRequest,
) -> Result<Change, BillingError> {
    let price = plans::find_price(&app.db, &request.plan, request.interval)
        .await?
        .ok_or_else(|| BillingError::PlanNotFound(request.plan.clone()))?;
    let max = price
        .max_seats
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(super::checkout::MAX_SEATS);
    if !(1..=max).contains(&request.seats) {
        return Err(BillingError::InvalidField {
            field: "seats",
            message: format!("must be between 1 and {max} on the {} plan", price.name),
        });
    }
    let members = status(app, customer.org_id).await?.members;
    if i64::from(request.seats) < members {
        return Err(BillingError::SeatsBelowMembers {
            seats: request.seats,
            members,
        });
    }
    let sub = live(app, customer.org_id).await?;
    if !matches!(
        sub.status(),
        Some(SubscriptionStatus::Active | SubscriptionStatus::Trialing)
    ) {
        return Err(BillingError::NotChangeable(
            "only an active or trialing subscription can change plan; settle the payment first",
        ));
    }
    let current = calls::retrieve_subscription(&app.stripe, &sub.stripe_subscription_id).await?;
    let item = current["items"]["data"][0]["id"]
        .as_str()
        .ok_or_else(|| BillingError::Stripe(anyhow::anyhow!("the subscription has no item")))?
        .to_owned();
    Ok(Change { price, sub, item })
}

/// Moves the subscription to another plan, interval or seat count, prorated as configured. A
/// change whose payment fails leaves the subscription as it was.
#[tracing::instrument(level = "info", skip_all)]
pub async fn change(
    app: &BillingState,
    customer: Customer,
    request: &ChangeRequest,
    key: &str,
) -> Result<SubscriptionStatusView, BillingError> {
    let Change { price, sub, item } = check_change(app, customer, request).await?;
    let stripe_key = calls::change_key("change", sub.id, key);
    calls::change_plan(
        &app.stripe,
        &sub.stripe_subscription_id,
        &item,
        &price.stripe_price_id,
        u64::from(request.seats),
        app.config.subscriptions.proration,
        &stripe_key,
    )
    .await?;
    resync(app, &sub.stripe_subscription_id).await?;
    status(app, customer.org_id).await
}

/// What a change would be invoiced, prorated as configured (Stripe's invoice preview).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"amount_due": 1450, "currency": "usd", "proration": "create_prorations"}))]
pub struct ChangePreview {
    /// In the currency's smallest unit: what the next invoice would come to.
    pub amount_due: i64,
    pub currency: String,
    /// How the change would be prorated (`BILLING_PRORATION`).
    pub proration: String,
}

pub async fn preview(
    app: &BillingState,
    customer: Customer,
    request: &ChangeRequest,
) -> Result<ChangePreview, BillingError> {
    let Change { price, sub, item } = check_change(app, customer, request).await?;
    let proration = app.config.subscriptions.proration;
    let invoice = calls::preview_change(
        &app.stripe,
        &sub.stripe_subscription_id,
        &item,
        &price.stripe_price_id,
        u64::from(request.seats),
        proration,
    )
    .await?;
    Ok(ChangePreview {
        amount_due: invoice["amount_due"].as_i64().unwrap_or(0),
        currency: invoice["currency"]
            .as_str()
            .unwrap_or(&price.currency)
            .to_owned(),
        proration: proration.as_str().to_owned(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"url": "https://billing.stripe.com/p/session/test_a1b2c3"}))]
pub struct PortalSession {
    /// Send the customer here: Stripe's portal (payment methods, invoices, plan changes).
    pub url: String,
}

/// A Stripe customer-portal session for the org (which must have subscribed once).
pub async fn portal(app: &BillingState, customer: Customer) -> Result<PortalSession, BillingError> {
    #[derive(FromQueryResult)]
    struct Known {
        stripe_customer_id: String,
    }
    let known = Known::find_by_statement(stmt(
        "SELECT stripe_customer_id FROM stripe_customers WHERE org_id = $1",
        [customer.org_id.into()],
    ))
    .one(&app.db)
    .await?
    .ok_or(BillingError::NoSubscription)?;
    let url = calls::portal_session(
        &app.stripe,
        &known.stripe_customer_id,
        &app.config.subscriptions.portal_return_url,
    )
    .await?;
    Ok(PortalSession { url })
}
