//! Subscribing: a subscription-mode Checkout Session for the org's Stripe customer.
//!
//! At most one such session is open per org (a partial unique index): a new checkout first closes
//! the previous one at Stripe, so two tabs, two admins or a retried click can never pay for two
//! subscriptions (pay issue 371). If the previous one turns out to be paid already, the answer is
//! 409: the subscription is on its way by webhook. No transaction stays open across a Stripe call:
//! the checkout row is committed first, and every Stripe write is keyed by it, so a retry after a
//! crash or a timeout finds the same customer and the same session.
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    copy::LIVE,
    plans::{self, Interval},
    stripe::{self as calls, OpenedSession, SubscriptionSession},
};
use crate::{
    billing::{
        app::BillingState,
        customer::{Customer, Placer},
        error::BillingError,
        stripe::ClosedSession,
    },
    db::stmt,
};

/// The most seats one subscription can have when its plan sets no limit.
pub const MAX_SEATS: u32 = 10_000;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"plan": "business", "interval": "month", "seats": 5}))]
pub struct SubscribeRequest {
    /// A plan key from `GET /billing/plans`.
    pub plan: String,
    pub interval: Interval,
    /// Seats to buy: at least the organisation's members, at most the plan's `max_seats`.
    #[serde(deserialize_with = "crate::http::json::whole_number")]
    pub seats: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "checkout_id": "0193a4c0-3333-7000-8000-000000000001",
    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3"
}))]
pub struct SubscribeResponse {
    pub checkout_id: Uuid,
    /// Send the customer here to pay (Stripe's hosted page).
    pub checkout_url: String,
}

#[derive(Debug, Clone, FromQueryResult)]
struct CheckoutRow {
    id: Uuid,
    plan_key: String,
    interval: String,
    seats: i32,
    stripe_session_id: Option<String>,
}

#[derive(FromQueryResult)]
struct OrgFacts {
    name: String,
    members: i64,
    live_subscription: Option<String>,
}

/// Starts a subscription checkout for the org (see the module's notes).
#[tracing::instrument(level = "info", skip_all)]
pub async fn subscribe(
    app: &BillingState,
    customer: Customer,
    request: &SubscribeRequest,
) -> Result<SubscribeResponse, BillingError> {
    let price = plans::find_price(&app.db, &request.plan, request.interval)
        .await?
        .ok_or_else(|| BillingError::PlanNotFound(request.plan.clone()))?;
    let max = price
        .max_seats
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(MAX_SEATS);
    if !(1..=max).contains(&request.seats) {
        return Err(BillingError::InvalidField {
            field: "seats",
            message: format!("must be between 1 and {max} on the {} plan", price.name),
        });
    }
    let org_id = customer.org_id;
    let (checkout, previous, org_name) = {
        let txn = app.db.begin().await?;
        let org = OrgFacts::find_by_statement(stmt(
            &format!(
                "SELECT o.name, o.member_count::bigint AS members, \
                    (SELECT s.status FROM subscriptions s WHERE s.org_id = o.id AND {LIVE} \
                     LIMIT 1) AS live_subscription \
                 FROM orgs o WHERE o.id = $1 FOR UPDATE OF o"
            ),
            [org_id.into()],
        ))
        .one(&txn)
        .await?
        .ok_or(BillingError::NoSubscription)?;
        if org.live_subscription.is_some() {
            return Err(BillingError::SubscriptionExists(
                "use PUT /orgs/{org}/billing/subscription to change it",
            ));
        }
        if i64::from(request.seats) < org.members {
            return Err(BillingError::SeatsBelowMembers {
                seats: request.seats,
                members: org.members,
            });
        }
        let previous = CheckoutRow::find_by_statement(stmt(
            "UPDATE subscription_checkouts SET status = 'expired' \
             WHERE org_id = $1 AND status IN ('creating', 'open') \
             RETURNING id, plan_key, interval, seats, stripe_session_id",
            [org_id.into()],
        ))
        .one(&txn)
        .await?;
        let (user, key) = Placer::columns(customer.placer);
        let checkout = CheckoutRow::find_by_statement(stmt(
            "INSERT INTO subscription_checkouts \
                (id, org_id, plan_key, interval, seats, started_by, started_by_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id, plan_key, interval, seats, stripe_session_id",
            [
                Uuid::now_v7().into(),
                org_id.into(),
                price.plan_key.clone().into(),
                request.interval.as_str().into(),
                (request.seats as i32).into(),
                user.into(),
                key.into(),
            ],
        ))
        .one(&txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?;
        txn.commit().await?;
        (checkout, previous, org.name)
    };
    let stripe_customer = ensure_customer(app, customer, &org_name).await?;
    if let Some(previous) = previous
        && close(app, org_id, &stripe_customer, &previous).await? == ClosedSession::Completed
    {
        app.db
            .execute_raw(stmt(
                "UPDATE subscription_checkouts SET status = CASE WHEN id = $1 THEN 'completed' \
                 ELSE 'expired' END WHERE id IN ($1, $2)",
                [previous.id.into(), checkout.id.into()],
            ))
            .await?;
        return Err(BillingError::SubscriptionExists(
            "an earlier checkout was just paid; the subscription appears shortly",
        ));
    }
    let opened = open(app, org_id, &stripe_customer, &checkout).await?;
    let updated = app
        .db
        .execute_raw(stmt(
            "UPDATE subscription_checkouts SET status = 'open', stripe_session_id = $2, \
                checkout_url = $3 WHERE id = $1 AND status = 'creating'",
            [
                checkout.id.into(),
                opened.id.clone().into(),
                opened.url.clone().into(),
            ],
        ))
        .await?;
    if updated.rows_affected() == 0 {
        // A newer checkout replaced this one meanwhile, and closes this session.
        return Err(BillingError::CheckoutSuperseded);
    }
    Ok(SubscribeResponse {
        checkout_id: checkout.id,
        checkout_url: opened.url,
    })
}

/// The session of checkout `row`: created, or — for a row that already reached Stripe — the same
/// one again (its key).
async fn open(
    app: &BillingState,
    org_id: Uuid,
    stripe_customer: &str,
    row: &CheckoutRow,
) -> Result<OpenedSession, BillingError> {
    let interval = Interval::parse(&row.interval)
        .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("interval {:?}", row.interval)))?;
    let price = plans::find_price(&app.db, &row.plan_key, interval)
        .await?
        .ok_or_else(|| BillingError::PlanNotFound(row.plan_key.clone()))?;
    calls::create_subscription_session(
        &app.stripe,
        &app.config,
        &SubscriptionSession {
            checkout_id: row.id,
            org_id,
            customer: stripe_customer,
            plan: &price.plan_key,
            price: &price.stripe_price_id,
            seats: u64::try_from(row.seats).unwrap_or(1),
            trial_days: u32::try_from(price.trial_days).unwrap_or(0),
        },
    )
    .await
}

