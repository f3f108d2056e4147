//! What a Stripe event does to our orders, decided and applied inside the processor's transaction
//! (`stripe/processor/`; the webhook itself only stores the event, `stripe/inbox.rs`).
//!
//! 1. Decide what the event means ([`decide`]): find the order and lock it (`SELECT … FOR UPDATE`),
//!    so different events for one order apply one at a time, then check the event against the order
//!    and run the state machine. Nothing is written yet.
//! 2. Carry the decision out ([`Decision::carry_out`]): append to `order_events`, move the order,
//!    enqueue follow-up jobs (with idempotency keys derived from the order). The processor then
//!    marks the event processed with the decision's outcome, in the same transaction.
//!
//! Both steps ([`apply_to_order`]) are shared with reconciliation (`reconcile.rs`), which reads the
//! same facts from the Checkout Session instead of an event.
use sea_orm::{DatabaseTransaction, DbErr};

use super::{
    events::{self, Interpretation},
    rows::{self, OrderKey, OrderRow, PaymentLock, Source, StripeIds},
    state::{self, OrderEvent, Outcome},
};
use crate::billing::{
    app::BillingState,
    stripe::{Envelope, EventOutcome},
};

/// What an event means for us, decided with its order locked and nothing written yet.
pub(in crate::billing) enum Decision {
    UnhandledType,
    UnknownOrder,
    ForOrder {
        order: Box<OrderRow>,
        interpretation: Interpretation,
        outcome: Outcome,
    },
}

impl Decision {
    pub(in crate::billing) fn event_outcome(&self) -> EventOutcome {
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

    pub(in crate::billing) fn order_id(&self) -> Option<uuid::Uuid> {
        match self {
            Self::ForOrder { order, .. } => Some(order.id),
            _ => None,
        }
    }

    pub(in crate::billing) fn detail(&self) -> Option<&'static str> {
        match self {
            Self::UnhandledType => None,
            Self::UnknownOrder => {
                Some("no order matches the event's metadata, client_reference_id or payment intent")
            }
            Self::ForOrder { outcome, .. } => outcome.reason(),
        }
    }

    pub(in crate::billing) async fn carry_out(
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
pub(in crate::billing) async fn decide(
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
    rows::record_outcome(
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

/// The order an event is about, locked. Session and payment intent events name it in their metadata;
/// charge and dispute events reach it through the payment intent recorded at checkout completion.
pub(super) async fn find_order(
    txn: &DatabaseTransaction,
    event: &Interpretation,
) -> Result<Option<PaymentLock>, DbErr> {
    let payment_intent = event.payment_intent.as_deref();
    if let Some(id) = event.order_id
        && let Some(locked) = rows::lock_for_payment(txn, OrderKey::Id(id), payment_intent).await?
    {
        return Ok(Some(locked));
    }
    match payment_intent {
        Some(pi) => rows::lock_for_payment(txn, OrderKey::PaymentIntent(pi), payment_intent).await,
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
