//! Our copy of each Stripe subscription: written only under the org's row lock, from a read of
//! Stripe that started no earlier than the one behind the stored copy; and read (never a Stripe
//! call) by the entitlement guard and the billing views.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};
use uuid::Uuid;

use super::{
    facts::{SubscriptionFacts, SubscriptionStatus},
    policy::Standing,
};
use crate::db::stmt;

/// The org a subscription belongs to: its customer's org, else the `org_id` our checkout put in
/// its metadata (if that org exists). `None`: not ours.
pub async fn org_of(
    db: &impl ConnectionTrait,
    customer: &str,
    hint: Option<Uuid>,
) -> Result<Option<Uuid>, DbErr> {
    #[derive(FromQueryResult)]
    struct Found {
        org_id: Uuid,
    }
    Ok(Found::find_by_statement(stmt(
        "SELECT org_id FROM stripe_customers WHERE stripe_customer_id = $1 \
         UNION ALL SELECT id FROM orgs WHERE id = $2 LIMIT 1",
        [customer.into(), hint.into()],
    ))
    .one(db)
    .await?
    .map(|f| f.org_id))
}

/// Locks the org's row: every write to its subscriptions (and its seats) happens under it.
pub async fn lock_org(txn: &DatabaseTransaction, org_id: Uuid) -> Result<(), DbErr> {
    txn.execute_raw(stmt(
        "SELECT 1 FROM orgs WHERE id = $1 FOR UPDATE",
        [org_id.into()],
    ))
    .await?;
    Ok(())
}

/// What [`store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Written; the status before (none for a new copy).
    Written {
        id: Uuid,
        before: Option<SubscriptionStatus>,
    },
    /// The stored copy comes from a read that started later: this one is dropped.
    Stale,
}

#[derive(FromQueryResult)]
struct Existing {
    id: Uuid,
    status: String,
    read_started_at: DateTime<Utc>,
}

/// Writes `facts` (read from Stripe starting at `read_started`) as the org's copy, with the org
/// locked by the caller ([`lock_org`]). Then keeps the org's seats equal to the live
/// subscription's quantity (none once it has ended).
pub async fn store(
    txn: &DatabaseTransaction,
    org_id: Uuid,
    facts: &SubscriptionFacts,
    read_started: DateTime<Utc>,
) -> Result<Stored, DbErr> {
    let existing = Existing::find_by_statement(stmt(
        "SELECT id, status, read_started_at FROM subscriptions \
         WHERE stripe_subscription_id = $1 FOR UPDATE",
        [facts.id.clone().into()],
    ))
    .one(txn)
    .await?;
    if existing
        .as_ref()
        .is_some_and(|e| e.read_started_at > read_started)
    {
        return Ok(Stored::Stale);
    }
    let id = existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id);
    let before = existing
        .as_ref()
        .and_then(|e| SubscriptionStatus::parse(&e.status));
    txn.execute_raw(stmt(
        "INSERT INTO subscriptions (id, org_id, stripe_subscription_id, stripe_customer_id, \
            plan_key, interval, stripe_price_id, status, status_since, quantity, \
            current_period_start, current_period_end, cancel_at_period_end, cancel_at, \
            canceled_at, ended_at, trial_end, latest_invoice_id, read_started_at) \
         SELECT $1, $2, $3, $4, pp.plan_key, pp.interval, $5, $6, now(), $7, $8, $9, $10, $11, \
            $12, $13, $14, $15, $16 \
         FROM (SELECT 1) one LEFT JOIN plan_prices pp ON pp.stripe_price_id = $5 \
         ON CONFLICT (stripe_subscription_id) DO UPDATE SET \
            stripe_customer_id = EXCLUDED.stripe_customer_id, plan_key = EXCLUDED.plan_key, \
            interval = EXCLUDED.interval, stripe_price_id = EXCLUDED.stripe_price_id, \
            status_since = CASE WHEN subscriptions.status = EXCLUDED.status \
                THEN subscriptions.status_since ELSE now() END, \
            status = EXCLUDED.status, quantity = EXCLUDED.quantity, \
            current_period_start = EXCLUDED.current_period_start, \
            current_period_end = EXCLUDED.current_period_end, \
            cancel_at_period_end = EXCLUDED.cancel_at_period_end, \
            cancel_at = EXCLUDED.cancel_at, canceled_at = EXCLUDED.canceled_at, \
            ended_at = EXCLUDED.ended_at, trial_end = EXCLUDED.trial_end, \
            latest_invoice_id = EXCLUDED.latest_invoice_id, \
            action_required_invoice = CASE \
                WHEN EXCLUDED.status IN ('active', 'trialing', 'canceled', 'incomplete_expired') \
                THEN NULL ELSE subscriptions.action_required_invoice END, \
            read_started_at = EXCLUDED.read_started_at",
        [
            id.into(),
            org_id.into(),
            facts.id.clone().into(),
            facts.customer.clone().into(),
            facts.price_id.clone().into(),
            facts.status.as_str().into(),
            facts.quantity.into(),
            facts.period_start.into(),
            facts.period_end.into(),
            facts.cancel_at_period_end.into(),
            facts.cancel_at.into(),
            facts.canceled_at.into(),
            facts.ended_at.into(),
            facts.trial_end.into(),
            facts.latest_invoice.clone().into(),
            read_started.into(),
        ],
    ))
    .await?;
    sync_seats(txn, org_id).await?;
    Ok(Stored::Written { id, before })
}

