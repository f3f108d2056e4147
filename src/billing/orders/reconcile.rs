//! Reconciliation: orders stuck awaiting payment long after checkout — their webhook never came
//! (endpoint down past Stripe's retries, a misconfigured secret, an event lost in a deploy) — are
//! brought in line by asking Stripe what became of them. Stuck means older than
//! `BILLING_RECONCILE_AFTER_SECS` and still:
//!
//! - `pending_payment`: the Checkout Session tells ([`events::interpret_session`]): `complete` reads
//!   as `checkout.session.completed`, `expired` as `checkout.session.expired`, `open` as nothing yet.
//!   An order that never got a session (creating it failed, the checkout was not retried) expires
//!   once its checkout's Idempotency-Key has lapsed: no one was ever given a way to pay it.
//! - `payment_processing` (checkout completed with a delayed method: SEPA, ACH): the session stays
//!   `complete` and `unpaid`, and the money's fate is on its PaymentIntent, fetched expanded in the
//!   same request ([`events::interpret_async_payment`]): `succeeded` or failed reads as
//!   `checkout.session.async_payment_succeeded` / `_failed`, `processing` as nothing yet.
//!
//! Stripe is read outside any transaction (no lock is held across a network call), and what it says
//! is applied through the webhook's own path ([`webhook::apply_to_order`]) under the order's row
//! lock. The state machine then makes every race harmless: a webhook landing meanwhile, another
//! instance reconciling the same order, an admin clicking twice — whoever comes second finds the
//! order moved and is ignored.
//!
//! A sweep takes at most [`SWEEP_LIMIT`] orders, the least recently checked first
//! (`orders.reconciled_at`, set at each check): an order stuck for good reason — a debit taking days,
//! a session left open — goes to the back of the line each time, so it cannot keep newer stuck orders
//! from being reached.
//!
//! The sweep runs as a job ([`ReconcileStuckOrders`]), queued each `BILLING_RECONCILE_INTERVAL_SECS`
//! by [`crate::jobs::periodic`]: with several instances, one job per interval runs.
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    events::{self, Interpretation},
    rows::{self, OrderKey, Source},
    state::{OrderEvent, OrderStatus, Outcome},
    webhook,
};
use crate::billing::{app::BillingState, error::BillingError, subscriptions};
use crate::{
    db::stmt,
    http::idempotency,
    jobs::{Job, JobContext, JobError},
};

/// At most this many orders per sweep (least recently checked first); the next sweep takes the rest.
pub const SWEEP_LIMIT: u64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
    "org_id": "0193a4b0-0000-7000-8000-0000000000ab",
    "placed_by": "0193a4b0-0000-7000-8000-0000000000aa",
    "status": "payment_processing",
    "currency": "usd",
    "amount_total": 4900,
    "stripe_checkout_session_id": "cs_test_a1b2c3",
    "created_at": "2026-11-23T12:00:00Z",
    "reconciled_at": "2026-11-23T13:05:00Z"
}))]
pub struct StuckOrder {
    pub id: Uuid,
    /// The organisation that buys.
    pub org_id: Uuid,
    /// The member who placed it (absent when an API key did).
    pub placed_by: Option<Uuid>,
    /// `pending_payment` (the session's outcome is awaited) or `payment_processing` (a delayed
    /// payment's).
    pub status: OrderStatus,
    pub currency: String,
    pub amount_total: i64,
    /// Absent when creating the session failed: there is nothing at Stripe to reconcile with.
    pub stripe_checkout_session_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When reconciliation last checked the order; absent if never. The least recently checked come
    /// first.
    pub reconciled_at: Option<DateTime<Utc>>,
}

#[derive(FromQueryResult)]
struct StuckRow {
    id: Uuid,
    org_id: Uuid,
    placed_by: Option<Uuid>,
    status: OrderStatus,
    currency: String,
    amount_total: i64,
    stripe_checkout_session_id: Option<String>,
    created_at: DateTime<Utc>,
    reconciled_at: Option<DateTime<Utc>>,
}

