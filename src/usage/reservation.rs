//! What product code calls: [`UsageState::reserve`] before the work, then
//! [`Reservation::commit`] with what the work really used, or [`Reservation::release`] when it
//! failed. A reservation dropped without either (its process died) stops counting at its TTL:
//! the next reserve of that meter and period reclaims it.
//!
//! ```ignore
//! let held = usage.reserve(org_id, Some(user_id), "ai_tokens", estimate, &key).await?;
//! match provider.complete(&prompt).await {
//!     Ok(answer) => held.commit(answer.tokens).await?,
//!     Err(e) => { held.release().await?; return Err(e.into()); }
//! }
//! ```
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, TransactionTrait};
use uuid::Uuid;

use super::{
    UsageState, budget,
    error::{LimitReached, Scope, UsageError},
    ledger::{self, Held},
    period::Budget,
};
use crate::db::stmt;

/// An amount held against an org's meter until committed or released.
#[derive(Debug)]
#[must_use = "commit or release it; a dropped reservation holds its amount until its TTL"]
pub struct Reservation {
    held: Held,
    meter: String,
    db: DatabaseConnection,
    metrics: super::UsageMetrics,
}

impl Reservation {
    pub fn id(&self) -> Uuid {
        self.held.id
    }

    pub fn amount(&self) -> i64 {
        self.held.amount
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.held.expires_at
    }

    /// The period it counts in (its commit counts there too, even after the period ended).
    pub fn period_start(&self) -> DateTime<Utc> {
        self.held.period_start
    }

    /// Records `actual` as used and frees the rest. More than reserved is charged too (the
    /// limit may be passed by that excess; the next reserve is then refused). Committing again
    /// with the same amount changes nothing.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn commit(self, actual: i64) -> Result<(), UsageError> {
        if actual < 0 {
            return Err(UsageError::validation("actual", "must not be negative"));
        }
        if ledger::commit(&self.db, self.held.id, actual)
            .await?
            .is_some()
        {
            self.metrics.committed(&self.meter, actual);
            return Ok(());
        }
        match ledger::settled(&self.db, self.held.id).await? {
            Some((state, Some(done))) if state == "committed" && done == actual => Ok(()),
            Some((state, _)) => Err(UsageError::Settled(state)),
            None => Err(UsageError::Settled("deleted".into())),
        }
    }

    /// Gives the amount back (the work failed). Releasing a settled reservation changes nothing.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn release(self) -> Result<(), UsageError> {
        ledger::release(&self.db, self.held.id).await?;
        Ok(())
    }
}

impl UsageState {
    /// Reserves `amount` of `meter` for the org (and `member`, none for an API key) under `key`:
    /// granted only while used + reserved + amount stays within the period's limit (and the
    /// member's cap). The same key returns the same reservation: a retried request counts once.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn reserve(
        &self,
        org_id: Uuid,
        member: Option<Uuid>,
        meter: &str,
        amount: i64,
        key: &str,
    ) -> Result<Reservation, UsageError> {
        let budget = self.budget(org_id, member, meter).await?;
        self.reserve_in(&budget, member, amount, key).await
    }

    /// The org's budget for `meter` now (its plan's, or the free allowance).
    pub async fn budget(
        &self,
        org_id: Uuid,
        member: Option<Uuid>,
        meter: &str,
    ) -> Result<Budget, UsageError> {
        budget::resolve(&self.db, self.grace, org_id, member, meter, Utc::now()).await
    }

    /// [`reserve`](Self::reserve) against a budget already resolved.
    pub async fn reserve_in(
        &self,
        budget: &Budget,
        member: Option<Uuid>,
        amount: i64,
        key: &str,
    ) -> Result<Reservation, UsageError> {
        if amount <= 0 {
            return Err(UsageError::validation("amount", "must be positive"));
        }
        if key.is_empty() || key.len() > 255 {
            return Err(UsageError::validation("key", "must be 1 to 255 characters"));
        }
        let ttl = self.config.reservation_ttl.as_secs_f64();
        let held = match (member, budget.member_cap) {
            (Some(member), Some(cap)) => {
                self.reserve_capped(budget, member, cap, amount, key).await
            }
            _ => ledger::reserve(&self.db, budget, member, amount, key, ttl).await,
        };
        let held = held.inspect_err(|e| {
            if let UsageError::LimitReached(l) = e {
                self.metrics.refused(&l.meter, l.scope);
            }
        })?;
        Ok(Reservation {
            held,
            meter: budget.meter.clone(),
            db: self.db.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// A capped member's reserve: their reserves are serialised by a lock on (org, meter,
    /// member), the share is counted from their reservations, then the org's reserve runs in
    /// the same transaction.
    async fn reserve_capped(
        &self,
        budget: &Budget,
        member: Uuid,
        cap: i64,
        amount: i64,
        key: &str,
    ) -> Result<Held, UsageError> {
        #[derive(FromQueryResult)]
        struct Share {
            seen: bool,
            used: i64,
        }
        let txn = self.db.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock(hashtextextended('usage-member:' || $1 || ':' || $2 || ':' || $3, 0))",
            [budget.org_id.to_string().into(), budget.meter.clone().into(), member.to_string().into()],
        ))
        .await?;
        let share = Share::find_by_statement(stmt(
            "SELECT EXISTS (SELECT 1 FROM usage_reservations WHERE org_id = $1 AND meter = $2 \
                AND key = $5) AS seen, \
             coalesce(sum(CASE WHEN state = 'committed' THEN actual \
                WHEN state = 'open' AND expires_at > now() THEN amount ELSE 0 END), 0)::bigint \
                AS used \
             FROM usage_reservations \
             WHERE org_id = $1 AND meter = $2 AND period_start = $3 AND member_id = $4",
            [
                budget.org_id.into(),
                budget.meter.clone().into(),
                budget.period.start.into(),
                member.into(),
                key.into(),
            ],
        ))
        .one(&txn)
        .await?
        .unwrap_or(Share {
            seen: false,
            used: 0,
        });
        if !share.seen && share.used + amount > cap {
            return Err(UsageError::LimitReached(LimitReached {
                meter: budget.meter.clone(),
                scope: Scope::Member,
                limit: cap,
                used: share.used,
                resets_at: budget.period.end,
            }));
        }
        let ttl = self.config.reservation_ttl.as_secs_f64();
        let held = ledger::reserve(&txn, budget, Some(member), amount, key, ttl).await?;
        txn.commit().await?;
        Ok(held)
    }
}
