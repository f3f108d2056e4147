//! The product catalogue: what is on sale, at its price in the configured currency.
use crate::db::stmt;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A product on sale, with its price in the shop's currency.
#[derive(Debug, Clone, Serialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "id": "0193a4c0-0000-7000-8000-000000000001",
    "slug": "ironclad-pro",
    "name": "Ironclad Pro",
    "description": "Perpetual licence for one developer, with a year of updates.",
    "seats": 1,
    "unit_amount": 4900,
    "currency": "usd"
}))]
pub struct Product {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    /// Seats one licence grants per unit bought.
    pub seats: i32,
    /// Price per unit in the currency's smallest unit (cents).
    pub unit_amount: i64,
    /// ISO 4217, lower case.
    pub currency: String,
}

const SELECT: &str = "SELECT p.id, p.slug, p.name, p.description, p.seats, pr.unit_amount, pr.currency \
     FROM products p JOIN prices pr ON pr.product_id = p.id AND pr.currency = $1 WHERE p.active";

/// Active products priced in `currency`, by name.
pub async fn on_sale(db: &impl ConnectionTrait, currency: &str) -> Result<Vec<Product>, DbErr> {
    Product::find_by_statement(stmt(
        &format!("{SELECT} ORDER BY p.name"),
        [currency.into()],
    ))
    .all(db)
    .await
}

pub async fn find_on_sale(
    db: &impl ConnectionTrait,
    currency: &str,
    id: Uuid,
) -> Result<Option<Product>, DbErr> {
    Product::find_by_statement(stmt(
        &format!("{SELECT} AND p.id = $2"),
        [currency.into(), id.into()],
    ))
    .one(db)
    .await
}
