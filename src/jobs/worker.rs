//! Runs the workers: one apalis worker per registered job kind, woken by Postgres NOTIFY for new
//! jobs (sent by `announce` once the enqueuing transaction has committed) and by a poll for delayed
//! and retried ones.
//!
//! The composition root registers every job kind with the state of the layer that owns it:
//!
//! ```ignore
//! Workers::new(db, queue, config.jobs.clone(), shutdown_timeout)
//!     .register::<SendEmail>(mail_state)
//!     .periodic::<Housekeeping>(housekeeping_state, every_hour)
//!     .run(shutdown)
//! ```
use std::{future::Future, pin::Pin, time::Duration, time::Instant};

use apalis::prelude::*;
use apalis_postgres::{PostgresStorage, Pubsub};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Job, JobContext, JobQueue, periodic};
use crate::config::JobsConfig;

type Scheduler =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The job kinds this process runs, each with its layer's state, and the periodic ones it queues.
pub struct Workers {
    monitor: Monitor,
    db: DatabaseConnection,
    queue: JobQueue,
    config: JobsConfig,
    schedulers: Vec<Scheduler>,
    /// Unique per process: apalis tracks liveness per worker name, and a killed process' jobs are
    /// re-run once its heartbeats stop.
    instance: String,
}

/// What a worker hands each run of `J`.
#[derive(Clone)]
struct Runner<S> {
    state: S,
    queue: JobQueue,
}

impl Workers {
    /// `shutdown_timeout`: how long running jobs get to finish once shutdown starts.
    pub fn new(
        db: DatabaseConnection,
        queue: JobQueue,
        config: JobsConfig,
        shutdown_timeout: Duration,
    ) -> Self {
        let monitor = Monitor::new()
            .shutdown_timeout(shutdown_timeout)
            // A worker dies when its database calls fail (e.g. Postgres restarting). Restart it: the
            // pool's acquire timeout paces the retries while the database is away.
            .should_restart(|worker, error| {
                tracing::warn!(worker = %worker.name(), %error, restarts = worker.restarts(), "job worker failed; restarting");
                true
            });
        Self {
            monitor,
            db,
            queue,
            config,
            schedulers: Vec::new(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Runs jobs of kind `J` here, each run given `state`.
    pub fn register<J: Job>(mut self, state: J::State) -> Self {
        let pool = self.db.get_postgres_connection_pool().clone();
        let settings = self.config.clone();
        let runner = Runner {
            state,
            queue: self.queue.clone(),
        };
        let instance = self.instance.clone();
        self.monitor = self.monitor.register(move |restarts| {
            let config = apalis_postgres::Config::default()
                .queue(J::QUEUE)
                .batch_size(settings.concurrency)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(settings.missed_heartbeats);
            let storage = PostgresStorage::<J>::new(&pool).with_config(config);
            let wake_up = Strategy::new()
                .stream(Pubsub::new(pool.clone(), J::QUEUE.to_owned()))
                .interval(settings.poll_interval);
            WorkerBuilder::new(format!("{}-{instance}-{restarts}", J::QUEUE))
                .backend(PollWith::new(storage, wake_up))
                .catch_panic()
                .concurrency(settings.concurrency)
                .parallelize(tokio::spawn)
                .data(runner.clone())
                .build(execute::<J>)
        });
        self
    }

    /// Runs jobs of kind `J` here (as [`register`](Self::register)) and queues `J::default()` once
    /// per `every`, however many processes do the same; a zero interval only registers it.
    pub fn periodic<J: Job + Default>(self, state: J::State, every: Duration) -> Self {
        let mut this = self.register::<J>(state);
        let (queue, db) = (this.queue.clone(), this.db.clone());
        this.schedulers.push(Box::new(move |shutdown| {
            Box::pin(periodic::schedule::<J>(queue, db, every, shutdown))
        }));
        this
    }

    /// Runs every registered kind until `shutdown` fires, then lets running jobs finish (up to the
    /// shutdown timeout) and hands back the ones it had fetched but not started.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), MonitorError> {
        for schedule in self.schedulers {
            tokio::spawn(schedule(shutdown.clone()));
        }
        self.monitor
            .run_with_signal(async move {
                shutdown.cancelled().await;
                Ok(())
            })
            .await
    }
}

async fn execute<J: Job>(
    job: J,
    runner: Data<Runner<J::State>>,
    id: TaskId,
    attempt: Attempt,
    metadata: MetadataStore,
) -> Result<(), BoxDynError> {
    let request_id = metadata.get("request_id").unwrap_or_default();
    let span = tracing::info_span!(
        "job",
        queue = J::QUEUE,
        job_id = %id,
        attempt = attempt.current(),
        request_id,
    );
    let ctx = JobContext {
        state: runner.state.clone(),
        job_id: id.to_string(),
        attempt: attempt.current(),
    };
    async move {
        let started = Instant::now();
        let result = runner.queue.announce_after(job.run(ctx)).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(()) => tracing::info!(elapsed_ms, "job done"),
            Err(error) => tracing::warn!(error = format!("{error:#}"), elapsed_ms, "job failed"),
        }
        // The whole cause chain is what an operator reads in the dead job's last error.
        result.map_err(|error| format!("{error:#}").into())
    }
    .instrument(span)
    .await
}
