//! Orders: checkout, the customer's views, and applying state machine outcomes to a locked order.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::BillingState;
use super::{
    BillingError, catalogue, jobs,
    state::{OrderEvent, OrderStatus, Outcome},
    stripe_api::{SessionLine, SessionRequest},
};
use crate::db::stmt;

pub const MAX_QUANTITY: u32 = 100;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product_id": "0193a4c0-0000-7000-8000-000000000001", "quantity": 1}))]
pub struct CheckoutRequest {
    pub product_id: Uuid,
    /// 1 to 100; defaults to 1.
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "order_id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3",
    "status": "pending_payment"
}))]
pub struct CheckoutResponse {
    pub order_id: Uuid,
    /// Where to send the customer to pay; absent once the order no longer awaits payment.
    pub checkout_url: Option<String>,
    pub status: OrderStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
    "status": "fulfilled",
    "currency": "usd",
    "amount_total": 4900,
    "lines": [{"product_id": "0193a4c0-0000-7000-8000-000000000001", "product_name": "Ironclad Pro",
               "unit_amount": 4900, "quantity": 1}],
    "created_at": "2026-11-23T12:00:00Z",
    "paid_at": "2026-11-23T12:01:10Z",
    "fulfilled_at": "2026-11-23T12:01:11Z"
}))]
pub struct OrderView {
    pub id: Uuid,
    pub status: OrderStatus,
    pub currency: String,
    /// In the currency's smallest unit.
    pub amount_total: i64,
    pub lines: Vec<OrderLineView>,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub fulfilled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, FromQueryResult)]
#[schema(example = json!({"product_id": "0193a4c0-0000-7000-8000-000000000001",
                          "product_name": "Ironclad Pro", "unit_amount": 4900, "quantity": 1}))]
