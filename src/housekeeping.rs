//! Housekeeping: a periodic job deleting what no longer serves any purpose, so the tables the hot
//! paths and the metrics scrape read stay the size of the live data, not of the product's history.
//!
//! Each part says what of its own can go (`JobQueue::prune_done`, `idempotency::prune_expired`,
//! `mail::prune_sent`, a layer's `prune`); the composition root hands them to [`Housekeeping`] as
//! [`Step`]s, and this module only runs them, on a worker, once per `HOUSEKEEPING_INTERVAL_SECS`
//! however many instances there are ([`crate::jobs::periodic`]). Every step deletes in small batches
//! and is safe to repeat, so a crash mid-way costs nothing: the next run finishes the work.
//!
//! Kept on purpose: audit trails (`auth_events`, `order_events`, `admin_actions`), Stripe events,
//! orders and licences, and dead jobs (each is a failure an operator has yet to look at).
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};

use crate::{
    config::{ConfigError, Vars},
    jobs::{Job, JobContext, JobError},
};

#[derive(Debug, Clone)]
pub struct HousekeepingConfig {
    /// How often it runs; zero turns it off.
    pub interval: Duration,
    /// Finished jobs (and the record of the emails they sent) are kept this long after finishing.
    pub keep_done_jobs: Duration,
    /// Expired or revoked sessions are kept this long after they expire.
    pub keep_ended_sessions: Duration,
}

impl HousekeepingConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let secs = |var, default| vars.parse_or(var, default).map(Duration::from_secs);
        Ok(Self {
            interval: secs("HOUSEKEEPING_INTERVAL_SECS", 3_600)?,
            keep_done_jobs: secs("HOUSEKEEPING_KEEP_DONE_JOBS_SECS", 7 * 86_400)?,
            keep_ended_sessions: secs("HOUSEKEEPING_KEEP_ENDED_SESSIONS_SECS", 30 * 86_400)?,
        })
    }
}

/// Rows deleted from one table by one step.
pub type Pruned = (&'static str, u64);

type StepFuture = Pin<Box<dyn Future<Output = Result<Vec<Pruned>, DbErr>> + Send>>;

/// One part's deletions: given the database, deletes what of its own can go.
pub type Step = Arc<dyn Fn(DatabaseConnection) -> StepFuture + Send + Sync>;

/// Wraps an async function as a [`Step`].
pub fn step<F, Fut>(prune: F) -> Step
where
    F: Fn(DatabaseConnection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Pruned>, DbErr>> + Send + 'static,
{
    Arc::new(move |db| Box::pin(prune(db)))
}

/// What the housekeeping job runs: every step the composition root collected.
#[derive(Clone)]
pub struct HousekeepingState {
    pub db: DatabaseConnection,
    pub steps: Arc<[Step]>,
}

impl HousekeepingState {
    /// Runs every step once and returns the rows deleted per table.
    pub async fn run(&self) -> Result<Vec<Pruned>, DbErr> {
        let mut deleted = Vec::new();
        for step in self.steps.iter() {
            deleted.extend(step(self.db.clone()).await?);
        }
        Ok(deleted)
    }
}

/// The periodic run, as a job: on a worker, retried like any job if the database fails under it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Housekeeping {}

impl Job for Housekeeping {
    const QUEUE: &'static str = "housekeeping";
    type State = HousekeepingState;

    async fn run(self, ctx: JobContext<HousekeepingState>) -> Result<(), JobError> {
        let deleted = ctx.state.run().await?;
        let total: u64 = deleted.iter().map(|(_, n)| n).sum();
        tracing::info!(total, ?deleted, "housekeeping done");
        Ok(())
    }
}
