//! The inbox's back half: stored events applied to our orders, in batches, by any number of
//! processes (`serve` and `worker` each run one processor).
//!
//! 1. **Claim** (a short transaction, serialised across processes by an advisory lock): claims whose
//!    process died (`claimed_until` passed) return to pending; then up to `claim_batch` due pending
//!    events are marked `processing` with `claimed_by`/`claimed_until`, oldest (`created`, id)
//!    first, **at most one per Stripe object in flight** — an event whose object already has one in
//!    flight waits for the next claim. Each claim counts an attempt, so an event that kills its
//!    process still runs out of attempts.
//! 2. **Apply**, in `lanes` transactions at once, each applying a chunk of up to `apply_batch`
//!    events (one commit for several events): the chunk's orders are locked in id order, then for
//!    each event in (`created`, id) order [`webhook::decide`] judges it against its locked order
//!    and the decision is carried out (audit, order move, follow-up jobs with derived keys); the
//!    events are marked `processed` by one update that only matches while their claims still hold
//!    (same claimant, same attempt): a claim lost to expiry rolls back whole, so nothing applies
//!    twice. If the chunk fails, it rolls back and its events are applied one by one, each in its
//!    own transaction: a failing event rolls back alone and never holds back the others.
//! 3. **Failure**: the event returns to pending with its error and a backoff (`retry_base` doubling
//!    per attempt, capped at `retry_max`), or becomes `dead` after `max_attempts`, kept for the
//!    operator's review and replay (`replay.rs`, through the same claim and apply).
//!
//! Woken after each inbox commit (in-process, and via `Wakeups` from other processes) and by a poll.
use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use tokio_util::sync::CancellationToken;

use super::{
    BillingState, events,
    inbox::CHANNEL,
    orders::Source,
    webhook::{self, EventOutcome},
};
use crate::{db::stmt, jobs::Wakeups};

/// The advisory lock that serialises claims (any constant unique to this use).
const CLAIM_LOCK: i64 = 0x1C_57_12_1E;

/// A claimed event, as the apply step needs it.
#[derive(Debug, FromQueryResult)]
pub(super) struct Claimed {
    event_id: String,
    event_type: String,
    payload: String,
    attempts: i32,
    received_at: DateTime<Utc>,
    stripe_created: DateTime<Utc>,
}

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

// Only while the claim holds: same claimant, same attempt, still processing.
const HELD: &str = "event_id = $1 AND status = 'processing' AND claimed_by = $2 AND attempts = $3";

/// Applies stored Stripe events; cheap to clone (shares the billing state).
#[derive(Clone)]
pub struct Processor {
    app: BillingState,
    /// Unique per process: who holds a claim.
    instance: Arc<str>,
}

impl Processor {
    pub fn new(app: BillingState) -> Self {
        let instance = format!("processor-{}", uuid::Uuid::new_v4().simple());
        Self {
            app,
            instance: instance.into(),
        }
    }

