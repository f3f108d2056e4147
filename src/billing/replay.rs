//! Replaying a received webhook event (an operator's `POST /admin/webhook-events/{id}/replay`):
//! through the same processing as a delivery, so it never applies twice.
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    BillingError, BillingState, events::Envelope, orders::Source, webhook::EventOutcome,
    webhook::decide, webhook::finish, webhook::parse, webhook::process,
};
use crate::db::stmt;

/// The result of an operator's replay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"event_id": "evt_1QxYz2AbCdEfGh", "previous_outcome": "unknown_order",
                          "outcome": "applied", "replayed": true}))]
pub struct Replayed {
    pub event_id: String,
    /// What the event had come to before the replay; absent when its processing had failed (it was
    /// never recorded).
    pub previous_outcome: Option<EventOutcome>,
    pub outcome: EventOutcome,
    /// False when the event was already final (applied or ignored): nothing was run again.
    pub replayed: bool,
}

#[derive(FromQueryResult)]
pub(super) struct StoredEvent {
    payload: String,
    outcome: String,
}

/// Runs a stored event through processing again. `None` if no such event was received.
///
/// - Recorded with a replayable outcome (unknown order, unhandled type, rejected): steps 2–3 run
///   again under a lock on the `stripe_events` row, so concurrent replays take turns and the second
///   finds the first's outcome. An applied or ignored event is final and left alone, so replaying
///   can never apply an event twice.
/// - Failed (never recorded): the stored payload goes through [`process`], exactly as Stripe's
///   retry would, gate included.
pub async fn replay(app: &BillingState, event_id: &str) -> Result<Option<Replayed>, BillingError> {
    let txn = app.db.begin().await?;
    let stored = StoredEvent::find_by_statement(stmt(
        "SELECT payload, outcome FROM stripe_events WHERE event_id = $1 FOR UPDATE",
        [event_id.into()],
    ))
    .one(&txn)
    .await?;
    if let Some(stored) = stored {
        let previous = EventOutcome::parse(&stored.outcome).ok_or_else(|| {
            BillingError::Internal(anyhow::anyhow!("outcome {:?}", stored.outcome))
        })?;
        if !previous.is_replayable() {
            txn.rollback().await?;
            return Ok(Some(Replayed {
                event_id: event_id.to_owned(),
                previous_outcome: Some(previous),
                outcome: previous,
                replayed: false,
            }));
        }
        let (envelope, _) = parse_stored(event_id, &stored.payload)?;
        let decision = decide(&txn, &envelope).await?;
        let source = Source::Stripe {
            event_id: &envelope.id,
        };
        decision.carry_out(app, &txn, source).await?;
        let outcome = finish(&txn, &envelope, &decision).await?;
        txn.commit().await?;
        tracing::info!(
            event_id,
            outcome = outcome.as_str(),
            "stripe event replayed"
        );
        return Ok(Some(Replayed {
            event_id: event_id.to_owned(),
            previous_outcome: Some(previous),
            outcome,
            replayed: true,
        }));
    }
    txn.rollback().await?;
    let failed = app
        .db
        .query_one_raw(stmt(
            "SELECT payload FROM stripe_event_failures WHERE event_id = $1",
            [event_id.into()],
        ))
        .await?;
    let Some(row) = failed else {
        return Ok(None);
    };
    let payload: String = row.try_get("", "payload")?;
    let (envelope, raw) = parse_stored(event_id, &payload)?;
    let ack = process(app, &envelope, raw).await?;
    Ok(Some(Replayed {
        event_id: ack.event_id,
        previous_outcome: None,
        outcome: ack.outcome,
        replayed: true,
    }))
}

/// [`parse`] for a payload we stored ourselves: one that no longer parses is our fault, not the
/// sender's.
pub(super) fn parse_stored<'a>(
    event_id: &str,
    payload: &'a str,
) -> Result<(Envelope, &'a str), BillingError> {
    parse(payload.as_bytes()).map_err(|e| {
        BillingError::Internal(anyhow::Error::new(e).context(format!("stored event {event_id}")))
    })
}
