//! Subscription and invoice events, as the inbox's processor applies them (inside its
//! transaction, like order events).
//!
//! A subscription event is only a hint: the subscription is read from Stripe (under a lock that
//! keeps two reads of one subscription from overlapping, in any process) and our copy is brought to
//! what Stripe says *now*. So whatever the order of delivery — `updated` before `created`, `deleted`
//! before `updated`, duplicates — the copy ends equal to Stripe's state (cashier-stripe issues 1201
//! and 1760). `invoice.paid` applies from the invoice it carries (no read: renewals come in storms),
//! reading the subscription only when we have no copy yet.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult};
use uuid::Uuid;

use super::{
    copy::{self, Stored},
    facts::{FactsError, InvoiceFacts, SubscriptionFacts, expandable_id},
    notices::{self, Notice},
    stripe,
};
use crate::{
    billing::{
        app::BillingState,
        stripe::{Envelope, EventOutcome},
    },
    db::stmt,
};

/// The types handled here (besides `checkout.session.*` of subscription-mode sessions).
pub const HANDLED_TYPES: [&str; 9] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
];

/// What a subscription or invoice event asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// Re-read the subscription; `ended` and `trial_ending` also notify the org.
    Changed {
        subscription: String,
        ended: bool,
        trial_ending: bool,
    },
    InvoicePaid(InvoiceFacts),
    PaymentFailed(InvoiceFacts),
    ActionRequired(InvoiceFacts),
    /// A subscription-mode Checkout Session completed (or expired: `subscription` is none).
    Checkout {
        session: String,
        completed: bool,
        subscription: Option<String>,
    },
}

/// `None` when the event is not ours (an order's, or unhandled).
pub fn classify(envelope: &Envelope) -> Option<Result<SubscriptionEvent, FactsError>> {
    let object = &envelope.data.object;
    let invoice = || InvoiceFacts::read(object);
    let event = match envelope.event_type.as_str() {
        t if t.starts_with("customer.subscription.") && HANDLED_TYPES.contains(&t) => {
            let Some(id) = object["id"].as_str() else {
                return Some(Err(FactsError::Missing("id")));
            };
            Ok(SubscriptionEvent::Changed {
                subscription: id.to_owned(),
                ended: t == "customer.subscription.deleted",
                trial_ending: t == "customer.subscription.trial_will_end",
            })
        }
        "invoice.paid" => invoice().map(SubscriptionEvent::InvoicePaid),
        "invoice.payment_failed" => invoice().map(SubscriptionEvent::PaymentFailed),
        "invoice.payment_action_required" => invoice().map(SubscriptionEvent::ActionRequired),
        "checkout.session.completed" | "checkout.session.expired"
            if object["mode"] == "subscription" =>
        {
            let Some(id) = object["id"].as_str() else {
                return Some(Err(FactsError::Missing("id")));
            };
            Ok(SubscriptionEvent::Checkout {
                session: id.to_owned(),
                completed: envelope.event_type == "checkout.session.completed",
                subscription: expandable_id(&object["subscription"]),
            })
        }
        _ => return None,
    };
    Some(event)
}

/// What applying did: the event's outcome and, for review, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub outcome: EventOutcome,
    pub detail: Option<&'static str>,
}

impl Applied {
    const DONE: Self = Self {
        outcome: EventOutcome::Applied,
        detail: None,
    };
    const NO_SUBSCRIPTION: Self = Self {
        outcome: EventOutcome::Ignored,
        detail: Some("the invoice bills no subscription"),
    };
    const NOT_OURS: Self = Self {
        outcome: EventOutcome::UnknownCustomer,
        detail: Some("the subscription's customer is no org of ours"),
    };
}

