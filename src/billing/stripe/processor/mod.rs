//! The inbox's back half: stored events applied to our orders, in batches, by any number of
//! processes (`serve` and `worker` each run one processor).
//!
//! 1. **Claim** (a short transaction, serialised across processes by an advisory lock): claims whose
//!    process died (`claimed_until` passed) return to pending; then up to `claim_batch` due pending
//!    events are marked `processing` with `claimed_by`/`claimed_until`, oldest (`created`, id)
//!    first, **at most one per Stripe object in flight** — an event whose object already has one in
//!    flight waits for the next claim. Each claim counts an attempt, so an event that kills its
//!    process still runs out of attempts.
//! 2. **Apply**, in `lanes` transactions at once (tasks), each applying a chunk of up to
//!    `apply_batch` events with one commit; the next claim is made as soon as fewer than `lanes`
//!    claimed chunks wait, so lanes never idle behind a claim. A chunk's orders are locked in id
//!    order, then for each event in (`created`, id) order [`orders::decide`] judges it against its locked order
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
use std::{collections::VecDeque, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult, TransactionTrait};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    event::{self, Envelope, EventOutcome},
    inbox::CHANNEL,
};
use crate::{
    billing::{
        app::BillingState,
        orders::{self, Source},
        subscriptions,
    },
    db::stmt,
    jobs::Wakeups,
};
use tracing::Instrument;

mod claims;
mod yielding;

use yielding::{Gauge, Pace};

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

