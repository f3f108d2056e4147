//! Runs the workers: one apalis worker per registered job kind, woken by Postgres NOTIFY for new
//! jobs (sent by `announce` once the enqueuing transaction has committed) and by a poll for delayed
//! and retried ones.
//!
//! The composition root registers every job kind with the state of the layer that owns it:
//!
//! ```ignore
//! let mut workers = Workers::new(db, queue, config.jobs.clone(), shutdown_timeout);
//! workers
//!     .register::<SendEmail>(mail_state)
//!     .periodic::<Housekeeping>(housekeeping_state, every_hour);
//! auth::register_jobs(&mut workers, &auth_state);
//! workers.run(shutdown).await
//! ```
use std::{
    collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration, time::Instant,
};

use apalis::prelude::*;
use apalis_postgres::{PostgresStorage, Pubsub};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Job, JobContext, JobQueue, periodic};
use crate::{config::JobsConfig, db, telemetry};

/// Where a job came from, as its metadata says: the request that queued it and that work's trace.
#[derive(Debug, Default)]
struct Origin {
    request_id: String,
    traceparent: String,
}

/// One run of a job kind from its stored arguments (for [`Workers::run_until_idle`]).
type RunStored = Arc<
    dyn Fn(
            Vec<u8>,
            String,
            usize,
            Origin,
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

type Scheduler =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A service's work done once, to the end, for [`Workers::run_until_idle`]: how many items it did.
pub type Drain =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<usize, DbErr>> + Send>> + Send + Sync>;

/// The job kinds this process runs, each with its layer's state, and the periodic ones it queues.
pub struct Workers {
    monitor: Monitor,
    db: DatabaseConnection,
    queue: JobQueue,
    config: JobsConfig,
    schedulers: Vec<Scheduler>,
    /// Queue → how to run one of its jobs here, without apalis.
    runners: BTreeMap<&'static str, RunStored>,
    /// Background services beside the job kinds (e.g. billing's inbox processor), by name.
    drains: BTreeMap<&'static str, Drain>,
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
            runners: BTreeMap::new(),
            drains: BTreeMap::new(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Runs jobs of kind `J` here, each run given `state`.
    pub fn register<J: Job>(&mut self, state: J::State) -> &mut Self {
        let pool = self.db.get_postgres_connection_pool().clone();
        let settings = self.config.clone();
        let runner = Runner {
            state,
            queue: self.queue.clone(),
        };
        let instance = self.instance.clone();
        let stored = runner.clone();
        self.runners.insert(
            J::QUEUE,
            Arc::new(move |args, job_id, attempt, origin| {
                let runner = stored.clone();
                Box::pin(async move {
                    let job: J = serde_json::from_slice(&args)
                        .map_err(|e| format!("the job's arguments do not parse: {e}"))?;
                    run_logged(job, &runner, job_id, attempt, &origin).await
                })
            }),
        );
        if !settings.runs(J::QUEUE) {
            // Not this process' work (`JOBS_ONLY`); `run_until_idle` may still run it.
            return self;
        }
        let monitor = std::mem::replace(&mut self.monitor, Monitor::new());
        self.monitor = monitor.register(move |restarts| {
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
    pub fn periodic<J: Job + Default>(&mut self, state: J::State, every: Duration) -> &mut Self {
        self.register::<J>(state);
        if !self.config.runs(J::QUEUE) {
            return self;
        }
        let (queue, db) = (self.queue.clone(), self.db.clone());
        self.schedulers.push(Box::new(move |shutdown| {
            Box::pin(periodic::schedule::<J>(queue, db, every, shutdown))
        }));
        self
    }

    /// Runs a layer's own background service here until shutdown, beside the job kinds (`run`
    /// gets the shutdown token and should return soon after it fires). `drain` does the service's
    /// pending work once, to the end, for [`run_until_idle`](Self::run_until_idle).
    pub fn service(
        &mut self,
        name: &'static str,
        run: impl FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static,
        drain: impl Fn() -> Pin<Box<dyn Future<Output = Result<usize, DbErr>> + Send>>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.drains.insert(name, Arc::new(drain));
        if !self.config.runs(name) {
            return self;
        }
        self.schedulers.push(Box::new(move |shutdown| {
            Box::pin(async move {
                run(shutdown).await;
                tracing::info!(service = name, "stopped");
            })
        }));
        self
    }

    /// The queues of the registered job kinds.
    pub fn queues(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.runners.keys().copied()
    }

    /// Runs every registered kind until `shutdown` fires, then lets running jobs finish (up to the
    /// shutdown timeout) and hands back the ones it had fetched but not started.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), MonitorError> {
        let services: Vec<_> = self
            .schedulers
            .into_iter()
            .map(|schedule| tokio::spawn(schedule(shutdown.clone())))
            .collect();
        let stopped = self
            .monitor
            .run_with_signal(async move {
                shutdown.cancelled().await;
                Ok(())
            })
            .await;
        // Services finish what they hold (an inbox round) before the process exits.
        for service in services {
            let _ = service.await;
        }
        stopped
    }
}

async fn execute<J: Job>(
    job: J,
    runner: Data<Runner<J::State>>,
    id: TaskId,
    attempt: Attempt,
    metadata: MetadataStore,
) -> Result<(), BoxDynError> {
    let origin = Origin {
        request_id: metadata.get("request_id").unwrap_or_default().to_owned(),
        traceparent: metadata.get("traceparent").unwrap_or_default().to_owned(),
    };
    run_logged(job, &runner, id.to_string(), attempt.current(), &origin)
        .await
        .map_err(Into::into)
}

/// Runs one job in its span (queue, id, attempt and the request that queued it; a child of the span
/// that queued it when traces are exported), announcing the jobs
/// it queues once it has finished; a failure comes back with its whole cause chain, which is what an
/// operator reads as the dead job's last error.
async fn run_logged<J: Job>(
    job: J,
    runner: &Runner<J::State>,
    job_id: String,
    attempt: usize,
    origin: &Origin,
) -> Result<(), String> {
    let request_id = origin.request_id.as_str();
    let span = tracing::info_span!("job", queue = J::QUEUE, job_id, attempt, request_id);
    telemetry::continue_trace(&span, Some(&origin.traceparent));
    let ctx = JobContext {
        state: runner.state.clone(),
        job_id,
        attempt,
    };
    async move {
        let started = Instant::now();
        let result = runner.queue.announce_after(job.run(ctx)).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(()) => tracing::info!(elapsed_ms, "job done"),
            Err(error) => tracing::warn!(error = format!("{error:#}"), elapsed_ms, "job failed"),
        }
        result.map_err(|error| format!("{error:#}"))
    }
    .instrument(span)
    .await
}

#[derive(FromQueryResult)]
struct TakenJob {
    id: String,
    job: Vec<u8>,
    attempts: i32,
    request_id: Option<String>,
    traceparent: Option<String>,
}

// The next due job of one kind, fetched by apalis' own `get_jobs` (the query its workers run:
// Pending, or Failed with attempts left; due; `SKIP LOCKED`), which marks it Queued and locked to
// `$1`, so the retry policy's trigger applies when its result is recorded.
const TAKE_NEXT: &str = "SELECT id, job, attempts, metadata -> 'request_id' AS request_id, \
    metadata -> 'traceparent' AS traceparent FROM apalis.get_jobs($1, $2, 1)";

impl Workers {
    /// Runs every due job of the registered kinds here, one after another (and drains the
    /// services, e.g. the Stripe inbox, before each pass), until nothing is due, and returns how
    /// many jobs and service items ran: the queue's work done deterministically, without background workers
    /// or polling (tests that only need the jobs done; one-off scripts). Results are recorded as a
    /// worker records them, so a failure backs off (it is then not due, and stays for later) and a
    /// job out of attempts is dead. Jobs delayed into the future are left for their time.
    pub async fn run_until_idle(&self) -> Result<usize, DbErr> {
        let worker = format!("run-until-idle-{}", self.instance);
        self.db
            .execute_raw(db::stmt(
                "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) \
                 VALUES ($1, 'run_until_idle', 'PostgresStorage', '', now()) \
                 ON CONFLICT (id) DO UPDATE SET last_seen = now()",
                [worker.clone().into()],
            ))
            .await?;
        let mut ran = 0;
        loop {
            let mut idle = true;
            for drain in self.drains.values() {
                let drained = drain().await?;
                idle &= drained == 0;
                ran += drained;
            }
            for (kind, run) in &self.runners {
                let taken = TakenJob::find_by_statement(db::stmt(
                    TAKE_NEXT,
                    [worker.clone().into(), (*kind).into()],
                ))
                .one(&self.db)
                .await?;
                let Some(job) = taken else { continue };
                idle = false;
                // apalis counts an attempt when its result is recorded; so does this.
                let attempt = job.attempts as usize + 1;
                let origin = Origin {
                    request_id: job.request_id.unwrap_or_default(),
                    traceparent: job.traceparent.unwrap_or_default(),
                };
                let (status, result) = match run(job.job, job.id.clone(), attempt, origin).await {
                    Ok(()) => ("Done", serde_json::json!({ "Ok": null })),
                    Err(error) => ("Failed", serde_json::json!({ "Err": error })),
                };
                self.db
                    .execute_raw(db::stmt(
                        "UPDATE apalis.jobs SET status = $2, attempts = $3, last_result = $4, \
                         done_at = now() WHERE id = $1 AND lock_by = $5",
                        [
                            job.id.into(),
                            status.into(),
                            (attempt as i32).into(),
                            result.into(),
                            worker.clone().into(),
                        ],
                    ))
                    .await?;
                ran += 1;
            }
            if idle {
                return Ok(ran);
            }
        }
    }
}