pub async fn apply(
    app: &BillingState,
    txn: &DatabaseTransaction,
    event: SubscriptionEvent,
) -> Result<Applied, anyhow::Error> {
    match event {
        SubscriptionEvent::Changed {
            subscription,
            ended,
            trial_ending,
        } => {
            let Some(read) = refresh(app, txn, &subscription).await? else {
                return Ok(Applied::NOT_OURS);
            };
            if let Stored::Stale = read.stored {
                return Ok(Applied {
                    outcome: EventOutcome::Ignored,
                    detail: Some("a later read of the subscription is already stored"),
                });
            }
            if ended && read.facts.status.is_terminal() {
                notices::send(app, txn, read.org_id, Notice::Ended(&read.facts)).await?;
            }
            if trial_ending && let Some(end) = read.facts.trial_end {
                notices::send(app, txn, read.org_id, Notice::TrialEnding(&read.facts, end)).await?;
            }
            Ok(Applied::DONE)
        }
        SubscriptionEvent::InvoicePaid(invoice) => invoice_paid(app, txn, &invoice).await,
        SubscriptionEvent::PaymentFailed(invoice) => {
            let Some(subscription) = invoice.subscription.clone() else {
                return Ok(Applied::NO_SUBSCRIPTION);
            };
            let Some(read) = refresh(app, txn, &subscription).await? else {
                return Ok(Applied::NOT_OURS);
            };
            if dunning(txn, read.org_id, &subscription, &invoice, "failed").await? {
                notices::send(app, txn, read.org_id, Notice::PaymentFailed(&invoice)).await?;
            }
            Ok(Applied::DONE)
        }
        SubscriptionEvent::ActionRequired(invoice) => {
            let Some(subscription) = invoice.subscription.clone() else {
                return Ok(Applied::NO_SUBSCRIPTION);
            };
            let Some(read) = refresh(app, txn, &subscription).await? else {
                return Ok(Applied::NOT_OURS);
            };
            if dunning(txn, read.org_id, &subscription, &invoice, "action_required").await? {
                txn.execute_raw(stmt(
                    "UPDATE subscriptions SET action_required_invoice = $2 \
                     WHERE stripe_subscription_id = $1",
                    [subscription.into(), invoice.id.clone().into()],
                ))
                .await?;
                notices::send(app, txn, read.org_id, Notice::ActionRequired(&invoice)).await?;
            }
            Ok(Applied::DONE)
        }
        SubscriptionEvent::Checkout {
            session,
            completed,
            subscription,
        } => {
            txn.execute_raw(stmt(
                "UPDATE subscription_checkouts SET status = $2 \
                 WHERE stripe_session_id = $1 AND status IN ('creating', 'open')",
                [
                    session.into(),
                    (if completed { "completed" } else { "expired" }).into(),
                ],
            ))
            .await?;
            if let Some(subscription) = subscription
                && refresh(app, txn, &subscription).await?.is_none()
            {
                return Ok(Applied::NOT_OURS);
            }
            Ok(Applied::DONE)
        }
    }
}

/// A read of one subscription, stored.
pub struct Read {
    pub org_id: Uuid,
    pub facts: SubscriptionFacts,
    pub stored: Stored,
}

/// Reads the subscription from Stripe and stores it as our copy. Reads of one subscription never
/// overlap (a transaction-scoped advisory lock on its id, held until the copy is written), and
/// each records when it started (the database's clock, one for every process), so an earlier read
/// never overwrites a later one. `None` when the subscription belongs to no org of ours.
pub async fn refresh(
    app: &BillingState,
    txn: &DatabaseTransaction,
    subscription: &str,
) -> Result<Option<Read>, anyhow::Error> {
    #[derive(FromQueryResult)]
    struct Started {
        started: DateTime<Utc>,
    }
    let started = Started::find_by_statement(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('stripe-subscription:' || $1, 0)), \
            clock_timestamp() AS started",
        [subscription.into()],
    ))
    .one(txn)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no clock"))?
    .started;
    let object = stripe::retrieve_subscription(&app.stripe, subscription).await?;
    let facts = SubscriptionFacts::read(&object)?;
    let Some(org_id) = copy::org_of(txn, &facts.customer, facts.org_hint).await? else {
        return Ok(None);
    };
    copy::lock_org(txn, org_id).await?;
    let stored = copy::store(txn, org_id, &facts, started).await?;
    Ok(Some(Read {
        org_id,
        facts,
        stored,
    }))
}

