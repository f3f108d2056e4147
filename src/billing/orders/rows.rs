//! Order rows: read, locked (also by their payment), and moved by a state machine outcome, with
//! its audit row and follow-up jobs.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};
use uuid::Uuid;

use super::{
    jobs,
    state::{OrderEvent, OrderStatus, Outcome},
};
use crate::billing::app::BillingState;
use crate::db::{self, stmt};

/// An order row as stored.
#[derive(Debug, Clone, FromQueryResult)]
pub struct OrderRow {
    pub id: Uuid,
    /// The organisation that buys.
    pub org_id: Uuid,
    /// Who placed it: a person, or one of the org's API keys (exactly one is set).
    pub placed_by: Option<Uuid>,
    pub placed_by_key: Option<Uuid>,
    pub checkout_key: String,
    pub status: OrderStatus,
    pub currency: String,
    pub amount_total: i64,
    pub stripe_checkout_session_id: Option<String>,
    pub checkout_url: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub receipt_sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

db::text_column!(OrderStatus, OrderStatus::parse);

pub(super) const ORDER_COLUMNS: &str = "id, org_id, placed_by, placed_by_key, checkout_key, status, currency, amount_total, \
    stripe_checkout_session_id, checkout_url, stripe_payment_intent_id, paid_at, fulfilled_at, \
    receipt_sent_at, created_at";

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<OrderRow>, DbErr> {
    OrderRow::find_by_statement(stmt(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"),
        [id.into()],
    ))
    .one(db)
    .await
}

/// Locks the order row for the rest of `txn`. Everything that changes an order's status (webhooks,
/// jobs, the customer) takes this lock first, so two events for one order — `completed` and
/// `async_payment_succeeded` racing, a refund during licence delivery — apply one after the other,
/// each seeing the other's result.
pub async fn lock(txn: &DatabaseTransaction, id: Uuid) -> Result<Option<OrderRow>, DbErr> {
    OrderRow::find_by_statement(stmt(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"),
        [id.into()],
    ))
    .one(txn)
    .await
}

/// How to find the order Stripe reports on.
#[derive(Debug, Clone, Copy)]
pub enum OrderKey<'a> {
    Id(Uuid),
    /// Charge and dispute events name no order, only the payment intent recorded at payment.
    PaymentIntent(&'a str),
}

/// An order locked for a payment fact from Stripe (an event, a reconciled session).
#[derive(Debug, FromQueryResult)]
pub struct PaymentLock {
    #[sea_orm(nested)]
    pub order: OrderRow,
    /// Another order already holds the fact's payment intent. Intents are unique in `orders`, so
    /// such a fact must be rejected, not applied (applying it would fail on the constraint, answer
    /// 500 and make Stripe retry it forever).
    pub payment_intent_taken: bool,
}

/// [`lock`], by `key`, also learning in the same round trip whether `payment_intent` belongs to
/// another order.
pub async fn lock_for_payment(
    txn: &DatabaseTransaction,
    key: OrderKey<'_>,
    payment_intent: Option<&str>,
) -> Result<Option<PaymentLock>, DbErr> {
    let (condition, key): (_, sea_orm::Value) = match key {
        OrderKey::Id(id) => ("id = $1", id.into()),
        OrderKey::PaymentIntent(pi) => ("stripe_payment_intent_id = $1", pi.into()),
    };
    PaymentLock::find_by_statement(stmt(
        &format!(
            "SELECT {ORDER_COLUMNS}, \
                 EXISTS (SELECT 1 FROM orders other \
                         WHERE other.stripe_payment_intent_id = $2 AND other.id <> orders.id) \
                     AS payment_intent_taken \
             FROM orders WHERE {condition} FOR UPDATE"
        ),
        [key, payment_intent.map(str::to_owned).into()],
    ))
    .one(txn)
    .await
}

/// Stripe ids an applied event reveals about its order. The first ones seen are kept (the session id
/// may arrive in an event before checkout's own update stores it).
#[derive(Debug, Clone, Copy, Default)]
pub struct StripeIds<'a> {
    pub checkout_session: Option<&'a str>,
    pub payment_intent: Option<&'a str>,
}

/// Who reported an event, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Stripe {
        event_id: &'a str,
    },
    Job,
    Api,
    /// Read from Stripe by reconciliation (a webhook that never arrived).
    Reconcile,
}

pub(super) const AUDIT: &str = "INSERT INTO order_events \
    (order_id, source, stripe_event_id, event, from_status, to_status, outcome, reason)";

/// Records `outcome` of `event` on the locked `order` in the audit trail and, when applied, moves the
/// order and enqueues the follow-up jobs — all in `txn`, so either all of it happens or none.
pub async fn record_outcome(
    app: &BillingState,
    txn: &DatabaseTransaction,
    order: &OrderRow,
    event: OrderEvent,
    outcome: &Outcome,
    source: Source<'_>,
    revealed: StripeIds<'_>,
) -> Result<(), DbErr> {
    let (source_name, stripe_event_id) = match source {
        Source::Stripe { event_id } => ("stripe", Some(event_id.to_owned())),
        Source::Job => ("job", None),
        Source::Api => ("api", None),
        Source::Reconcile => ("reconcile", None),
    };
    let audit: Vec<sea_orm::Value> = vec![
        order.id.into(),
        source_name.into(),
        stripe_event_id.into(),
        event.name().into(),
        order.status.as_str().into(),
        outcome.label().into(),
        outcome.reason().map(str::to_owned).into(),
    ];
    let Outcome::Applied { to, effects } = outcome else {
        let insert = format!("{AUDIT} VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)");
        txn.execute_raw(stmt(&insert, audit)).await?;
        return Ok(());
    };
    // The audit row and the move, in one statement (one round trip on the hottest path).
    let mut values = audit;
    values.extend([
        to.as_str().into(),
        to.is_terminal().into(),
        revealed.checkout_session.map(str::to_owned).into(),
        revealed.payment_intent.map(str::to_owned).into(),
    ]);
    let audit_and_move = format!(
        "WITH audit AS ({AUDIT} VALUES ($1, $2, $3, $4, $5, $8, $6, $7)) \
         UPDATE orders SET status = $8, \
             paid_at = CASE WHEN $8 = 'paid' THEN now() ELSE paid_at END, \
             fulfilled_at = CASE WHEN $8 = 'fulfilled' THEN now() ELSE fulfilled_at END, \
             closed_at = CASE WHEN $9 THEN now() ELSE closed_at END, \
             stripe_checkout_session_id = COALESCE(stripe_checkout_session_id, $10), \
             stripe_payment_intent_id = COALESCE(stripe_payment_intent_id, $11) \
         WHERE id = $1"
    );
    txn.execute_raw(stmt(&audit_and_move, values)).await?;
    jobs::enqueue_effects(app, txn, order.id, effects).await
}