/// What reconciling one order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reconciliation {
    /// What Stripe reports moved the order.
    Applied,
    /// The session is still open: the customer may yet pay. Nothing changed.
    StillOpen,
    /// A delayed payment is still on its way (a bank debit takes up to a few business days): the
    /// PaymentIntent is `processing`, or in any other state short of an outcome. Nothing changed; a
    /// later sweep looks again.
    StillProcessing,
    /// The order no longer awaits payment (a webhook or an earlier reconciliation got there first).
    NotPending,
    /// The order has no Checkout Session at Stripe (creating it failed) and its checkout may still
    /// be retried. Past the checkout's Idempotency-Key lifetime (24 h) such an order is expired
    /// instead (`applied`).
    NoSession,
    /// What Stripe reports did not move the order (recorded in its audit trail).
    Ignored,
    /// What Stripe reports contradicts the order (another amount, another session): recorded for
    /// review.
    Rejected,
    /// Stripe could not be asked; a later sweep tries again.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "order_id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
    "result": "applied",
    "status": "paid",
    "session_status": "complete",
    "payment_intent_status": "succeeded",
    "detail": null
}))]
pub struct ReconcileResult {
    pub order_id: Uuid,
    pub result: Reconciliation,
    /// The order's status afterwards.
    pub status: OrderStatus,
    /// The Checkout Session's status at Stripe (`open`, `complete`, `expired`), when it was fetched.
    pub session_status: Option<String>,
    /// The PaymentIntent's status at Stripe (`processing`, `succeeded`...), when it was fetched: for
    /// an order in `payment_processing`.
    pub payment_intent_status: Option<String>,
    pub detail: Option<String>,
}

/// The statuses reconciliation settles. Spelled as the partial index `orders_awaiting_payment`'s
/// predicate, so the planner uses that index.
const AWAITING_PAYMENT: &str = "status IN ('pending_payment', 'payment_processing')";

fn awaits_payment(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::PendingPayment | OrderStatus::PaymentProcessing
    )
}

/// Orders awaiting payment (`pending_payment` or `payment_processing`) created more than
/// `older_than` ago, least recently checked first (never checked: oldest first).
pub async fn stuck_orders(
    db: &impl ConnectionTrait,
    older_than: Duration,
    limit: u64,
) -> Result<Vec<StuckOrder>, DbErr> {
    let rows = StuckRow::find_by_statement(stmt(
        &format!(
            "SELECT id, org_id, placed_by, status, currency, amount_total, stripe_checkout_session_id, \
                    created_at, reconciled_at \
             FROM orders WHERE {AWAITING_PAYMENT} \
               AND created_at < now() - $1 * interval '1 second' \
             ORDER BY coalesce(reconciled_at, created_at), id LIMIT $2"
        ),
        [(older_than.as_secs() as i64).into(), (limit as i64).into()],
    ))
    .all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(StuckOrder {
                status: row.status,
                id: row.id,
                org_id: row.org_id,
                placed_by: row.placed_by,
                currency: row.currency,
                amount_total: row.amount_total,
                stripe_checkout_session_id: row.stripe_checkout_session_id,
                created_at: row.created_at,
                reconciled_at: row.reconciled_at,
            })
        })
        .collect()
}

/// Notes that reconciliation took the order up, before Stripe is asked, so the sweep moves on to
/// orders checked less recently. Noted even when Stripe then fails: retrying failures first would
/// hand every sweep's slots to the orders Stripe keeps failing on (a session it no longer knows),
/// starving the rest, which is what this column prevents. A passing outage loses nothing by it:
/// with fewer than [`SWEEP_LIMIT`] stuck orders each sweep visits them all anyway.
async fn mark_checked(db: &impl ConnectionTrait, order_id: Uuid) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE orders SET reconciled_at = now() WHERE id = $1",
        [order_id.into()],
    ))
    .await?;
    Ok(())
}

/// Reconciles one order with what Stripe knows of its payment. Safe to run any number of times,
/// anywhere.
pub async fn reconcile_order(
    app: &BillingState,
    order_id: Uuid,
) -> Result<ReconcileResult, BillingError> {
    let order = rows::find(&app.db, order_id)
        .await?
        .ok_or(BillingError::OrderNotFound)?;
    let status = order.status;
    let mut report = ReconcileResult {
        order_id,
        result: Reconciliation::NotPending,
        status,
        session_status: None,
        payment_intent_status: None,
        detail: None,
    };
    if !awaits_payment(status) {
        return Ok(report);
    }
    mark_checked(&app.db, order_id).await?;
    let Some(session_id) = order.stripe_checkout_session_id.as_deref() else {
        // Creating the session failed and the checkout was not retried, so no one was ever given a
        // way to pay. A retry (same Idempotency-Key) is still due while its key lives; after that
        // the order expires, as its session would have. A retry racing this finds the order expired
        // and hands out no session (see `checkout::checkout`).
        if Utc::now().signed_duration_since(order.created_at)
            < chrono::Duration::from_std(idempotency::TTL).unwrap_or(chrono::Duration::MAX)
        {
            report.result = Reconciliation::NoSession;
            return Ok(report);
        }
        let expired = Interpretation {
            event: OrderEvent::SessionExpired,
            order_id: Some(order_id),
            payment_intent: None,
            session: None,
        };
        return apply(app, order_id, &expired, report).await;
    };
    let processing = status == OrderStatus::PaymentProcessing;
    let (session, interpretation) = if processing {
        let session = app
            .stripe
            .retrieve_checkout_session_with_payment_intent(session_id)
            .await?;
        let interpretation = events::interpret_async_payment(&session);
        (session, interpretation)
    } else {
        let session = app.stripe.retrieve_checkout_session(session_id).await?;
        let interpretation = events::interpret_session(&session);
        (session, interpretation)
    };
    report.session_status = session["status"].as_str().map(str::to_owned);
    report.payment_intent_status = session["payment_intent"]["status"]
        .as_str()
        .map(str::to_owned);
    let Some(interpretation) = interpretation else {
        report.result = if processing {
            Reconciliation::StillProcessing
        } else {
            Reconciliation::StillOpen
        };
        return Ok(report);
    };

    apply(app, order_id, &interpretation, report).await
}

