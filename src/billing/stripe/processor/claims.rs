//! Claims on inbox events: taking due events (at most one per object in flight), replay claims,
//! handing back unstarted ones, and recording a failed attempt. Every claim is made under one
//! advisory lock, so claims of all processes are serialised.
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};

use super::{Claimed, HELD, Processor};
use crate::db::stmt;

/// The advisory lock that serialises claims (any constant unique to this use).
const CLAIM_LOCK: i64 = 0x1C_57_12_1E;

// Expired claims first: their process died, their event is due again.
const RECLAIM: &str = "UPDATE stripe_events \
    SET status = 'pending', claimed_by = NULL, claimed_until = NULL \
    WHERE status = 'processing' AND claimed_until < now()";

// $1 claimant, $2 claim TTL (seconds), $3 batch, $4 one event only (replay) or NULL.
const CLAIM: &str = "WITH due AS ( \
        SELECT event_id, coalesce(object_id, event_id) AS lane, stripe_created FROM stripe_events \
        WHERE status = 'pending' AND next_attempt_at <= now() AND ($4::text IS NULL OR event_id = $4) \
        ORDER BY stripe_created, event_id LIMIT $3 * 4 \
    ), free AS ( \
        SELECT DISTINCT ON (lane) event_id, stripe_created FROM due \
        WHERE NOT EXISTS (SELECT 1 FROM stripe_events busy \
                          WHERE busy.status = 'processing' AND busy.object_id = due.lane) \
        ORDER BY lane, stripe_created, event_id \
    ), picked AS ( \
        SELECT event_id FROM free ORDER BY stripe_created, event_id LIMIT $3 \
    ) \
    UPDATE stripe_events e SET status = 'processing', claimed_by = $1, \
        claimed_until = now() + make_interval(secs => $2), attempts = e.attempts + 1 \
    FROM picked WHERE e.event_id = picked.event_id \
    RETURNING e.event_id, e.event_type, e.payload, e.attempts, e.received_at, e.stripe_created";

// $1 claimant, $2 claim TTL (seconds), $3 the event. A replayed dead or processed event starts
// its attempts again.
const REPLAY_CLAIM: &str = "WITH before AS ( \
        SELECT event_id, outcome FROM stripe_events WHERE event_id = $3 \
    ) \
    UPDATE stripe_events e SET status = 'processing', claimed_by = $1, \
        claimed_until = now() + make_interval(secs => $2), outcome = NULL, detail = NULL, \
        attempts = CASE WHEN e.status = 'pending' THEN e.attempts + 1 ELSE 1 END \
    FROM before WHERE e.event_id = before.event_id \
      AND (e.status IN ('pending', 'dead') \
           OR (e.status = 'processed' AND e.outcome IN ('unknown_order', 'unknown_customer', 'unhandled_type', 'rejected'))) \
      AND NOT EXISTS (SELECT 1 FROM stripe_events busy \
                      WHERE busy.status = 'processing' AND busy.object_id = coalesce(e.object_id, e.event_id)) \
    RETURNING e.event_id, e.event_type, e.payload, e.attempts, e.received_at, e.stripe_created, \
        before.outcome AS previous_outcome";

impl Processor {
    /// Claims up to `limit` due events (or only `only`), oldest first.
    pub(super) async fn claim(
        &self,
        limit: usize,
        only: Option<&str>,
    ) -> Result<Vec<Claimed>, DbErr> {
        let inbox = &self.app.config.inbox;
        let txn = self.app.db.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1)",
            [CLAIM_LOCK.into()],
        ))
        .await?;
        txn.execute_raw(stmt(RECLAIM, [])).await?;
        let claimed = Claimed::find_by_statement(stmt(
            CLAIM,
            [
                self.instance.to_string().into(),
                inbox.claim_ttl.as_secs_f64().into(),
                (limit as i64).into(),
                only.map(str::to_owned).into(),
            ],
        ))
        .all(&txn)
        .await?;
        txn.commit().await?;
        let mut claimed = claimed;
        claimed
            .sort_by(|a, b| (a.stripe_created, &a.event_id).cmp(&(b.stripe_created, &b.event_id)));
        Ok(claimed)
    }

    /// Claims `event_id` for an operator's replay: pending (also while backing off), dead, or
    /// processed with an outcome worth another look (`EventOutcome::is_replayable`) — and only if its
    /// object has nothing in flight. Serialised with every other claim, so of racing replays one
    /// wins. Returns the claim and the outcome it had.
    pub(in crate::billing::stripe) async fn claim_for_replay(
        &self,
        event_id: &str,
    ) -> Result<Option<(Claimed, Option<String>)>, DbErr> {
        #[derive(FromQueryResult)]
        struct Replaying {
            #[sea_orm(nested)]
            claimed: Claimed,
            previous_outcome: Option<String>,
        }
        let txn = self.app.db.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1)",
            [CLAIM_LOCK.into()],
        ))
        .await?;
        txn.execute_raw(stmt(RECLAIM, [])).await?;
        let claimed = Replaying::find_by_statement(stmt(
            REPLAY_CLAIM,
            [
                self.instance.to_string().into(),
                self.app.config.inbox.claim_ttl.as_secs_f64().into(),
                event_id.into(),
            ],
        ))
        .one(&txn)
        .await?;
        txn.commit().await?;
        Ok(claimed.map(|r| (r.claimed, r.previous_outcome)))
    }

    /// Hands claimed events that were never started back to pending, their attempt uncounted.
    pub(super) async fn release(&self, events: impl Iterator<Item = Claimed>) {
        let mut values: Vec<sea_orm::Value> = vec![self.instance.to_string().into()];
        values.extend(events.map(|event| event.event_id.into()));
        if values.len() == 1 {
            return;
        }
        let list = (2..=values.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE stripe_events SET status = 'pending', claimed_by = NULL, \
             claimed_until = NULL, attempts = attempts - 1 \
             WHERE status = 'processing' AND claimed_by = $1 AND event_id IN ({list})"
        );
        if let Err(error) = self.app.db.execute_raw(stmt(&sql, values)).await {
            tracing::warn!(%error, "stripe inbox: unstarted claims not handed back; they expire");
        }
    }

    /// Back to pending after a backoff, or dead once out of attempts. Returns which.
    pub(super) async fn fail(&self, event: &Claimed, error: &str) -> Result<&'static str, DbErr> {
        let inbox = &self.app.config.inbox;
        let dead = event.attempts >= inbox.max_attempts;
        let exponent = (event.attempts - 1).clamp(0, 30) as u32;
        let backoff = inbox
            .retry_base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(inbox.retry_max);
        let status = if dead { "dead" } else { "pending" };
        self.app
            .db
            .execute_raw(stmt(
                &format!(
                    "UPDATE stripe_events SET status = $4, last_error = $5, \
                     next_attempt_at = now() + make_interval(secs => $6), \
                     claimed_by = NULL, claimed_until = NULL WHERE {HELD}"
                ),
                [
                    event.event_id.clone().into(),
                    self.instance.to_string().into(),
                    event.attempts.into(),
                    status.into(),
                    error.to_owned().into(),
                    backoff.as_secs_f64().into(),
                ],
            ))
            .await?;
        Ok(if dead { "dead" } else { "failed" })
    }
}