/// Closes a superseded checkout's session at Stripe (learning its id first if the row never
/// recorded it): expired, or found already completed.
async fn close(
    app: &BillingState,
    org_id: Uuid,
    stripe_customer: &str,
    row: &CheckoutRow,
) -> Result<ClosedSession, BillingError> {
    let session = match &row.stripe_session_id {
        Some(id) => id.clone(),
        None => open(app, org_id, stripe_customer, row).await?.id,
    };
    app.stripe.expire_checkout_session(&session).await
}

/// The org's Stripe customer, created at its first checkout (idempotently: one per org).
async fn ensure_customer(
    app: &BillingState,
    customer: Customer,
    org_name: &str,
) -> Result<String, BillingError> {
    #[derive(FromQueryResult)]
    struct Known {
        stripe_customer_id: Option<String>,
        email: Option<String>,
    }
    let (user, key) = Placer::columns(customer.placer);
    let known = Known::find_by_statement(stmt(
        "SELECT (SELECT stripe_customer_id FROM stripe_customers WHERE org_id = $1), \
            coalesce((SELECT billing_email FROM org_billing WHERE org_id = $1), \
                (SELECT email FROM users WHERE id = $2), \
                (SELECT u.email FROM org_api_keys k JOIN users u ON u.id = k.created_by \
                 WHERE k.id = $3)) AS email",
        [customer.org_id.into(), user.into(), key.into()],
    ))
    .one(&app.db)
    .await?
    .ok_or_else(|| DbErr::RecordNotFound("org".into()))?;
    if let Some(id) = known.stripe_customer_id {
        return Ok(id);
    }
    let id = calls::create_customer(
        &app.stripe,
        customer.org_id,
        org_name,
        known.email.as_deref().unwrap_or_default(),
    )
    .await?;
    app.db
        .execute_raw(stmt(
            "INSERT INTO stripe_customers (org_id, stripe_customer_id) VALUES ($1, $2) \
             ON CONFLICT (org_id) DO NOTHING",
            [customer.org_id.into(), id.clone().into()],
        ))
        .await?;
    Ok(id)
}
