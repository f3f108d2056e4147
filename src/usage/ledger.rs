//! The counter and its reservations, each operation one SQL statement (autocommit), so the hot
//! counter row is locked only while that statement runs.
//!
//! - **reserve** upserts the period's counter: `INSERT … ON CONFLICT DO UPDATE` locks the row
//!   and reads its latest committed version, so the check `used + reserved + amount ≤ lim` and the
//!   increment are one atomic step in any number of processes. In the same statement it first
//!   reclaims the period's expired reservations (those no other statement holds: `SKIP LOCKED`),
//!   subtracting what they held, and inserts the new reservation only when granted. A key seen
//!   before returns its reservation and changes nothing.
//! - **commit** settles a reservation (open, or expired but not released) with the actual amount:
//!   `used += actual`, `reserved -= held`. `freed = held, held = 0` in one `SET` reads the old
//!   `held`, so the statement knows what it freed even when a reclaim raced it.
//! - **release** gives an open reservation's amount back.
//!
//! Lock order is always reservation rows, then the counter: no deadlock between these.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};
use uuid::Uuid;

use super::{
    error::{LimitReached, Scope, UsageError},
    period::Budget,
};
use crate::db::stmt;

/// A reserve's new reservation, or what the key already had.
const RESERVE: &str = "\
WITH existing AS (
    SELECT id, state, amount, expires_at, period_start FROM usage_reservations
    WHERE org_id = $1 AND meter = $2 AND key = $9
), stale AS (
    SELECT id FROM usage_reservations
    WHERE org_id = $1 AND meter = $2 AND period_start = $3 AND state = 'open'
      AND expires_at <= now() AND NOT EXISTS (SELECT 1 FROM existing)
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE usage_reservations r SET state = 'expired', freed = r.held, held = 0, settled_at = now()
    FROM stale WHERE r.id = stale.id
    RETURNING r.freed
), counter AS (
    INSERT INTO usage_counters AS c
        (org_id, meter, period_start, period_end, lim, included, metered, reserved, last_grant)
    SELECT $1, $2, $3, $4, $5, $6, $5 IS NULL, g, g
    FROM (SELECT CASE WHEN $5 IS NULL OR $7 <= $5 THEN $7 ELSE 0 END AS g) first
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (org_id, meter, period_start) DO UPDATE SET
        lim = EXCLUDED.lim, included = EXCLUDED.included, metered = EXCLUDED.metered,
        reserved = c.reserved - (SELECT coalesce(sum(freed), 0) FROM expired)
            + CASE WHEN EXCLUDED.lim IS NULL
                OR c.used + c.reserved - (SELECT coalesce(sum(freed), 0) FROM expired) + $7
                    <= EXCLUDED.lim
              THEN $7 ELSE 0 END,
        last_grant = CASE WHEN EXCLUDED.lim IS NULL
                OR c.used + c.reserved - (SELECT coalesce(sum(freed), 0) FROM expired) + $7
                    <= EXCLUDED.lim
              THEN $7 ELSE 0 END
    RETURNING c.used, c.reserved, c.last_grant
), granted AS (
    INSERT INTO usage_reservations
        (id, org_id, meter, period_start, member_id, key, amount, held, expires_at)
    SELECT $8, $1, $2, $3, $10, $9, $7, $7, now() + make_interval(secs => $11)
    FROM counter WHERE counter.last_grant > 0
    RETURNING id, expires_at
)
SELECT g.id AS granted_id, g.expires_at AS granted_expires_at, c.used, c.reserved,
    e.id AS existing_id, e.state AS existing_state, e.amount AS existing_amount,
    e.expires_at AS existing_expires_at, e.period_start AS existing_period_start
FROM (SELECT 1) one
LEFT JOIN counter c ON true LEFT JOIN granted g ON true LEFT JOIN existing e ON true";

const COMMIT: &str = "\
WITH r AS (
    UPDATE usage_reservations
    SET state = 'committed', actual = $2, freed = held, held = 0, settled_at = now()
    WHERE id = $1 AND state IN ('open', 'expired')
    RETURNING org_id, meter, period_start, freed
)
UPDATE usage_counters c SET used = c.used + $2, reserved = c.reserved - r.freed
FROM r WHERE c.org_id = r.org_id AND c.meter = r.meter AND c.period_start = r.period_start
RETURNING c.used, c.reserved";

