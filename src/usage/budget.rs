//! Resolving an org's budget for a meter: its plan's rule while the subscription grants access,
//! else the meter's free allowance; the period it counts in now; the member's cap. Two indexed
//! reads (the org's standing, the meter's rules with the cap), no Stripe call.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use uuid::Uuid;

use super::{
    error::UsageError,
    period::{self, Budget, Overage, Period, Rule},
};
use crate::{
    billing::subscriptions::{
        copy::{self, PlanStanding},
        policy,
    },
    db::stmt,
};

#[derive(Debug, FromQueryResult)]
struct Rules {
    free_included: i64,
    free_period: String,
    plan_included: Option<i64>,
    plan_period: Option<String>,
    plan_overage: Option<String>,
    cap: Option<i64>,
}

pub async fn resolve(
    db: &impl ConnectionTrait,
    grace: chrono::Duration,
    org_id: Uuid,
    member: Option<Uuid>,
    meter: &str,
    now: DateTime<Utc>,
) -> Result<Budget, UsageError> {
    let plan = granting_plan(db, grace, org_id, now).await?;
    for_plan(db, plan.as_ref(), org_id, member, meter, now).await
}

/// The org's plan while its subscription grants access (the entitlement policy decides).
pub async fn granting_plan(
    db: &impl ConnectionTrait,
    grace: chrono::Duration,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<PlanStanding>, UsageError> {
    Ok(copy::plan_standing(db, org_id)
        .await?
        .filter(|p| policy::access(Some(&p.standing), now, grace).is_ok()))
}

/// The budget for `meter` under `plan` (none: the free allowance).
pub async fn for_plan(
    db: &impl ConnectionTrait,
    plan: Option<&PlanStanding>,
    org_id: Uuid,
    member: Option<Uuid>,
    meter: &str,
    now: DateTime<Utc>,
) -> Result<Budget, UsageError> {
    let rules = Rules::find_by_statement(stmt(
        "SELECT m.free_included, m.free_period, pm.included AS plan_included, \
            pm.period AS plan_period, pm.overage AS plan_overage, \
            (SELECT cap FROM usage_member_caps c \
             WHERE c.org_id = $1 AND c.meter = m.key AND c.member_id = $3) AS cap \
         FROM usage_meters m LEFT JOIN plan_meters pm ON pm.meter = m.key AND pm.plan_key = $4 \
         WHERE m.key = $2",
        [
            org_id.into(),
            meter.into(),
            member.into(),
            plan.and_then(|p| p.plan_key.clone()).into(),
        ],
    ))
    .one(db)
    .await?
    .ok_or_else(|| UsageError::UnknownMeter(meter.to_owned()))?;
    let subscription_period = plan.and_then(|p| {
        Some(Period {
            start: p.period_start?,
            end: p.standing.period_end?,
        })
    });
    let (included, rule, overage) = match (rules.plan_included, rules.plan_period.as_deref()) {
        (Some(included), Some(rule)) => (
            included,
            Rule::parse(rule).unwrap_or(Rule::Billing),
            match rules.plan_overage.as_deref() {
                Some("metered") => Overage::Metered,
                _ => Overage::Hard,
            },
        ),
        // No granting subscription, or a plan without this meter: the free allowance.
        _ => (
            rules.free_included,
            Rule::parse(&rules.free_period).unwrap_or(Rule::Month),
            Overage::Hard,
        ),
    };
    Ok(Budget {
        org_id,
        meter: meter.to_owned(),
        period: period::period(rule, subscription_period, now),
        included,
        overage,
        member_cap: member.and(rules.cap),
    })
}