/// Applies what Stripe reported (or, for an order without a session, its expiry) through the
/// webhook's path, under the order's row lock, and completes `report`.
async fn apply(
    app: &BillingState,
    order_id: Uuid,
    interpretation: &Interpretation,
    mut report: ReconcileResult,
) -> Result<ReconcileResult, BillingError> {
    let txn = app.db.begin().await?;
    let payment_intent = interpretation.payment_intent.as_deref();
    let locked = rows::lock_for_payment(&txn, OrderKey::Id(order_id), payment_intent)
        .await?
        .ok_or(BillingError::OrderNotFound)?;
    let outcome =
        webhook::apply_to_order(app, &txn, &locked, interpretation, Source::Reconcile).await?;
    let order = locked.order;
    txn.commit().await?;
    (report.result, report.status) = match &outcome {
        Outcome::Applied { to, .. } => (Reconciliation::Applied, *to),
        Outcome::Ignored { .. } => (Reconciliation::Ignored, order.status),
        Outcome::Rejected { .. } => (Reconciliation::Rejected, order.status),
    };
    report.detail = outcome.reason().map(str::to_owned);
    tracing::info!(%order_id, result = ?report.result, to = report.status.as_str(), "order reconciled");
    Ok(report)
}

/// Reconciles the stuck orders (older than `older_than`, at most [`SWEEP_LIMIT`], least recently
/// checked first). One order's failure (Stripe unreachable) is reported in its result and does not
/// stop the others.
pub async fn reconcile_stuck(
    app: &BillingState,
    older_than: Duration,
) -> Result<Vec<ReconcileResult>, BillingError> {
    let mut results = Vec::new();
    for order in stuck_orders(&app.db, older_than, SWEEP_LIMIT).await? {
        let result = match reconcile_order(app, order.id).await {
            Ok(result) => result,
            Err(BillingError::Stripe(cause)) => {
                tracing::warn!(order_id = %order.id, %cause, "reconciliation could not reach Stripe");
                ReconcileResult {
                    order_id: order.id,
                    result: Reconciliation::Failed,
                    status: order.status,
                    session_status: None,
                    payment_intent_status: None,
                    detail: Some("the payment provider could not be reached".into()),
                }
            }
            Err(other) => return Err(other),
        };
        results.push(result);
    }
    Ok(results)
}

/// The periodic sweep, as a job: stuck orders, then overdue subscriptions (`subscriptions/sweep.rs`).
/// Runs wherever a worker is free, retried like any job if the database fails under it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileStuckOrders {}

impl Job for ReconcileStuckOrders {
    const QUEUE: &'static str = "billing_reconcile_stuck_orders";
    type State = BillingState;

    async fn run(self, ctx: JobContext<BillingState>) -> Result<(), JobError> {
        let app = &ctx.state;
        let results = reconcile_stuck(app, app.config.reconcile_after)
            .await
            .context("sweeping stuck orders")?;
        let applied = results
            .iter()
            .filter(|r| r.result == Reconciliation::Applied)
            .count();
        tracing::info!(checked = results.len(), applied, "stuck orders swept");
        // The same sweep covers subscriptions whose period ended without a paid invoice.
        let read = subscriptions::sweep_subscriptions(app)
            .await
            .context("sweeping overdue subscriptions")?;
        tracing::info!(read, "overdue subscriptions swept");
        Ok(())
    }
}
