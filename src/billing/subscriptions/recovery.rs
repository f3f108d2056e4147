//! Revenue recovery, for operators (`GET /admin/billing/recovery`) and Prometheus: monthly
//! recurring revenue, the part at risk (past due or unpaid), the invoices in dunning with their
//! attempts, what dunning recovered in the last 30 days, and involuntary churn (subscriptions that
//! ended with an invoice left unpaid). Read from our copy and the dunning ledger, never Stripe.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::stmt;

/// One subscription's month (a yearly price / 12), in the smallest unit: `s` its copy, `pp` its
/// plan price.
macro_rules! monthly {
    () => {
        "s.quantity * CASE pp.interval WHEN 'year' THEN pp.unit_amount / 12.0 ELSE pp.unit_amount END"
    };
}
macro_rules! priced {
    () => {
        "FROM subscriptions s JOIN plan_prices pp ON pp.stripe_price_id = s.stripe_price_id"
    };
}
/// The subscriptions that bill: active, past due, unpaid.
macro_rules! billing {
    () => {
        "s.status IN ('active', 'past_due', 'unpaid')"
    };
}
/// The part of them at risk.
macro_rules! at_risk {
    () => {
        "s.status IN ('past_due', 'unpaid')"
    };
}

/// MRR by currency (live subscriptions that bill: active, past due, unpaid).
pub const MRR_BY_CURRENCY: &str = concat!(
    "SELECT pp.currency AS label, sum(",
    monthly!(),
    ")::float8 AS value ",
    priced!(),
    " WHERE ",
    billing!(),
    " GROUP BY pp.currency"
);
/// The part of it past due or unpaid.
pub const MRR_AT_RISK_BY_CURRENCY: &str = concat!(
    "SELECT pp.currency AS label, sum(",
    monthly!(),
    ")::float8 AS value ",
    priced!(),
    " WHERE ",
    at_risk!(),
    " GROUP BY pp.currency"
);
pub const SUBSCRIPTIONS_BY_STATUS: &str =
    "SELECT status AS label, count(*)::float8 AS value FROM subscriptions GROUP BY status";

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, FromQueryResult)]
pub struct DunningInvoice {
    pub invoice_id: String,
    pub org_id: Uuid,
    pub amount_due: i64,
    pub currency: String,
    /// Payment attempts so far.
    pub attempt_count: i32,
    /// `failed` or `action_required` (waiting for the customer's SCA).
    pub status: String,
    pub first_failed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "currency": "usd", "mrr": 1_245_000, "mrr_at_risk": 58_000,
    "recovered_last_30_days": 27_000, "involuntary_churn_last_30_days": 2,
    "in_dunning": [{"invoice_id": "in_1QxY", "org_id": "0193a4c0-6666-7000-8000-000000000001",
        "amount_due": 2900, "currency": "usd", "attempt_count": 2, "status": "failed",
        "first_failed_at": "2026-11-28T09:00:00Z"}]
}))]
pub struct RecoveryView {
    /// The shop's currency (`BILLING_CURRENCY`): the amounts below are in it, smallest unit.
    pub currency: String,
    /// Monthly recurring revenue: active, past due and unpaid subscriptions.
    pub mrr: i64,
    /// The part of it past due or unpaid.
    pub mrr_at_risk: i64,
    /// Paid in the last 30 days on invoices that had failed first.
    pub recovered_last_30_days: i64,
    /// Subscriptions that ended in the last 30 days with an invoice left unpaid.
    pub involuntary_churn_last_30_days: i64,
    /// Invoices still in dunning, oldest first (the first 200).
    pub in_dunning: Vec<DunningInvoice>,
}

#[derive(FromQueryResult)]
struct Totals {
    mrr: f64,
    at_risk: f64,
    recovered: i64,
    churned: i64,
}

pub async fn recovery(db: &impl ConnectionTrait, currency: &str) -> Result<RecoveryView, DbErr> {
    let totals = Totals::find_by_statement(stmt(
        &format!(
            "SELECT \
                coalesce((SELECT sum({m}) {p} WHERE pp.currency = $1 AND {live}), 0)::float8 AS mrr, \
                coalesce((SELECT sum({m}) {p} WHERE pp.currency = $1 AND {risk}), 0)::float8 \
                    AS at_risk, \
                coalesce((SELECT sum(amount_paid) FROM dunning_invoices WHERE status = 'paid' \
                    AND currency = $1 AND paid_at > now() - interval '30 days'), 0)::bigint \
                    AS recovered, \
                (SELECT count(*) FROM subscriptions s WHERE s.status = 'canceled' \
                    AND s.ended_at > now() - interval '30 days' AND EXISTS (SELECT 1 \
                    FROM dunning_invoices d WHERE d.stripe_subscription_id = s.stripe_subscription_id \
                    AND d.status <> 'paid')) AS churned",
            m = monthly!(),
            p = priced!(),
            live = billing!(),
            risk = at_risk!(),
        ),
        [currency.into()],
    ))
    .one(db)
    .await?
    .ok_or_else(|| DbErr::RecordNotFound("totals".into()))?;
    let in_dunning = DunningInvoice::find_by_statement(stmt(
        "SELECT invoice_id, org_id, amount_due, currency, attempt_count, status, first_failed_at \
         FROM dunning_invoices WHERE status <> 'paid' ORDER BY first_failed_at LIMIT 200",
        [],
    ))
    .all(db)
    .await?;
    Ok(RecoveryView {
        currency: currency.to_owned(),
        mrr: totals.mrr.round() as i64,
        mrr_at_risk: totals.at_risk.round() as i64,
        recovered_last_30_days: totals.recovered,
        involuntary_churn_last_30_days: totals.churned,
        in_dunning,
    })
}
