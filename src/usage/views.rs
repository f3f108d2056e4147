//! What the API shows of usage: the meter catalogue, and an org's use per meter this period.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    UsageState, budget,
    error::UsageError,
    period::{Budget, Overage},
};
use crate::db::stmt;

/// A meter and what each plan includes of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "key": "ai_tokens", "name": "AI tokens", "unit": "tokens",
    "free": {"included": 10000, "period": "month"},
    "plans": [{"plan": "starter", "included": 200000, "period": "billing", "overage": "hard"}]
}))]
pub struct MeterView {
    pub key: String,
    pub name: String,
    pub unit: String,
    /// What an organisation without a plan may use, per calendar `day` or `month`.
    pub free: Allowance,
    pub plans: Vec<PlanAllowance>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Allowance {
    pub included: i64,
    pub period: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanAllowance {
    pub plan: String,
    pub included: i64,
    /// `billing` (the subscription's period) or `day`.
    pub period: String,
    /// `hard` (refused past it) or `metered` (billed past it).
    pub overage: String,
}

#[derive(FromQueryResult)]
struct MeterRow {
    key: String,
    name: String,
    unit: String,
    free_included: i64,
    free_period: String,
}

pub async fn meters(db: &impl ConnectionTrait) -> Result<Vec<MeterView>, UsageError> {
    #[derive(FromQueryResult)]
    struct Allowed {
        meter: String,
        plan: String,
        included: i64,
        period: String,
        overage: String,
    }
    let meters = MeterRow::find_by_statement(stmt(
        "SELECT key, name, unit, free_included, free_period FROM usage_meters ORDER BY key",
        [],
    ))
    .all(db)
    .await?;
    let allowed = Allowed::find_by_statement(stmt(
        "SELECT pm.meter, pm.plan_key AS plan, pm.included, pm.period, pm.overage \
         FROM plan_meters pm JOIN plans p ON p.key = pm.plan_key WHERE p.active \
         ORDER BY p.sort_order, p.key",
        [],
    ))
    .all(db)
    .await?;
    Ok(meters
        .into_iter()
        .map(|m| MeterView {
            plans: allowed
                .iter()
                .filter(|a| a.meter == m.key)
                .map(|a| PlanAllowance {
                    plan: a.plan.clone(),
                    included: a.included,
                    period: a.period.clone(),
                    overage: a.overage.clone(),
                })
                .collect(),
            key: m.key,
            name: m.name,
            unit: m.unit,
            free: Allowance {
                included: m.free_included,
                period: m.free_period,
            },
        })
        .collect())
}

/// One meter's use by the organisation in the period running now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "meter": "ai_tokens", "used": 15200, "reserved": 800, "limit": 200000, "included": 200000,
    "overage": "hard", "period_start": "2026-11-15T10:00:00Z", "period_end": "2026-12-15T10:00:00Z",
    "members": [{"member_id": "0193a4c0-5555-7000-8000-000000000001", "cap": 20000, "used": 9000}]
}))]
pub struct MeterUsage {
    pub meter: String,
    pub used: i64,
    /// Held by reservations still running.
    pub reserved: i64,
    /// What reserves are refused past; none when overage is metered (billed, never refused).
    pub limit: Option<i64>,
    pub included: i64,
    pub overage: String,
    pub period_start: DateTime<Utc>,
    /// When the period resets.
    pub period_end: DateTime<Utc>,
    /// Members whose share an admin capped.
    pub members: Vec<MemberUsage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, FromQueryResult)]
pub struct MemberUsage {
    pub member_id: Uuid,
    pub cap: i64,
    /// Committed and still reserved by the member this period.
    pub used: i64,
}

#[derive(FromQueryResult)]
struct Now {
    used: i64,
    reserved: i64,
}

pub async fn org_usage(state: &UsageState, org_id: Uuid) -> Result<Vec<MeterUsage>, UsageError> {
    // The standing once for every meter.
    let now = chrono::Utc::now();
    let plan = budget::granting_plan(&state.db, state.grace, org_id, now).await?;
    let keys = state
        .db
        .query_all_raw(stmt("SELECT key FROM usage_meters ORDER BY key", []))
        .await?;
    let mut usage = Vec::with_capacity(keys.len());
    for row in keys {
        let key: String = row.try_get("", "key")?;
        let budget = budget::for_plan(&state.db, plan.as_ref(), org_id, None, &key, now).await?;
        usage.push(meter_usage(&state.db, &budget).await?);
    }
    Ok(usage)
}

async fn meter_usage(db: &impl ConnectionTrait, budget: &Budget) -> Result<MeterUsage, UsageError> {
    let values = || {
        [
            budget.org_id.into(),
            budget.meter.clone().into(),
            budget.period.start.into(),
        ]
    };
    let now = Now::find_by_statement(stmt(
        "SELECT coalesce((SELECT used FROM usage_counters \
                WHERE org_id = $1 AND meter = $2 AND period_start = $3), 0) AS used, \
            coalesce((SELECT sum(amount) FROM usage_reservations WHERE org_id = $1 AND meter = $2 \
                AND period_start = $3 AND state = 'open' AND expires_at > now()), 0)::bigint \
                AS reserved",
        values(),
    ))
    .one(db)
    .await?
    .unwrap_or(Now {
        used: 0,
        reserved: 0,
    });
    let members = MemberUsage::find_by_statement(stmt(
        "SELECT c.member_id, c.cap, coalesce((SELECT sum(CASE WHEN r.state = 'committed' \
                THEN r.actual WHEN r.state = 'open' AND r.expires_at > now() THEN r.amount \
                ELSE 0 END) FROM usage_reservations r WHERE r.org_id = c.org_id \
                AND r.meter = c.meter AND r.period_start = $3 AND r.member_id = c.member_id), \
                0)::bigint AS used \
         FROM usage_member_caps c WHERE c.org_id = $1 AND c.meter = $2 ORDER BY c.member_id",
        values(),
    ))
    .all(db)
    .await?;
    Ok(MeterUsage {
        meter: budget.meter.clone(),
        used: now.used,
        reserved: now.reserved,
        limit: budget.limit(),
        included: budget.included,
        overage: match budget.overage {
            Overage::Hard => "hard",
            Overage::Metered => "metered",
        }
        .to_owned(),
        period_start: budget.period.start,
        period_end: budget.period.end,
        members,
    })
}