/// What applying an event did, as its row records it.
struct Done {
    outcome: EventOutcome,
    order_id: Option<uuid::Uuid>,
    detail: Option<&'static str>,
}

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

    /// Processes until `shutdown`, woken by every commit in the inbox (here or in another
    /// process) and by the poll interval. On shutdown it stops claiming, hands back the events it
    /// claimed but had not started, and lets the chunks it is applying finish.
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
        if let Err(error) = self.pump(Some(&shutdown)).await {
            tracing::warn!(%error, "stripe inbox: processor stopped");
        }
        listening.abort();
    }

    /// Processes every due event until none is left; returns how many it claimed. For tests and
    /// tools that need the inbox empty without the background processor.
    pub async fn drain(&self) -> Result<usize, DbErr> {
        self.pump(None).await
    }

    /// The processing loop: up to `lanes` chunk transactions apply at once (each a task), and a
    /// new claim is made whenever fewer than `lanes` claimed chunks wait for a lane — so lanes do
    /// not wait for claims and a claim does not wait for the slowest chunk of the one before.
    /// With no `shutdown` it returns once a claim finds nothing and nothing is applying.
    async fn pump(&self, shutdown: Option<&CancellationToken>) -> Result<usize, DbErr> {
        let inbox = &self.app.config.inbox;
        let wake = &self.app.inbox.wake;
        let ingest = &self.app.inbox.load;
        let mut gauge = Gauge::new(ingest.stored(), std::time::Instant::now());
        let mut waiting: VecDeque<Vec<Claimed>> = VecDeque::new();
        let mut applying = JoinSet::new();
        let mut claimed = 0;
        // The last claim found nothing: claim again after a wake-up, a finished chunk (its
        // objects are free again) or the poll interval.
        let mut dry = false;
        loop {
            // While this process' webhook is in a storm, fewer lanes that rest (`yielding.rs`).
            let rate = gauge.sample(ingest.stored(), std::time::Instant::now());
            let pace = Pace::for_load(inbox, rate);
            while applying.len() < pace.lanes
                && let Some(chunk) = waiting.pop_front()
            {
                let this = self.clone();
                applying.spawn(async move {
                    let jobs = this.app.jobs.clone();
                    let started = std::time::Instant::now();
                    // A unit of work: the jobs it queued are announced once it has committed,
                    // never by a NOTIFY inside its transaction (that would serialise commits).
                    jobs.announce_after(this.process_chunk(chunk)).await;
                    // The lane stays taken while it rests, so the rest is CPU the ingest gets.
                    let rest = pace.rest_after(started.elapsed());
                    if !rest.is_zero() {
                        tokio::time::sleep(rest).await;
                    }
                });
            }
            if shutdown.is_some_and(CancellationToken::is_cancelled) {
                self.release(waiting.into_iter().flatten()).await;
                applying.join_all().await;
                return Ok(claimed);
            }
            if !dry && waiting.len() < pace.lanes {
                match self.claim(pace.claim, None).await {
                    Ok(events) if events.is_empty() => dry = true,
                    Ok(mut events) => {
                        claimed += events.len();
                        while !events.is_empty() {
                            let rest = events.split_off(events.len().min(inbox.apply_batch));
                            waiting.push_back(std::mem::replace(&mut events, rest));
                        }
                    }
                    Err(error) if shutdown.is_none() => return Err(error),
                    Err(error) => {
                        tracing::warn!(%error, "stripe inbox: claiming failed; retrying");
                        dry = true;
                    }
                }
                continue;
            }
            let poll = tokio::time::sleep(inbox.poll_interval);
            let stopping = async {
                match shutdown {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            if applying.is_empty() {
                if shutdown.is_none() {
                    return Ok(claimed);
                }
                tokio::select! {
                    _ = stopping => {}
                    _ = wake.notified() => {}
                    _ = poll => {}
                }
            } else {
                tokio::select! {
                    _ = stopping => {}
                    _ = wake.notified() => {}
                    _ = applying.join_next() => {}
                }
            }
            dry = false;
        }
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
            .map(|(i, event)| Ok((i, event::parse(&event.payload)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        envelopes.sort_by_key(|(_, envelope)| {
            orders::interpret(envelope)
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
            let done = self.apply_event(&txn, envelope).await?;
            outcomes[*i] = done.outcome;
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
                done.order_id.into(),
                done.detail.map(str::to_owned).into(),
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
        let envelope = event::parse(&event.payload)?;
        let txn = self.app.db.begin().await?;
        let done = self.apply_event(&txn, &envelope).await?;
        let outcome = done.outcome;
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
                    done.order_id.into(),
                    done.detail.map(str::to_owned).into(),
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

    /// Applies one event in `txn`: a subscription or invoice event brings our copy of its
    /// subscription up to date (`subscriptions/events.rs`); any other is judged against its order
    /// (`orders/webhook.rs`).
    async fn apply_event(
        &self,
        txn: &DatabaseTransaction,
        envelope: &Envelope,
    ) -> Result<Done, anyhow::Error> {
        if let Some(event) = subscriptions::classify_event(envelope) {
            let applied = subscriptions::apply_event(&self.app, txn, event?).await?;
            return Ok(Done {
                outcome: applied.outcome,
                order_id: None,
                detail: applied.detail,
            });
        }
        let decision = orders::decide(txn, envelope).await?;
        let source = Source::Stripe {
            event_id: &envelope.id,
        };
        // Stripe's deliveries carry no trace context: while traces are exported, the event
        // continues its order's trace and the jobs it queues are children of this span. Otherwise
        // the hot path makes no span and no read.
        let exported = decision
            .order_id()
            .filter(|_| crate::telemetry::exporting());
        let span = match exported {
            Some(order) => {
                let span = tracing::info_span!("stripe_event", event_id = %envelope.id,
                    event_type = %envelope.event_type);
                let placed_in = order_trace(txn, order).await?;
                crate::telemetry::continue_trace(&span, placed_in.as_deref());
                span
            }
            None => tracing::Span::none(),
        };
        decision
            .carry_out(&self.app, txn, source)
            .instrument(span)
            .await?;
        Ok(Done {
            outcome: decision.event_outcome(),
            order_id: decision.order_id(),
            detail: decision.detail(),
        })
    }

    /// Applies an event claimed by [`claim_for_replay`](Self::claim_for_replay).
    pub(super) async fn process_claimed(&self, event: Claimed) {
        self.process(event).await
    }
}

/// The trace the order was placed in (`None` when it was placed with export off).
async fn order_trace(
    txn: &DatabaseTransaction,
    order: uuid::Uuid,
) -> Result<Option<String>, DbErr> {
    let row = txn
        .query_one_raw(stmt(
            "SELECT traceparent FROM orders WHERE id = $1",
            [order.into()],
        ))
        .await?;
    Ok(row.and_then(|r| {
        r.try_get::<Option<String>>("", "traceparent")
            .ok()
            .flatten()
    }))
}