pub struct OrderLineView {
    pub product_id: Uuid,
    pub product_name: String,
    pub unit_amount: i64,
    pub quantity: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "id": "0193a4c2-0000-7000-8000-00000000000a",
    "order_id": "0193a4c1-5b2e-7c3d-9a4f-2b1c0d9e8f7a",
    "product_id": "0193a4c0-0000-7000-8000-000000000001",
    "product_name": "Ironclad Pro",
    "license_key": "IRON-7Q2M-K9XD-4HVB-T3NC",
    "seats": 1,
    "status": "active",
    "created_at": "2026-11-23T12:01:11Z"
}))]
pub struct LicenseView {
    pub id: Uuid,
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub product_name: String,
    pub license_key: String,
    pub seats: i32,
    /// `active`, `suspended` (a dispute is open) or `revoked` (refunded).
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// An order row as stored.
#[derive(Debug, Clone, FromQueryResult)]
pub struct OrderRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub checkout_key: String,
    pub status: String,
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

impl OrderRow {
    pub fn status(&self) -> Result<OrderStatus, DbErr> {
        OrderStatus::parse(&self.status)
            .ok_or_else(|| DbErr::Type(format!("unknown order status {:?}", self.status)))
    }
}

const ORDER_COLUMNS: &str = "id, user_id, checkout_key, status, currency, amount_total, \
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

const AUDIT: &str = "INSERT INTO order_events \
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
        order.status.clone().into(),
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

/// `POST /billing/checkout`: finds or creates the order for (user, `checkout_key`), then makes sure
/// it has a Checkout Session. Safe to call any number of times with the same key.
pub async fn checkout(
    app: &BillingState,
    user_id: Uuid,
    checkout_key: &str,
    request: &CheckoutRequest,
) -> Result<(CheckoutResponse, bool), BillingError> {
    if !(1..=MAX_QUANTITY).contains(&request.quantity) {
        return Err(BillingError::Validation(format!(
            "quantity must be between 1 and {MAX_QUANTITY}"
        )));
    }
    let config = &app.config;
    let product = catalogue::find_on_sale(&app.db, &config.currency, request.product_id)
        .await?
        .ok_or(BillingError::ProductNotFound(request.product_id))?;

    let (order, created) = find_or_create(app, user_id, checkout_key, request, &product).await?;
    let status = order.status()?;
    if status != OrderStatus::PendingPayment {
        return Ok((
            CheckoutResponse {
                order_id: order.id,
                checkout_url: None,
                status,
            },
            created,
        ));
    }
    if let Some(url) = order.checkout_url.clone() {
        return Ok((
            CheckoutResponse {
                order_id: order.id,
                checkout_url: Some(url),
                status,
            },
            created,
        ));
    }
    // The order is committed before Stripe is called: the session's events can always find it, and no
    // transaction stays open across a network call. If this call fails the order waits, and a retry
    // (same Idempotency-Key → same order → same Stripe idempotency key) picks up where it stopped.
    let email = customer_email(&app.db, user_id).await?;
    let line = SessionLine {
        name: &product.name,
        unit_amount: product.unit_amount,
        quantity: u64::from(request.quantity),
    };
    let session = app
        .stripe
        .create_checkout_session(
            &SessionRequest {
                order_id: order.id,
                user_id,
                customer_email: &email,
                currency: &order.currency,
                amount_total: order.amount_total,
                lines: vec![line],
            },
            config,
        )
        .await?;
    // Only while the order still awaits its session: canceled or expired meanwhile (by the customer,
    // by reconciliation), the new session is never handed out and lapses unpaid at Stripe.
    let handed_out = app
        .db
        .execute_raw(stmt(
            "UPDATE orders SET stripe_checkout_session_id = $2, checkout_url = $3 \
             WHERE id = $1 AND status = 'pending_payment' \
               AND coalesce(stripe_checkout_session_id, $2) = $2",
            [
                order.id.into(),
                session.id.into(),
                session.url.clone().into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1;
    if !handed_out {
        let current = find(&app.db, order.id)
            .await?
            .ok_or(BillingError::OrderNotFound)?;
        let status = current.status()?;
        return Ok((
            CheckoutResponse {
                order_id: current.id,
                checkout_url: current
                    .checkout_url
                    .filter(|_| status == OrderStatus::PendingPayment),
                status,
            },
            created,
        ));
    }
    Ok((
        CheckoutResponse {
            order_id: order.id,
            checkout_url: Some(session.url),
            status,
        },
        created,
    ))
}

async fn find_or_create(
    app: &BillingState,
    user_id: Uuid,
    checkout_key: &str,
    request: &CheckoutRequest,
    product: &catalogue::Product,
) -> Result<(OrderRow, bool), BillingError> {
    let txn = app.db.begin().await?;
    let amount_total = product.unit_amount * i64::from(request.quantity);
    let id = Uuid::now_v7();
    // The unique (user_id, checkout_key) makes a concurrent or late duplicate find this order rather
    // than create a second one, even when the idempotency middleware's record is gone.
    let inserted = txn
        .execute_raw(stmt(
            "INSERT INTO orders (id, user_id, checkout_key, currency, amount_total) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, checkout_key) DO NOTHING",
            [
                id.into(),
                user_id.into(),
                checkout_key.into(),
                product.currency.clone().into(),
                amount_total.into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1;
    if inserted {
        txn.execute_raw(stmt(
            "INSERT INTO order_lines (id, order_id, product_id, product_name, unit_amount, quantity, seats) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                Uuid::now_v7().into(),
                id.into(),
                product.id.into(),
                product.name.clone().into(),
                product.unit_amount.into(),
                (request.quantity as i32).into(),
                product.seats.into(),
            ],
        ))
        .await?;
        txn.execute_raw(stmt(
            "INSERT INTO order_events (order_id, source, event, to_status, outcome) \
             VALUES ($1, 'api', 'checkout_started', 'pending_payment', 'applied')",
            [id.into()],
        ))
        .await?;
    }
    let order = OrderRow::find_by_statement(stmt(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND checkout_key = $2"),
        [user_id.into(), checkout_key.into()],
    ))
    .one(&txn)
    .await?
    .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("order vanished after insert")))?;
    if !inserted {
        let lines = lines_where(&txn, "order_id = $1", order.id.into()).await?;
        let same = lines.len() == 1
            && lines[0].1.product_id == request.product_id
            && lines[0].1.quantity == request.quantity as i32;
        if !same {
            return Err(BillingError::CheckoutKeyReused);
        }
    }
    txn.commit().await?;
    Ok((order, inserted))
}

async fn customer_email(db: &impl ConnectionTrait, user_id: Uuid) -> Result<String, BillingError> {
    let row = db
        .query_one_raw(stmt(
            "SELECT email FROM users WHERE id = $1",
            [user_id.into()],
        ))
        .await?
        .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("user {user_id} does not exist")))?;
    Ok(row.try_get("", "email")?)
}

#[derive(FromQueryResult)]
struct LineRow {
    order_id: Uuid,
    product_id: Uuid,
    product_name: String,
    unit_amount: i64,
    quantity: i32,
}

/// Lines of the orders matching `filter` (a condition on `order_id` with one parameter, `$1`).
async fn lines_where(
    db: &impl ConnectionTrait,
    filter: &str,
    value: sea_orm::Value,
) -> Result<Vec<(Uuid, OrderLineView)>, DbErr> {
    let rows = LineRow::find_by_statement(stmt(
        &format!(
            "SELECT order_id, product_id, product_name, unit_amount, quantity FROM order_lines \
             WHERE {filter} ORDER BY product_name"
        ),
        [value],
    ))
    .all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.order_id,
                OrderLineView {
                    product_id: r.product_id,
                    product_name: r.product_name,
                    unit_amount: r.unit_amount,
                    quantity: r.quantity,
                },
            )
        })
        .collect())
}

