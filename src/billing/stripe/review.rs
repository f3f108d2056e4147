//! The webhook events an operator should look at: waiting to be processed, failing (backing off),
//! dead, naming no order, of a type we do not handle, or rejected as contradicting their order.
use crate::db::stmt;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Why a webhook event is listed for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// Stored and not processed yet (listed so a stalled processor shows).
    Pending,
    /// Processing failed and rolled back; the processor retries it after a backoff, and a replay
    /// runs it now.
    Failed,
    /// Out of attempts: kept, with its last error, until replayed.
    Dead,
    /// Names no order of ours.
    UnknownOrder,
    /// A subscription or invoice of a customer that is no org of ours.
    UnknownCustomer,
    /// A type we do not act on.
    UnhandledType,
    /// Contradicted the order (amount, session, payment intent).
    Rejected,
}

impl ReviewReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::UnknownOrder => "unknown_order",
            Self::UnknownCustomer => "unknown_customer",
            Self::UnhandledType => "unhandled_type",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "event_id": "evt_1QxYz2AbCdEfGh",
    "event_type": "checkout.session.completed",
    "reason": "unknown_order",
    "detail": "no order matches the event's metadata, client_reference_id or payment intent",
    "order_id": null,
    "attempts": 1,
    "at": "2026-11-23T12:00:00Z"
}))]
pub struct WebhookEventView {
    pub event_id: String,
    pub event_type: String,
    pub reason: ReviewReason,
    /// Why: the recorded detail, or the last processing error.
    pub detail: Option<String>,
    pub order_id: Option<Uuid>,
    /// Processing attempts so far.
    pub attempts: i32,
    /// When it was received.
    pub at: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct ReviewRow {
    event_id: String,
    event_type: String,
    reason: String,
    detail: Option<String>,
    order_id: Option<Uuid>,
    attempts: i32,
    at: DateTime<Utc>,
}

const REVIEW: &str = "SELECT * FROM ( \
    SELECT event_id, event_type, \
        CASE WHEN status = 'processed' THEN outcome \
             WHEN status = 'dead' THEN 'dead' \
             WHEN last_error IS NOT NULL THEN 'failed' \
             ELSE 'pending' END AS reason, \
        coalesce(last_error, detail) AS detail, order_id, attempts, received_at AS at \
    FROM stripe_events \
    WHERE status <> 'processed' OR outcome IN ('unknown_order', 'unknown_customer', 'unhandled_type', 'rejected') \
) review WHERE ($1::text IS NULL OR reason = $1) ORDER BY at DESC, event_id LIMIT $2";

/// Webhook events needing a look, newest first.
pub async fn webhook_events_for_review(
    db: &impl ConnectionTrait,
    reason: Option<ReviewReason>,
    limit: u64,
) -> Result<Vec<WebhookEventView>, DbErr> {
    let rows = ReviewRow::find_by_statement(stmt(
        REVIEW,
        [
            reason.map(|r| r.as_str().to_owned()).into(),
            (limit as i64).into(),
        ],
    ))
    .all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let reason = [
                ReviewReason::Pending,
                ReviewReason::Failed,
                ReviewReason::Dead,
                ReviewReason::UnknownOrder,
                ReviewReason::UnknownCustomer,
                ReviewReason::UnhandledType,
                ReviewReason::Rejected,
            ]
            .into_iter()
            .find(|r| r.as_str() == row.reason)
            .ok_or_else(|| DbErr::Type(format!("review reason {:?}", row.reason)))?;
            Ok(WebhookEventView {
                event_id: row.event_id,
                event_type: row.event_type,
                reason,
                detail: row.detail,
                order_id: row.order_id,
                attempts: row.attempts,
                at: row.at,
            })
        })
        .collect()
}
