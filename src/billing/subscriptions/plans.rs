//! The plan catalogue: what an org can subscribe to, per seat, monthly or yearly. Demo plans come
//! from a migration, like the demo products; replace them with your own (and your Stripe prices).
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::stmt;

/// How often a plan bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Month,
    Year,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Month, Self::Year]
            .into_iter()
            .find(|i| i.as_str() == value)
    }
}

/// A plan on sale, with its prices.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "key": "business", "name": "Business",
    "description": "Audit log, SSO-ready and priority support.", "trial_days": 14,
    "features": ["projects", "audit_log", "priority_support"], "max_seats": 100,
    "prices": [{"interval": "month", "unit_amount": 2900, "currency": "usd"},
               {"interval": "year", "unit_amount": 29000, "currency": "usd"}]
}))]
pub struct PlanView {
    pub key: String,
    pub name: String,
    pub description: String,
    /// Days of free trial a new subscription starts with (0: none).
    pub trial_days: i32,
    /// The entitlement keys it grants (`RequireEntitlement("…")` on routes).
    pub features: Vec<String>,
    /// The most seats it can be bought with; none: no limit.
    pub max_seats: Option<i32>,
    pub prices: Vec<PlanPriceView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanPriceView {
    pub interval: Interval,
    /// Per seat, in the currency's smallest unit (cents).
    pub unit_amount: i64,
    /// ISO 4217, lower case.
    pub currency: String,
}

/// One plan at one interval, as checkout needs it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct PlanPrice {
    pub plan_key: String,
    pub name: String,
    pub trial_days: i32,
    pub max_seats: Option<i32>,
    pub stripe_price_id: String,
    pub unit_amount: i64,
    pub currency: String,
}

#[derive(FromQueryResult)]
struct Row {
    key: String,
    name: String,
    description: String,
    trial_days: i32,
    features: Vec<String>,
    max_seats: Option<i32>,
    interval: String,
    unit_amount: i64,
    currency: String,
}

/// The active plans with their prices, in the catalogue's order.
pub async fn on_sale(db: &impl ConnectionTrait) -> Result<Vec<PlanView>, DbErr> {
    let rows = Row::find_by_statement(stmt(
        "SELECT p.key, p.name, p.description, p.trial_days, p.features, p.max_seats, \
            pp.interval, pp.unit_amount, pp.currency \
         FROM plans p JOIN plan_prices pp ON pp.plan_key = p.key \
         WHERE p.active ORDER BY p.sort_order, p.key, pp.interval",
        [],
    ))
    .all(db)
    .await?;
    // Rows come grouped by plan: each starts a plan or adds a price to the one before.
    let mut plans: Vec<PlanView> = Vec::new();
    for row in rows {
        if plans.last().is_none_or(|plan| plan.key != row.key) {
            plans.push(PlanView {
                key: row.key.clone(),
                name: row.name,
                description: row.description,
                trial_days: row.trial_days,
                features: row.features,
                max_seats: row.max_seats,
                prices: Vec::new(),
            });
        }
        if let (Some(plan), Some(interval)) = (plans.last_mut(), Interval::parse(&row.interval)) {
            plan.prices.push(PlanPriceView {
                interval,
                unit_amount: row.unit_amount,
                currency: row.currency,
            });
        }
    }
    Ok(plans)
}

/// An active plan's price at `interval`.
pub async fn find_price(
    db: &impl ConnectionTrait,
    plan: &str,
    interval: Interval,
) -> Result<Option<PlanPrice>, DbErr> {
    PlanPrice::find_by_statement(stmt(
        "SELECT p.key AS plan_key, p.name, p.trial_days, p.max_seats, pp.stripe_price_id, \
            pp.unit_amount, pp.currency \
         FROM plans p JOIN plan_prices pp ON pp.plan_key = p.key \
         WHERE p.active AND p.key = $1 AND pp.interval = $2",
        [plan.into(), interval.as_str().into()],
    ))
    .one(db)
    .await
}
