//! Reconciliation: orders still `pending_payment` long after checkout — their webhook never came
//! (endpoint down past Stripe's retries, a misconfigured secret, an event lost in a deploy) — are
//! brought in line by asking Stripe what became of their Checkout Session.
//!
//! The session is read outside any transaction (no lock is held across a network call), turned into
//! the event a webhook would have carried ([`events::interpret_session`]) and applied through the
//! webhook's own path ([`webhook::apply_to_order`]) under the order's row lock. The state machine then
//! makes every race harmless: a webhook landing meanwhile, another instance reconciling the same
//! order, an admin clicking twice — whoever comes second finds the order moved and is ignored.
//!
//! The sweep runs as a job ([`ReconcileStuckOrders`]), enqueued by every worker process each
//! `BILLING_RECONCILE_INTERVAL_SECS` under an idempotency key naming the interval: with several
//! instances, one job per interval runs.
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    BillingError, events, orders,
    orders::{OrderKey, Source},
    sql,
    state::{OrderStatus, Outcome},
    webhook,
};
use crate::{
    jobs::{Job, JobContext, JobError, JobOptions},
    startup::AppState,
};

/// At most this many orders per sweep (oldest first); the next sweep takes the rest.
pub const SWEEP_LIMIT: u64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
    "user_id": "0193a4b0-0000-7000-8000-0000000000aa",
    "currency": "usd",
    "amount_total": 4900,
    "stripe_checkout_session_id": "cs_test_a1b2c3",
    "created_at": "2026-11-23T12:00:00Z"
}))]
pub struct StuckOrder {
    pub id: Uuid,
    pub user_id: Uuid,
    pub currency: String,
    pub amount_total: i64,
    /// Absent when creating the session failed: there is nothing at Stripe to reconcile with.
    pub stripe_checkout_session_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What reconciling one order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reconciliation {
    /// The session's outcome moved the order.
    Applied,
    /// The session is still open: the customer may yet pay. Nothing changed.
    StillOpen,
    /// The order is no longer pending (a webhook or an earlier reconciliation got there first).
    NotPending,
    /// The order has no Checkout Session at Stripe.
    NoSession,
    /// The session's outcome did not move the order (recorded in its audit trail).
    Ignored,
    /// The session contradicts the order (another amount, another session): recorded for review.
    Rejected,
    /// Stripe could not be asked; the next sweep tries again.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "order_id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
    "result": "applied",
    "status": "paid",
    "session_status": "complete",
    "detail": null
}))]
pub struct ReconcileResult {
    pub order_id: Uuid,
    pub result: Reconciliation,
    /// The order's status afterwards.
    pub status: OrderStatus,
    /// The Checkout Session's status at Stripe (`open`, `complete`, `expired`), when it was fetched.
    pub session_status: Option<String>,
    pub detail: Option<String>,
}

/// Orders `pending_payment` for longer than `older_than`, oldest first.
pub async fn stuck_orders(
    db: &impl sea_orm::ConnectionTrait,
    older_than: Duration,
    limit: u64,
) -> Result<Vec<StuckOrder>, DbErr> {
    StuckOrder::find_by_statement(sql(
        "SELECT id, user_id, currency, amount_total, stripe_checkout_session_id, created_at \
         FROM orders WHERE status = 'pending_payment' \
           AND created_at < now() - $1 * interval '1 second' \
         ORDER BY created_at, id LIMIT $2",
        [(older_than.as_secs() as i64).into(), (limit as i64).into()],
    ))
    .all(db)
    .await
}

/// Reconciles one order with its Checkout Session. Safe to run any number of times, anywhere.
pub async fn reconcile_order(
    app: &AppState,
    order_id: Uuid,
) -> Result<ReconcileResult, BillingError> {
    let order = orders::find(&app.db, order_id)
        .await?
        .ok_or(BillingError::OrderNotFound)?;
    let result =
        |result, status, session_status: Option<&str>, detail: Option<&str>| ReconcileResult {
            order_id,
            result,
            status,
            session_status: session_status.map(str::to_owned),
            detail: detail.map(str::to_owned),
        };
    let status = order.status()?;
    if status != OrderStatus::PendingPayment {
        return Ok(result(Reconciliation::NotPending, status, None, None));
    }
    let Some(session_id) = order.stripe_checkout_session_id.as_deref() else {
        return Ok(result(Reconciliation::NoSession, status, None, None));
    };
    let session = app.stripe.retrieve_checkout_session(session_id).await?;
    let session_status = session["status"].as_str();
    let Some(interpretation) = events::interpret_session(&session) else {
        return Ok(result(
            Reconciliation::StillOpen,
            status,
            session_status,
            None,
        ));
    };

    let txn = app.db.begin().await?;
    let payment_intent = interpretation.payment_intent.as_deref();
    let locked = orders::lock_for_payment(&txn, OrderKey::Id(order_id), payment_intent)
        .await?
        .ok_or(BillingError::OrderNotFound)?;
    let outcome =
        webhook::apply_to_order(app, &txn, &locked, &interpretation, Source::Reconcile).await?;
    let order = locked.order;
    txn.commit().await?;
    let (kind, status) = match &outcome {
        Outcome::Applied { to, .. } => (Reconciliation::Applied, *to),
        Outcome::Ignored { .. } => (Reconciliation::Ignored, order.status()?),
        Outcome::Rejected { .. } => (Reconciliation::Rejected, order.status()?),
    };
    tracing::info!(%order_id, result = ?kind, to = status.as_str(), "order reconciled");
    Ok(result(kind, status, session_status, outcome.reason()))
}

/// Reconciles the stuck orders (older than `older_than`, at most [`SWEEP_LIMIT`]). One order's failure
/// (Stripe unreachable) is reported in its result and does not stop the others.
pub async fn reconcile_stuck(
    app: &AppState,
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
                    status: OrderStatus::PendingPayment,
                    session_status: None,
                    detail: Some("the payment provider could not be reached".into()),
                }
            }
            Err(other) => return Err(other),
        };
        results.push(result);
    }
    Ok(results)
}

/// The periodic sweep, as a job: runs wherever a worker is free, retried like any job if the
/// database fails under it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileStuckOrders {}

impl Job for ReconcileStuckOrders {
    const QUEUE: &'static str = "billing_reconcile_stuck_orders";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let app = &ctx.app;
        let results = reconcile_stuck(app, app.config.billing.reconcile_after)
            .await
            .map_err(|e| JobError::Other(e.to_string()))?;
        let applied = results
            .iter()
            .filter(|r| r.result == Reconciliation::Applied)
            .count();
        tracing::info!(checked = results.len(), applied, "stuck orders swept");
        Ok(())
    }
}

/// Enqueues [`ReconcileStuckOrders`] every `BILLING_RECONCILE_INTERVAL_SECS` until `shutdown`. The
/// key names the interval (`reconcile:<n>`, n = unix time / interval), so however many processes
/// run this, each interval's sweep is queued once.
pub async fn schedule(app: AppState, shutdown: CancellationToken) {
    let every = app.config.billing.reconcile_interval;
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let slot = Utc::now().timestamp() as u64 / every.as_secs().max(1);
        let key = JobOptions::idempotency_key(format!("reconcile:{slot}"));
        if let Err(error) = app.jobs.push(&app.db, &ReconcileStuckOrders {}, key).await {
            tracing::warn!(%error, "could not enqueue the stuck-order sweep");
        }
    }
}
