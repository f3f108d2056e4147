//! What the customer sends and sees: the checkout request and response, orders with their lines,
//! licences; and the queries that read them for one customer.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    rows::{ORDER_COLUMNS, OrderRow},
    state::OrderStatus,
};
use crate::db::stmt;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product_id": "0193a4c0-0000-7000-8000-000000000001", "quantity": 1}))]
pub struct CheckoutRequest {
    pub product_id: Uuid,
    /// 1 to 100; defaults to 1.
    #[serde(default = "one", deserialize_with = "crate::http::json::whole_number")]
    pub quantity: u32,
}

pub(super) fn one() -> u32 {
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
    "placed_by": "0193a4b0-0000-7000-8000-0000000000aa",
    "placed_by_api_key": null,
    "created_at": "2026-11-23T12:00:00Z",
    "paid_at": "2026-11-23T12:01:10Z",
    "fulfilled_at": "2026-11-23T12:01:11Z"
}))]
pub struct OrderView {
    pub id: Uuid,
    pub status: OrderStatus,
    /// The member who placed the order (absent when one of the org's API keys did).
    pub placed_by: Option<Uuid>,
    /// The API key that placed the order, if one did.
    pub placed_by_api_key: Option<Uuid>,
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

#[derive(FromQueryResult)]
pub(super) struct LineRow {
    order_id: Uuid,
    product_id: Uuid,
    product_name: String,
    unit_amount: i64,
    quantity: i32,
}

/// Lines of the orders matching `filter` (a condition on `order_id` with one parameter, `$1`).
pub(super) async fn lines_where(
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

pub(super) fn views(
    rows: Vec<OrderRow>,
    lines: Vec<(Uuid, OrderLineView)>,
) -> Result<Vec<OrderView>, DbErr> {
    rows.into_iter()
        .map(|order| {
            Ok(OrderView {
                id: order.id,
                status: order.status,
                lines: lines
                    .iter()
                    .filter(|(id, _)| *id == order.id)
                    .map(|(_, line)| line.clone())
                    .collect(),
                placed_by: order.placed_by,
                placed_by_api_key: order.placed_by_key,
                currency: order.currency,
                amount_total: order.amount_total,
                created_at: order.created_at,
                paid_at: order.paid_at,
                fulfilled_at: order.fulfilled_at,
            })
        })
        .collect()
}

/// The organisation's latest 200 orders, newest first.
pub async fn list_for_org(
    db: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Vec<OrderView>, DbErr> {
    let latest =
        "SELECT id FROM orders WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT 200";
    let rows = OrderRow::find_by_statement(stmt(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id IN ({latest}) ORDER BY created_at DESC, id DESC"),
        [org_id.into()],
    ))
    .all(db)
    .await?;
    let lines = lines_where(db, &format!("order_id IN ({latest})"), org_id.into()).await?;
    views(rows, lines)
}

/// One of the organisation's orders; another org's order does not exist for it.
pub async fn find_for_org(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<OrderView>, DbErr> {
    let rows = OrderRow::find_by_statement(stmt(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND org_id = $2"),
        [id.into(), org_id.into()],
    ))
    .all(db)
    .await?;
    let lines = lines_where(db, "order_id = $1", id.into()).await?;
    Ok(views(rows, lines)?.pop())
}

/// The organisation's licences, newest first (revoked ones included, so a refund is visible).
pub async fn licenses_for_org(
    db: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Vec<LicenseView>, DbErr> {
    LicenseView::find_by_statement(stmt(
        "SELECT l.id, l.order_id, l.product_id, ol.product_name, l.license_key, l.seats, l.status, l.created_at \
         FROM licenses l JOIN order_lines ol ON ol.id = l.order_line_id \
         WHERE l.org_id = $1 ORDER BY l.created_at DESC, l.id",
        [org_id.into()],
    ))
    .all(db)
    .await
}
