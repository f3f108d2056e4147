//! Checkout: one order per Idempotency-Key, its Checkout Session created at Stripe (idempotently,
//! so a retried checkout never opens a second session), and the session handed out only while the
//! order is still pending.
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use uuid::Uuid;

use super::{
    catalogue,
    rows::{ORDER_COLUMNS, OrderRow, find},
    state::OrderStatus,
    views::{CheckoutRequest, CheckoutResponse, lines_where},
};
use crate::billing::{
    app::BillingState,
    contact::{self, Recipient},
    customer::Customer,
    error::BillingError,
    stripe::{SessionLine, SessionRequest},
};
use crate::{db::stmt, http::idempotency::IdempotencyKey};

pub const MAX_QUANTITY: u32 = 100;

/// `POST /orgs/{org}/billing/checkout`: finds or creates the order for (org, who places it,
/// `checkout_key`), then makes sure it has a Checkout Session. Safe to call any number of times
/// with the same key.
#[tracing::instrument(level = "info", skip_all)]
pub async fn checkout(
    app: &BillingState,
    customer: Customer,
    checkout_key: &IdempotencyKey,
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

    let (order, created) = find_or_create(app, customer, checkout_key, request, &product).await?;
    let status = order.status;
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
    let email = contact::recipient(&app.db, order.id, Recipient::Buyer).await?;
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
                org_id: customer.org_id,
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
        let status = current.status;
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

pub(super) async fn find_or_create(
    app: &BillingState,
    customer: Customer,
    checkout_key: &IdempotencyKey,
    request: &CheckoutRequest,
    product: &catalogue::Product,
) -> Result<(OrderRow, bool), BillingError> {
    let txn = app.db.begin().await?;
    let amount_total = product.unit_amount * i64::from(request.quantity);
    let id = Uuid::now_v7();
    let (placed_by, placed_by_key) = customer.placer.columns();
    // The unique (org, checkout_key, who placed it) makes a concurrent or late duplicate find this
    // order rather than create a second one, even when the idempotency middleware's record is gone.
    let inserted = txn
        .execute_raw(stmt(
            "INSERT INTO orders (id, org_id, placed_by, placed_by_key, checkout_key, currency, \
                 amount_total, traceparent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT ON CONSTRAINT orders_checkout_key DO NOTHING",
            [
                id.into(),
                customer.org_id.into(),
                placed_by.into(),
                placed_by_key.into(),
                checkout_key.as_str().into(),
                product.currency.clone().into(),
                amount_total.into(),
                crate::telemetry::traceparent().into(),
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
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE org_id = $1 AND checkout_key = $2 \
               AND placed_by IS NOT DISTINCT FROM $3 AND placed_by_key IS NOT DISTINCT FROM $4"
        ),
        [
            customer.org_id.into(),
            checkout_key.as_str().into(),
            placed_by.into(),
            placed_by_key.into(),
        ],
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
