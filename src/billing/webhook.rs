//! Stripe webhook processing: one database transaction per event.
//!
//! 1. Decide what the event means ([`decide`]): find the order and lock it (`SELECT … FOR UPDATE`),
//!    so different events for one order apply one at a time, then check the event against the order
//!    and run the state machine. Nothing is written yet.
//! 2. Record the event in `stripe_events` with that outcome (primary key = Stripe's event id). A
//!    duplicate delivery — a retry, or the same event arriving on several connections at once —
//!    waits on the order's lock or on that key until the first transaction ends, then finds the
//!    event recorded and writes nothing. If the first one rolled back, the duplicate simply becomes
//!    the first.
//! 3. Carry the decision out: append to `order_events`, move the order, enqueue follow-up jobs (with
//!    idempotency keys derived from the order).
//! 4. Commit, then answer 200. Any failure rolls all of it back and answers 500: Stripe retries, and
//!    the retry starts from a clean slate. The failure itself is noted in `stripe_event_failures`
//!    (outside the rolled-back transaction) so operators see it and can [`replay`] it.
//!
//! Steps 1 and 3 ([`apply_to_order`]) are shared with reconciliation (`reconcile.rs`), which reads the
//! same facts from the Checkout Session instead of an event.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    BillingError, BillingState,
    events::{self, Envelope, Interpretation},
    orders::{self, OrderKey, OrderRow, PaymentLock, Source, StripeIds},
    state::{self, OrderEvent, Outcome},
};
use crate::db::stmt;

/// What became of an event (`stripe_events.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// The order moved.
    Applied,
    /// A duplicate or stale event for the order: recorded, nothing changed.
    Ignored,
    /// Contradicts what we know about the order: recorded for review, nothing changed.
    Rejected,
    /// A type we do not act on: recorded.
    UnhandledType,
    /// Names no order of ours: recorded for review.
    UnknownOrder,
    /// Already processed (Stripe retried it, or sent it twice at once): nothing done.
    Duplicate,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::UnhandledType => "unhandled_type",
            Self::UnknownOrder => "unknown_order",
            Self::Duplicate => "duplicate",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Applied,
            Self::Ignored,
            Self::Rejected,
            Self::UnhandledType,
            Self::UnknownOrder,
            Self::Duplicate,
        ]
        .into_iter()
        .find(|o| o.as_str() == value)
    }

    /// Outcomes an operator may replay: the event did nothing, and might now (the order exists, the
    /// type is handled, the contradiction was fixed). Applied and ignored events are final.
    pub fn is_replayable(self) -> bool {
        matches!(
            self,
            Self::UnknownOrder | Self::UnhandledType | Self::Rejected
        )
    }
}

/// The webhook's answer. Stripe only looks at the status; the body helps whoever reads the
/// delivery log in the Stripe dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"event_id": "evt_1QxYz2AbCdEfGh", "outcome": "applied"}))]
pub struct WebhookAck {
    pub event_id: String,
    pub outcome: EventOutcome,
}

/// Parses a verified payload into the envelope. The payload is stored as Stripe sent it: one parse
/// per delivery, no copy of the JSON tree and no re-serialising it for the database.
pub fn parse(payload: &[u8]) -> Result<(Envelope, &str), BillingError> {
    let invalid = |e: &dyn std::fmt::Display| BillingError::InvalidEvent(e.to_string());
    let text = std::str::from_utf8(payload).map_err(|e| invalid(&e))?;
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| invalid(&e))?;
    if envelope.id.is_empty() || envelope.event_type.is_empty() {
        return Err(BillingError::InvalidEvent("empty id or type".into()));
    }
    Ok((envelope, text))
}

pub async fn process(
    app: &BillingState,
    envelope: &Envelope,
    raw: &str,
) -> Result<WebhookAck, BillingError> {
    let processed = async {
        let txn = app.db.begin().await?;
        let outcome = process_in(app, &txn, envelope, raw).await?;
        txn.commit().await?;
        Ok::<_, DbErr>(outcome)
    }
    .await;
    let outcome = match processed {
        Ok(outcome) => outcome,
        Err(error) => {
            record_failure(app, envelope, raw, &error).await;
            return Err(error.into());
        }
    };
    tracing::info!(
        event_id = %envelope.id,
        event_type = %envelope.event_type,
        outcome = outcome.as_str(),
        "stripe event processed"
    );
    Ok(WebhookAck {
        event_id: envelope.id.clone(),
        outcome,
    })
}