const RELEASE: &str = "\
WITH r AS (
    UPDATE usage_reservations
    SET state = 'released', freed = held, held = 0, settled_at = now()
    WHERE id = $1 AND state = 'open'
    RETURNING org_id, meter, period_start, freed
)
UPDATE usage_counters c SET reserved = c.reserved - r.freed
FROM r WHERE c.org_id = r.org_id AND c.meter = r.meter AND c.period_start = r.period_start
RETURNING c.used, c.reserved";

/// The SQL of [`reserve`], [`commit`] and [`release`], for the bench's pgbench ceiling.
pub const STATEMENTS: [&str; 3] = [RESERVE, COMMIT, RELEASE];

/// An open reservation: its amount counts against the limit until committed, released or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: Uuid,
    pub period_start: DateTime<Utc>,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct Reserved {
    granted_id: Option<Uuid>,
    granted_expires_at: Option<DateTime<Utc>>,
    used: Option<i64>,
    reserved: Option<i64>,
    existing_id: Option<Uuid>,
    existing_state: Option<String>,
    existing_amount: Option<i64>,
    existing_expires_at: Option<DateTime<Utc>>,
    existing_period_start: Option<DateTime<Utc>>,
}

/// The counter after a commit or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromQueryResult)]
pub struct Counter {
    pub used: i64,
    pub reserved: i64,
}

/// Reserves `amount` of `budget` under `key` for `member` (none for an API key).
pub async fn reserve(
    db: &impl ConnectionTrait,
    budget: &Budget,
    member: Option<Uuid>,
    amount: i64,
    key: &str,
    ttl_secs: f64,
) -> Result<Held, UsageError> {
    let values = || -> Vec<Value> {
        vec![
            budget.org_id.into(),
            budget.meter.clone().into(),
            budget.period.start.into(),
            budget.period.end.into(),
            budget.limit().into(),
            budget.included.into(),
            amount.into(),
            Uuid::now_v7().into(),
            key.into(),
            member.into(),
            ttl_secs.into(),
        ]
    };
    // Two first uses of one key at once: one inserts, the other's statement fails on the unique
    // key and rolls back whole; run again, it finds the first one's reservation.
    let row = match Reserved::find_by_statement(stmt(RESERVE, values()))
        .one(db)
        .await
    {
        Err(e) if is_unique_violation(&e) => {
            Reserved::find_by_statement(stmt(RESERVE, values()))
                .one(db)
                .await?
        }
        other => other?,
    }
    .ok_or_else(|| DbErr::RecordNotFound("reserve".into()))?;
    if let Some(id) = row.existing_id {
        return match row.existing_state.as_deref() {
            Some("open") => Ok(Held {
                id,
                period_start: row.existing_period_start.unwrap_or(budget.period.start),
                amount: row.existing_amount.unwrap_or(amount),
                expires_at: row.existing_expires_at.unwrap_or(budget.period.end),
            }),
            state => Err(UsageError::Settled(state.unwrap_or("settled").to_owned())),
        };
    }
    match (row.granted_id, row.granted_expires_at) {
        (Some(id), Some(expires_at)) => Ok(Held {
            id,
            period_start: budget.period.start,
            amount,
            expires_at,
        }),
        _ => Err(UsageError::LimitReached(LimitReached {
            meter: budget.meter.clone(),
            scope: Scope::Org,
            limit: budget.limit().unwrap_or(i64::MAX),
            used: row.used.unwrap_or(0) + row.reserved.unwrap_or(0),
            resets_at: budget.period.end,
        })),
    }
}

/// Settles reservation `id` with what was really used. None: it was committed or released before.
pub async fn commit(
    db: &impl ConnectionTrait,
    id: Uuid,
    actual: i64,
) -> Result<Option<Counter>, DbErr> {
    Counter::find_by_statement(stmt(COMMIT, [id.into(), actual.into()]))
        .one(db)
        .await
}

/// Gives back an open reservation. None: it was settled (or expired) before.
pub async fn release(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Counter>, DbErr> {
    Counter::find_by_statement(stmt(RELEASE, [id.into()]))
        .one(db)
        .await
}

/// How a reservation was settled, for a commit or release that found it settled already.
pub async fn settled(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<(String, Option<i64>)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        state: String,
        actual: Option<i64>,
    }
    Ok(Row::find_by_statement(stmt(
        "SELECT state, actual FROM usage_reservations WHERE id = $1",
        [id.into()],
    ))
    .one(db)
    .await?
    .map(|r| (r.state, r.actual)))
}

fn is_unique_violation(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