/// Records a failed (or SCA-blocked) attempt at `invoice` in the dunning ledger. `false` when the
/// invoice is already paid (its `invoice.paid` came first): nothing to chase, no email. Decided by
/// the invoice itself (`paid_invoices`), never by the period it covers: a proration invoice for
/// seats added mid-period ends where the paid renewal does.
async fn dunning(
    txn: &DatabaseTransaction,
    org_id: Uuid,
    subscription: &str,
    invoice: &InvoiceFacts,
    status: &'static str,
) -> Result<bool, sea_orm::DbErr> {
    let recorded = txn
        .execute_raw(stmt(
            "INSERT INTO dunning_invoices (invoice_id, stripe_subscription_id, org_id, amount_due, \
                currency, attempt_count, status) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE NOT EXISTS (SELECT 1 FROM paid_invoices WHERE invoice_id = $1) \
             ON CONFLICT (invoice_id) DO UPDATE SET \
                attempt_count = greatest(dunning_invoices.attempt_count, EXCLUDED.attempt_count), \
                amount_due = EXCLUDED.amount_due, status = EXCLUDED.status \
             WHERE dunning_invoices.status <> 'paid'",
            [
                invoice.id.clone().into(),
                subscription.into(),
                org_id.into(),
                invoice.amount_due.into(),
                invoice.currency.clone().into(),
                invoice.attempt_count.into(),
                status.into(),
            ],
        ))
        .await?;
    Ok(recorded.rows_affected() > 0)
}

/// `invoice.paid`: the period it paid for is paid through; a subscription past due on that very
/// invoice is active again; a receipt goes out once per invoice.
async fn invoice_paid(
    app: &BillingState,
    txn: &DatabaseTransaction,
    invoice: &InvoiceFacts,
) -> Result<Applied, anyhow::Error> {
    let Some(subscription) = invoice.subscription.as_deref() else {
        return Ok(Applied::NO_SUBSCRIPTION);
    };
    #[derive(FromQueryResult)]
    struct Known {
        org_id: Uuid,
    }
    txn.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('stripe-subscription:' || $1, 0))",
        [subscription.into()],
    ))
    .await?;
    let known = Known::find_by_statement(stmt(
        "SELECT org_id FROM subscriptions WHERE stripe_subscription_id = $1",
        [subscription.into()],
    ))
    .one(txn)
    .await?;
    let org_id = match known {
        Some(known) => {
            copy::lock_org(txn, known.org_id).await?;
            known.org_id
        }
        // The first we hear of it: read it (which locks the org).
        None => match refresh(app, txn, subscription).await? {
            Some(read) => read.org_id,
            None => return Ok(Applied::NOT_OURS),
        },
    };
    txn.execute_raw(stmt(
        "UPDATE subscriptions SET \
            paid_through = greatest(paid_through, $2), \
            current_period_end = greatest(current_period_end, $2), \
            status_since = CASE WHEN status IN ('past_due', 'unpaid') \
                AND latest_invoice_id = $3 THEN now() ELSE status_since END, \
            status = CASE WHEN status IN ('past_due', 'unpaid') \
                AND latest_invoice_id = $3 THEN 'active' ELSE status END, \
            action_required_invoice = CASE WHEN action_required_invoice = $3 \
                THEN NULL ELSE action_required_invoice END \
         WHERE stripe_subscription_id = $1",
        [
            subscription.into(),
            invoice.period_end.into(),
            invoice.id.clone().into(),
        ],
    ))
    .await?;
    // Paid, whatever its period: a late failure of this invoice is no longer chased (`dunning`).
    txn.execute_raw(stmt(
        "INSERT INTO paid_invoices (invoice_id, stripe_subscription_id) VALUES ($1, $2) \
         ON CONFLICT (invoice_id) DO NOTHING",
        [invoice.id.clone().into(), subscription.into()],
    ))
    .await?;
    // Revenue recovered, if the invoice was in dunning.
    txn.execute_raw(stmt(
        "UPDATE dunning_invoices SET status = 'paid', paid_at = coalesce(paid_at, now()), \
            amount_paid = $2 WHERE invoice_id = $1",
        [invoice.id.clone().into(), invoice.amount_paid.into()],
    ))
    .await?;
    if invoice.amount_paid > 0 {
        notices::send(app, txn, org_id, Notice::Paid(invoice)).await?;
    }
    Ok(Applied::DONE)
}
