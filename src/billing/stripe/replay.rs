//! Replaying a stored webhook event (an operator's `POST /admin/webhook-events/{id}/replay`):
//! through the processor's own claim and apply, so it never applies twice.
//!
//! A pending event (also one backing off after a failure) is processed now; a dead one, or one
//! processed with an outcome worth another look (unknown order, unhandled type, rejected), is
//! processed again with fresh attempts. An applied or ignored event is final and left alone. Racing
//! replays take turns at the claim: one runs the event, the others wait for it and report its
//! outcome with `replayed: false`.
use std::time::Duration;

use sea_orm::{DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{event::EventOutcome, processor::Processor};
use crate::billing::{app::BillingState, error::BillingError};
use crate::db::stmt;

/// Where an event is in the inbox (`stripe_events.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboxStatus {
    /// Stored, waiting for a processor (or backing off after a failure).
    Pending,
    /// Claimed by a processor.
    Processing,
    /// Applied to our data; its outcome says how.
    Processed,
    /// Out of attempts: kept for review and replay.
    Dead,
}

impl InboxStatus {
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Processing, Self::Processed, Self::Dead]
            .into_iter()
            .find(|s| s.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Dead => "dead",
        }
    }
}

/// The result of an operator's replay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"event_id": "evt_1QxYz2AbCdEfGh", "previous_outcome": "unknown_order",
                          "outcome": "applied", "status": "processed", "replayed": true}))]
pub struct Replayed {
    pub event_id: String,
    /// What the event had come to before the replay; absent when it had not been processed (it
    /// was pending or dead).
    pub previous_outcome: Option<EventOutcome>,
    /// What it came to now; absent when it failed again (see `status`, and the review's detail).
    pub outcome: Option<EventOutcome>,
    pub status: InboxStatus,
    /// False when nothing was run: the event was already final (applied or ignored), or another
    /// replay ran it meanwhile.
    pub replayed: bool,
}

#[derive(FromQueryResult)]
struct Now {
    status: String,
    outcome: Option<String>,
}

/// Replays `event_id`; `None` if no such event was received.
pub async fn replay(app: &BillingState, event_id: &str) -> Result<Option<Replayed>, BillingError> {
    let processor = Processor::new(app.clone());
    let deadline = tokio::time::Instant::now() + app.config.inbox.claim_ttl;
    loop {
        if let Some((claimed, previous)) = processor.claim_for_replay(event_id).await? {
            processor.process_claimed(claimed).await;
            let now = now(app, event_id).await?.ok_or_else(|| {
                BillingError::Internal(anyhow::anyhow!("event {event_id} vanished mid-replay"))
            })?;
            let previous_outcome = previous.as_deref().map(outcome).transpose()?;
            return Ok(Some(view(event_id, previous_outcome, &now, true)?));
        }
        let Some(now) = now(app, event_id).await? else {
            return Ok(None);
        };
        // Not claimable: final, or in flight (here, elsewhere, or another event of its object).
        let current = now.outcome.as_deref().map(outcome).transpose()?;
        let is_final = now.status == "processed" && current.is_some_and(|o| !o.is_replayable());
        if is_final || tokio::time::Instant::now() >= deadline {
            return Ok(Some(view(event_id, current, &now, false)?));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn now(app: &BillingState, event_id: &str) -> Result<Option<Now>, DbErr> {
    Now::find_by_statement(stmt(
        "SELECT status, outcome FROM stripe_events WHERE event_id = $1",
        [event_id.into()],
    ))
    .one(&app.db)
    .await
}

fn view(
    event_id: &str,
    previous_outcome: Option<EventOutcome>,
    now: &Now,
    replayed: bool,
) -> Result<Replayed, BillingError> {
    let status = InboxStatus::parse(&now.status)
        .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("status {:?}", now.status)))?;
    Ok(Replayed {
        event_id: event_id.to_owned(),
        previous_outcome,
        outcome: now.outcome.as_deref().map(outcome).transpose()?,
        status,
        replayed,
    })
}

fn outcome(value: &str) -> Result<EventOutcome, BillingError> {
    EventOutcome::parse(value)
        .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("outcome {value:?}")))
}
