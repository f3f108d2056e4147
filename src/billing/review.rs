//! The webhook events an operator should look at: failed, naming no order, of a type we do not
//! handle, or rejected as contradicting their order.
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
    /// Processing failed and rolled back; Stripe retries it, and so can a replay.
    Failed,
    /// Names no order of ours.
    UnknownOrder,
    /// A type we do not act on.
    UnhandledType,
    /// Contradicted the order (amount, session, payment intent).
    Rejected,
}

impl ReviewReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::UnknownOrder => "unknown_order",
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
    "failures": 0,
    "at": "2026-11-23T12:00:00Z"
}))]
pub struct WebhookEventView {
    pub event_id: String,
    pub event_type: String,
    pub reason: ReviewReason,
    /// Why: the recorded detail, or the last processing error.
    pub detail: Option<String>,
    pub order_id: Option<Uuid>,
    /// Failed deliveries so far (0 for recorded events).
    pub failures: i32,
    /// When it was recorded, or last failed.
    pub at: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct ReviewRow {
    event_id: String,
    event_type: String,
    reason: String,
    detail: Option<String>,
    order_id: Option<Uuid>,
    failures: i32,
    at: DateTime<Utc>,
}

// A failure whose event has since been recorded (Stripe's retry or a replay succeeded) is resolved.
const REVIEW: &str = "SELECT * FROM ( \
    SELECT event_id, event_type, outcome AS reason, detail, order_id, 0 AS failures, received_at AS at \
    FROM stripe_events WHERE outcome IN ('unknown_order', 'unhandled_type', 'rejected') \
    UNION ALL \
    SELECT f.event_id, f.event_type, 'failed', f.error, NULL::uuid, f.failures, f.last_failed_at \
    FROM stripe_event_failures f \
    WHERE NOT EXISTS (SELECT 1 FROM stripe_events e WHERE e.event_id = f.event_id) \
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
                ReviewReason::Failed,
                ReviewReason::UnknownOrder,
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
                failures: row.failures,
                at: row.at,
            })
        })
        .collect()
}