fn views(rows: Vec<OrderRow>, lines: Vec<(Uuid, OrderLineView)>) -> Result<Vec<OrderView>, DbErr> {
    rows.into_iter()
        .map(|order| {
            Ok(OrderView {
                id: order.id,
                status: order.status()?,
                lines: lines
                    .iter()
                    .filter(|(id, _)| *id == order.id)
                    .map(|(_, line)| line.clone())
                    .collect(),
                currency: order.currency,
                amount_total: order.amount_total,
                created_at: order.created_at,
                paid_at: order.paid_at,
                fulfilled_at: order.fulfilled_at,
            })
        })
        .collect()
}

/// The customer's orders, newest first.
pub async fn list_for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Vec<OrderView>, DbErr> {
    let rows = OrderRow::find_by_statement(stmt(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 200"),
        [user_id.into()],
    ))
    .all(db)
    .await?;
    let lines = lines_where(
        db,
        "order_id IN (SELECT id FROM orders WHERE user_id = $1)",
        user_id.into(),
    )
    .await?;
    views(rows, lines)
}

/// One of the customer's orders; another user's order does not exist for them.
pub async fn find_for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<OrderView>, DbErr> {
    let rows = OrderRow::find_by_statement(stmt(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2"),
        [id.into(), user_id.into()],
    ))
    .all(db)
    .await?;
    let lines = lines_where(db, "order_id = $1", id.into()).await?;
    Ok(views(rows, lines)?.pop())
}

/// The customer's licences, newest first (revoked ones included, so a refund is visible).
pub async fn licenses_for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Vec<LicenseView>, DbErr> {
    LicenseView::find_by_statement(stmt(
        "SELECT l.id, l.order_id, l.product_id, ol.product_name, l.license_key, l.seats, l.status, l.created_at \
         FROM licenses l JOIN order_lines ol ON ol.id = l.order_line_id \
         WHERE l.user_id = $1 ORDER BY l.created_at DESC, l.id",
        [user_id.into()],
    ))
    .all(db)
    .await
}