    /// Processes until `shutdown`: a round after every wake-up (a commit in the inbox, here or in
    /// another process) and every poll interval, and again at once while rounds find work.
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.app.inbox.wake.clone();
        let mut wakeups = Wakeups::new(self.app.db.clone(), CHANNEL);
        let forward = wake.clone();
        let listening = tokio::spawn(async move {
            loop {
                wakeups.next().await;
                forward.notify_one();
            }
        });
        let poll = self.app.config.inbox.poll_interval;
        while !shutdown.is_cancelled() {
            match self.round().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(error) => tracing::warn!(%error, "stripe inbox: claiming failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        listening.abort();
    }

    /// Processes every due event, round after round, until none is left; returns how many it
    /// claimed. For tests and tools that need the inbox empty without the background processor.
    pub async fn drain(&self) -> Result<usize, DbErr> {
        let mut total = 0;
        loop {
            match self.round().await? {
                0 => return Ok(total),
                claimed => total += claimed,
            }
        }
    }

    /// One claim, and its events applied: `lanes` transactions at once, each applying a chunk of
    /// up to `apply_batch` events.
    async fn round(&self) -> Result<usize, DbErr> {
        let inbox = &self.app.config.inbox;
        let mut claimed = self.claim(None).await?;
        let count = claimed.len();
        let mut chunks = Vec::new();
        while !claimed.is_empty() {
            let rest = claimed.split_off(claimed.len().min(inbox.apply_batch));
            chunks.push(std::mem::replace(&mut claimed, rest));
        }
        // Each chunk is a unit of work: the jobs it queued are announced once it has committed,
        // never by a NOTIFY inside its transaction (which would serialise every commit).
        stream::iter(chunks)
            .for_each_concurrent(inbox.lanes, |chunk| {
                self.app.jobs.announce_after(self.process_chunk(chunk))
            })
            .await;
        Ok(count)
    }

    /// Applies a chunk in one transaction; if that fails (one event's error, a lost claim, a
    /// deadlock), rolls it back and applies its events one by one, so one event never fails
    /// another.
    async fn process_chunk(&self, chunk: Vec<Claimed>) {
        if chunk.len() > 1 {
            match self.apply_chunk(&chunk).await {
                Ok(outcomes) => {
                    for (event, outcome) in chunk.iter().zip(outcomes) {
                        self.processed(event, outcome);
                    }
                    return;
                }
                Err(error) => {
                    tracing::debug!(
                        error = format!("{error:#}"),
                        events = chunk.len(),
                        "stripe inbox: chunk failed; applying its events one by one"
                    );
                }
            }
        }
        for event in chunk {
            self.process(event).await;
        }
    }

    fn processed(&self, event: &Claimed, outcome: EventOutcome) {
        let lag = (Utc::now() - event.received_at)
            .to_std()
            .unwrap_or_default();
        self.app
            .metrics
            .observe_processed(&event.event_type, outcome.as_str(), lag);
        tracing::info!(event_id = %event.event_id, event_type = %event.event_type,
            outcome = outcome.as_str(), "stripe event processed");
    }

    /// The chunk's apply transaction: its orders locked in id order (as far as the events name
    /// them), each event decided and carried out, then all marked processed in one update that
    /// only matches claims still held. Any failure fails the whole chunk.
    async fn apply_chunk(&self, chunk: &[Claimed]) -> Result<Vec<EventOutcome>, anyhow::Error> {
        let mut envelopes = chunk
            .iter()
            .enumerate()
            .map(|(i, event)| Ok((i, webhook::parse(&event.payload)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        envelopes.sort_by_key(|(_, envelope)| {
            events::interpret(envelope)
                .and_then(|i| i.order_id)
                .map_or((1, None), |id| (0, Some(id)))
        });
        let txn = self.app.db.begin().await?;
        let mut outcomes = vec![EventOutcome::Ignored; chunk.len()];
        let mut sql = String::from(
            "UPDATE stripe_events e SET status = 'processed', outcome = v.outcome, \
             order_id = v.order_id, detail = v.detail, processed_at = now(), claimed_by = NULL, \
             claimed_until = NULL, last_error = NULL FROM (VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = vec![self.instance.to_string().into()];
        for (row, (i, envelope)) in envelopes.iter().enumerate() {
            let decision = webhook::decide(&txn, envelope).await?;
            let source = Source::Stripe {
                event_id: &envelope.id,
            };
            decision.carry_out(&self.app, &txn, source).await?;
            outcomes[*i] = decision.event_outcome();
            let n = 1 + row * 5;
            if row > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}::text, ${}::int, ${}::text, ${}::uuid, ${}::text)",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            ));
            values.extend([
                chunk[*i].event_id.clone().into(),
                chunk[*i].attempts.into(),
                outcomes[*i].as_str().into(),
                decision.order_id().into(),
                decision.detail().map(str::to_owned).into(),
            ]);
        }
        sql.push_str(
            ") AS v(event_id, attempts, outcome, order_id, detail) \
             WHERE e.event_id = v.event_id AND e.status = 'processing' AND e.claimed_by = $1 \
             AND e.attempts = v.attempts",
        );
        let marked = txn.execute_raw(stmt(&sql, values)).await?.rows_affected();
        if marked != chunk.len() as u64 {
            txn.rollback().await?;
            anyhow::bail!(
                "{} of {} claims were lost",
                chunk.len() as u64 - marked,
                chunk.len()
            );
        }
        txn.commit().await?;
        Ok(outcomes)
    }

    async fn claim(&self, only: Option<&str>) -> Result<Vec<Claimed>, DbErr> {
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
                (inbox.claim_batch as i64).into(),
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

    /// Applies one claimed event, or records why it could not be.
    async fn process(&self, event: Claimed) {
        let metrics = &self.app.metrics;
        match self.apply(&event).await {
            Ok(Some(outcome)) => self.processed(&event, outcome),
            Ok(None) => {
                tracing::warn!(event_id = %event.event_id, "stripe event: claim lost before commit; another processor has it");
            }
            Err(error) => {
                let error = format!("{error:#}");
                match self.fail(&event, &error).await {
                    Ok(status) => {
                        metrics.observe_processed(&event.event_type, status, Duration::ZERO);
                        tracing::warn!(event_id = %event.event_id, attempt = event.attempts,
                            status, error, "stripe event failed");
                    }
                    Err(note) => {
                        tracing::warn!(event_id = %event.event_id, error, %note,
                            "stripe event failed and could not be noted; its claim expires");
                    }
                }
            }
        }
    }

    /// The apply transaction. `None` when the claim no longer held at commit time.
    async fn apply(&self, event: &Claimed) -> Result<Option<EventOutcome>, anyhow::Error> {
        let envelope = webhook::parse(&event.payload)?;
        let txn = self.app.db.begin().await?;
        let decision = webhook::decide(&txn, &envelope).await?;
        let source = Source::Stripe {
            event_id: &envelope.id,
        };
        decision.carry_out(&self.app, &txn, source).await?;
        let outcome = decision.event_outcome();
        let marked = txn
            .execute_raw(stmt(
                &format!(
                    "UPDATE stripe_events SET status = 'processed', outcome = $4, order_id = $5, \
                     detail = $6, processed_at = now(), claimed_by = NULL, claimed_until = NULL, \
                     last_error = NULL WHERE {HELD}"
                ),
                [
                    event.event_id.clone().into(),
                    self.instance.to_string().into(),
                    event.attempts.into(),
                    outcome.as_str().into(),
                    decision.order_id().into(),
                    decision.detail().map(str::to_owned).into(),
                ],
            ))
            .await?
            .rows_affected();
        if marked == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        Ok(Some(outcome))
    }

    /// Back to pending after a backoff, or dead once out of attempts. Returns which.
    async fn fail(&self, event: &Claimed, error: &str) -> Result<&'static str, DbErr> {
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

    /// Claims `event_id` for an operator's replay: pending (also while backing off), dead, or
    /// processed with an outcome worth another look (`EventOutcome::is_replayable`) — and only if its
    /// object has nothing in flight. Serialised with every other claim, so of racing replays one
    /// wins. Returns the claim and the outcome it had.
    pub(super) async fn claim_for_replay(
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

    /// Applies an event claimed by [`claim_for_replay`](Self::claim_for_replay).
    pub(super) async fn process_claimed(&self, event: Claimed) {
        self.process(event).await
    }
}

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
           OR (e.status = 'processed' AND e.outcome IN ('unknown_order', 'unhandled_type', 'rejected'))) \
      AND NOT EXISTS (SELECT 1 FROM stripe_events busy \
                      WHERE busy.status = 'processing' AND busy.object_id = coalesce(e.object_id, e.event_id)) \
    RETURNING e.event_id, e.event_type, e.payload, e.attempts, e.received_at, e.stripe_created, \
        before.outcome AS previous_outcome";