pub(super) async fn process_in(
    app: &BillingState,
    txn: &DatabaseTransaction,
    envelope: &Envelope,
    raw: &str,
) -> Result<EventOutcome, DbErr> {
    let decision = decide(txn, envelope).await?;
    let created = DateTime::<Utc>::from_timestamp(envelope.created, 0).unwrap_or_else(Utc::now);
    // The gate: written before anything else, so a duplicate stops here having changed nothing.
    let recorded = txn
        .execute_raw(stmt(
            "INSERT INTO stripe_events \
                 (event_id, event_type, livemode, api_version, stripe_created, payload, outcome, order_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
            [
                envelope.id.clone().into(),
                envelope.event_type.clone().into(),
                envelope.livemode.into(),
                envelope.api_version.clone().into(),
                created.into(),
                raw.to_owned().into(),
                decision.event_outcome().as_str().into(),
                decision.order_id().into(),
                decision.detail().map(str::to_owned).into(),
            ],
        ))
        .await?
        .rows_affected();
    if recorded == 0 {
        return Ok(EventOutcome::Duplicate);
    }
    let source = Source::Stripe {
        event_id: &envelope.id,
    };
    decision.carry_out(app, txn, source).await?;
    Ok(decision.event_outcome())
}

/// What an event means for us, decided with its order locked and nothing written yet.
pub(super) enum Decision {
    UnhandledType,
    UnknownOrder,
    ForOrder {
        order: Box<OrderRow>,
        interpretation: Interpretation,
        outcome: Outcome,
    },
}

impl Decision {
    fn event_outcome(&self) -> EventOutcome {
        match self {
            Self::UnhandledType => EventOutcome::UnhandledType,
            Self::UnknownOrder => EventOutcome::UnknownOrder,
            Self::ForOrder { outcome, .. } => match outcome {
                Outcome::Applied { .. } => EventOutcome::Applied,
                Outcome::Ignored { .. } => EventOutcome::Ignored,
                Outcome::Rejected { .. } => EventOutcome::Rejected,
            },
        }
    }

    fn order_id(&self) -> Option<uuid::Uuid> {
        match self {
            Self::ForOrder { order, .. } => Some(order.id),
            _ => None,
        }
    }

    fn detail(&self) -> Option<&'static str> {
        match self {
            Self::UnhandledType => None,
            Self::UnknownOrder => {
                Some("no order matches the event's metadata, client_reference_id or payment intent")
            }
            Self::ForOrder { outcome, .. } => outcome.reason(),
        }
    }

    pub(super) async fn carry_out(
        &self,
        app: &BillingState,
        txn: &DatabaseTransaction,
        source: Source<'_>,
    ) -> Result<(), DbErr> {
        match self {
            Self::ForOrder {
                order,
                interpretation,
                outcome,
            } => record(app, txn, order, interpretation, outcome, source).await,
            Self::UnhandledType | Self::UnknownOrder => Ok(()),
        }
    }
}

/// Step 1: interprets the event, finds and locks its order, and judges the event against it.
pub(super) async fn decide(
    txn: &DatabaseTransaction,
    envelope: &Envelope,
) -> Result<Decision, DbErr> {
    let Some(interpretation) = events::interpret(envelope) else {
        return Ok(Decision::UnhandledType);
    };
    let Some(locked) = find_order(txn, &interpretation).await? else {
        return Ok(Decision::UnknownOrder);
    };
    let outcome = judge(&locked, &interpretation)?;
    Ok(Decision::ForOrder {
        order: Box::new(locked.order),
        interpretation,
        outcome,
    })
}

/// Applies what Stripe reported to the order locked in `txn`: checked against what we know, run
/// through the state machine, recorded in the audit trail and, when applied, the order moved and its
/// jobs enqueued. Reconciliation comes through here; webhooks take the same two steps with the event
/// recorded in between.
pub(crate) async fn apply_to_order(
    app: &BillingState,
    txn: &DatabaseTransaction,
    locked: &PaymentLock,
    interpretation: &Interpretation,
    source: Source<'_>,
) -> Result<Outcome, DbErr> {
    let outcome = judge(locked, interpretation)?;
    record(app, txn, &locked.order, interpretation, &outcome, source).await?;
    Ok(outcome)
}

