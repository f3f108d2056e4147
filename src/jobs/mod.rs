//! The persistent job queue: apalis workers on apalis-postgres, sharing the app's pool.
//!
//! - [`Job`] is what a module implements to define a kind of background work.
//! - [`JobQueue::push`] enqueues one on any sea-orm connection *or open transaction*, so a business
//!   write and the jobs it implies commit or roll back together.
//! - [`JobQueue::announce_after`] wraps a unit of work (a request, a job run) so the workers are woken
//!   for the jobs it queued once its transactions have committed (see `announce`).
//! - [`Workers`] runs the job kinds the composition root registers (each with its layer's state)
//!   until shutdown, and queues the periodic ones once per interval across processes
//!   ([`periodic`]). This module knows no job kind: a layer adding one registers it in its own
//!   `register_jobs` function.
//!
//! Retries back off exponentially and a job out of attempts is kept as dead (`status = 'Killed'`);
//! both are enforced in the database (see the jobs migration), so they hold across restarts and for
//! jobs orphaned by a killed worker.
mod announce;
pub mod periodic;
mod queue;
pub mod worker;

use std::future::Future;

use serde::{Serialize, de::DeserializeOwned};

pub use announce::Wakeups;
pub use queue::{DeadJob, Enqueued, JobOptions, JobQueue, JobRecord, JobStatus, NewJob};
pub use worker::Workers;

/// A kind of background work. The value is the job's arguments, stored as JSON in `apalis.jobs`.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The queue (apalis `job_type`) jobs of this kind live in. Renaming it strands queued jobs.
    const QUEUE: &'static str;

    /// What a run can reach: its layer's state (cheap to clone), handed over at registration.
    type State: Clone + Send + Sync + 'static;

    /// Does the work. An `Err` is retried with backoff until the attempts run out; the job must
    /// therefore be safe to run again (idempotent) — a crash may also re-run a finished job whose
    /// completion was not yet recorded.
    fn run(self, ctx: JobContext<Self::State>)
    -> impl Future<Output = Result<(), JobError>> + Send;
}

/// What a running job can reach: its layer's state and facts about this run.
#[derive(Clone)]
pub struct JobContext<S> {
    pub state: S,
    /// The apalis task id (a ULID): stable across retries, so usable for idempotency.
    pub job_id: String,
    /// 1 on the first run.
    pub attempt: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    /// Any other failure, with its cause chain (`anyhow::Context` adds what was being done).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl JobError {
    /// A failure that is only a message (e.g. "order … not found").
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Self::Failed(anyhow::anyhow!("{message}"))
    }
}
