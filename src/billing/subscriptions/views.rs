//! The subscription as the API shows it.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{copy::CopyRow, facts::SubscriptionStatus, plans::Interval};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    /// None: a price that is not one of our plans.
    pub plan: Option<String>,
    pub interval: Option<Interval>,
    pub status: Option<SubscriptionStatus>,
    pub seats: i32,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    /// Ends at `current_period_end` (resume to undo).
    pub cancel_at_period_end: bool,
    pub trial_end: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<CopyRow> for SubscriptionView {
    fn from(row: CopyRow) -> Self {
        Self {
            id: row.id,
            status: row.status(),
            plan: row.plan_key,
            interval: row.interval.as_deref().and_then(Interval::parse),
            seats: row.quantity,
            current_period_start: row.current_period_start,
            current_period_end: row.current_period_end,
            cancel_at_period_end: row.cancel_at_period_end,
            trial_end: row.trial_end,
            ended_at: row.ended_at,
        }
    }
}