/// The org's `seat_limit` follows its live subscription's quantity; with none, it is lifted
/// (as before the org ever subscribed). Lowering seats below the members removes nobody:
/// invitations are refused, and `billing_status` says `over_seat_limit`.
async fn sync_seats(txn: &DatabaseTransaction, org_id: Uuid) -> Result<(), DbErr> {
    txn.execute_raw(stmt(
        &format!(
            "UPDATE orgs SET seat_limit = (SELECT nullif(greatest(s.quantity, 0), 0) \
                 FROM subscriptions s WHERE s.org_id = $1 AND {LIVE} \
                 ORDER BY s.created_at DESC LIMIT 1) \
             WHERE id = $1"
        ),
        [org_id.into()],
    ))
    .await?;
    Ok(())
}

/// A subscription still running (or about to): not ended for good.
pub const LIVE: &str = "s.status NOT IN ('canceled', 'incomplete_expired')";

/// The org's current subscription: its live one, else the one that ended last.
const CURRENT: &str = "FROM subscriptions s LEFT JOIN plans p ON p.key = s.plan_key \
     WHERE s.org_id = $1 \
     ORDER BY s.status IN ('canceled', 'incomplete_expired'), s.created_at DESC LIMIT 1";

#[derive(FromQueryResult)]
struct StandingRow {
    status: String,
    status_since: DateTime<Utc>,
    current_period_start: Option<DateTime<Utc>>,
    current_period_end: Option<DateTime<Utc>>,
    trial_end: Option<DateTime<Utc>>,
    plan_key: Option<String>,
    features: Vec<String>,
    quantity: i32,
    action_required: bool,
}

/// The standing with the plan and period it is on: what usage budgets are counted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStanding {
    pub standing: Standing,
    /// None for a price that is not one of our plans.
    pub plan_key: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
}

/// What the entitlement policy reads for the org: one indexed query.
pub async fn standing(db: &impl ConnectionTrait, org_id: Uuid) -> Result<Option<Standing>, DbErr> {
    Ok(plan_standing(db, org_id).await?.map(|p| p.standing))
}

/// [`standing`], with the plan and the period's start.
pub async fn plan_standing(
    db: &impl ConnectionTrait,
    org_id: Uuid,
) -> Result<Option<PlanStanding>, DbErr> {
    let row = StandingRow::find_by_statement(stmt(
        &format!(
            "SELECT s.status, s.status_since, s.current_period_start, s.current_period_end, \
                s.trial_end, p.key AS plan_key, coalesce(p.features, '{{}}') AS features, \
                s.quantity, s.action_required_invoice IS NOT NULL AS action_required {CURRENT}"
        ),
        [org_id.into()],
    ))
    .one(db)
    .await?;
    Ok(row.and_then(|r| {
        Some(PlanStanding {
            standing: Standing {
                status: SubscriptionStatus::parse(&r.status)?,
                status_since: r.status_since,
                period_end: r.current_period_end,
                trial_end: r.trial_end,
                features: r.features,
                quantity: r.quantity,
                action_required: r.action_required,
            },
            plan_key: r.plan_key,
            period_start: r.current_period_start,
        })
    }))
}

/// The org's current subscription as its billing view shows it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CopyRow {
    pub id: Uuid,
    pub stripe_subscription_id: String,
    pub stripe_customer_id: String,
    pub plan_key: Option<String>,
    pub interval: Option<String>,
    pub status: String,
    pub quantity: i32,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub trial_end: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub latest_invoice_id: Option<String>,
}

impl CopyRow {
    pub fn status(&self) -> Option<SubscriptionStatus> {
        SubscriptionStatus::parse(&self.status)
    }
}

pub async fn current(db: &impl ConnectionTrait, org_id: Uuid) -> Result<Option<CopyRow>, DbErr> {
    CopyRow::find_by_statement(stmt(
        &format!(
            "SELECT s.id, s.stripe_subscription_id, s.stripe_customer_id, s.plan_key, s.interval, \
                s.status, s.quantity, s.current_period_start, s.current_period_end, \
                s.cancel_at_period_end, s.trial_end, s.ended_at, s.latest_invoice_id {CURRENT}"
        ),
        [org_id.into()],
    ))
    .one(db)
    .await
}