/// The event checked against the order, then run through the state machine.
pub(super) fn judge(
    locked: &PaymentLock,
    interpretation: &Interpretation,
) -> Result<Outcome, DbErr> {
    let reason = contradiction(locked, interpretation);
    Ok(match reason {
        Some(reason) => Outcome::Rejected { reason },
        None => state::transition(locked.order.status, interpretation.event),
    })
}

/// Writes what [`judge`] decided: the audit row and, when applied, the order's move (remembering the
/// session and payment intent the event reveals) and its jobs.
pub(super) async fn record(
    app: &BillingState,
    txn: &DatabaseTransaction,
    order: &OrderRow,
    interpretation: &Interpretation,
    outcome: &Outcome,
    source: Source<'_>,
) -> Result<(), DbErr> {
    let revealed = StripeIds {
        checkout_session: interpretation.session.as_ref().map(|s| s.id.as_str()),
        payment_intent: interpretation.payment_intent.as_deref(),
    };
    orders::record_outcome(
        app,
        txn,
        order,
        interpretation.event,
        outcome,
        source,
        revealed,
    )
    .await
}

/// Notes a delivery whose processing failed (and rolled back), on its own connection. Best effort:
/// if the database is what failed, this fails too, and Stripe's retry is the record.
pub(super) async fn record_failure(
    app: &BillingState,
    envelope: &Envelope,
    raw: &str,
    error: &DbErr,
) {
    let noted = app
        .db
        .execute_raw(stmt(
            "INSERT INTO stripe_event_failures (event_id, event_type, payload, error) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO UPDATE SET error = EXCLUDED.error, \
                 failures = stripe_event_failures.failures + 1, last_failed_at = now()",
            [
                envelope.id.clone().into(),
                envelope.event_type.clone().into(),
                raw.to_owned().into(),
                error.to_string().into(),
            ],
        ))
        .await;
    if let Err(note_error) = noted {
        tracing::warn!(event_id = %envelope.id, %note_error, "could not note the failed event");
    }
}

/// A replayed event's new outcome, on its `stripe_events` row.
pub(super) async fn finish(
    txn: &DatabaseTransaction,
    envelope: &Envelope,
    decision: &Decision,
) -> Result<EventOutcome, DbErr> {
    let outcome = decision.event_outcome();
    txn.execute_raw(stmt(
        "UPDATE stripe_events SET outcome = $2, order_id = $3, detail = $4 WHERE event_id = $1",
        [
            envelope.id.clone().into(),
            outcome.as_str().into(),
            decision.order_id().into(),
            decision.detail().map(str::to_owned).into(),
        ],
    ))
    .await?;
    Ok(outcome)
}

/// The order an event is about, locked. Session and payment intent events name it in their metadata;
/// charge and dispute events reach it through the payment intent recorded at checkout completion.
pub(super) async fn find_order(
    txn: &DatabaseTransaction,
    event: &Interpretation,
) -> Result<Option<PaymentLock>, DbErr> {
    let payment_intent = event.payment_intent.as_deref();
    if let Some(id) = event.order_id
        && let Some(locked) =
            orders::lock_for_payment(txn, OrderKey::Id(id), payment_intent).await?
    {
        return Ok(Some(locked));
    }
    match payment_intent {
        Some(pi) => {
            orders::lock_for_payment(txn, OrderKey::PaymentIntent(pi), payment_intent).await
        }
        None => Ok(None),
    }
}

/// Facts in the event that contradict the order: such an event is rejected for review rather than
/// applied (a paid event for another amount must never deliver a licence).
pub(super) fn contradiction(locked: &PaymentLock, event: &Interpretation) -> Option<&'static str> {
    let order = &locked.order;
    if let Some(session) = &event.session {
        if order
            .stripe_checkout_session_id
            .as_deref()
            .is_some_and(|id| id != session.id)
        {
            return Some("the event is for another Checkout Session than the order's");
        }
        let pays = matches!(
            event.event,
            OrderEvent::CheckoutCompleted { paid: true } | OrderEvent::AsyncPaymentSucceeded
        );
        if pays
            && (session.amount_total != Some(order.amount_total)
                || session.currency.as_deref() != Some(order.currency.as_str()))
        {
            return Some("the session's amount or currency differs from the order's");
        }
    }
    if let (Some(known), Some(reported)) = (&order.stripe_payment_intent_id, &event.payment_intent)
        && known != reported
    {
        return Some("the event is for another payment intent than the order's");
    }
    if locked.payment_intent_taken {
        return Some("the event's payment intent belongs to another order");
    }
    None
}
