//! Runs the workers: one apalis worker per job kind, woken by Postgres NOTIFY for new jobs (sent by
//! `announce` once the enqueuing transaction has committed) and by a poll for delayed and retried
//! ones.
use std::time::Instant;

use apalis::prelude::*;
use apalis_postgres::{PostgresStorage, Pubsub};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Job, JobContext, periodic};
use crate::{auth, billing, housekeeping, mail::SendEmail, startup::AppState};

/// Runs every job kind until `shutdown` fires, then lets running jobs finish (up to the configured
/// shutdown timeout) and hands back the ones it had fetched but not started.
pub async fn run(app: AppState, shutdown: CancellationToken) -> Result<(), MonitorError> {
    let monitor = Monitor::new()
        .shutdown_timeout(app.config.http.shutdown_timeout)
        // A worker dies when its database calls fail (e.g. Postgres restarting). Restart it: the
        // pool's acquire timeout paces the retries while the database is away.
        .should_restart(|worker, error| {
            tracing::warn!(worker = %worker.name(), %error, restarts = worker.restarts(), "job worker failed; restarting");
            true
        });
    // Every job kind is registered here; a module adding one adds a line.
    let monitor = register::<SendEmail>(monitor, &app);
    let monitor = register::<auth::jobs::RequestPasswordReset>(monitor, &app);
    let monitor = register::<billing::jobs::DeliverLicense>(monitor, &app);
    let monitor = register::<billing::jobs::SendReceipt>(monitor, &app);
    let monitor = register::<billing::jobs::RestrictLicenses>(monitor, &app);
    let monitor = register::<billing::reconcile::ReconcileStuckOrders>(monitor, &app);
    let monitor = register::<housekeeping::Housekeeping>(monitor, &app);
    // Periodic jobs, queued once per interval however many processes run this.
    tokio::spawn(
        periodic::schedule::<billing::reconcile::ReconcileStuckOrders>(
            app.clone(),
            app.config.billing.reconcile_interval,
            shutdown.clone(),
        ),
    );
    tokio::spawn(periodic::schedule::<housekeeping::Housekeeping>(
        app.clone(),
        app.config.housekeeping.interval,
        shutdown.clone(),
    ));
    monitor
        .run_with_signal(async move {
            shutdown.cancelled().await;
            Ok(())
        })
        .await
}

fn register<J: Job>(monitor: Monitor, app: &AppState) -> Monitor {
    let app = app.clone();
    // Unique per process: apalis tracks liveness per worker name, and a killed process' jobs are
    // re-run once its heartbeats stop.
    let instance = uuid::Uuid::new_v4().simple().to_string();
    monitor.register(move |restarts| {
        let pool = app.db.get_postgres_connection_pool().clone();
        let settings = &app.config.jobs;
        let config = apalis_postgres::Config::default()
            .queue(J::QUEUE)
            .batch_size(settings.concurrency)
            .heartbeat_interval(settings.heartbeat)
            .missed_heartbeats(settings.missed_heartbeats);
        let storage = PostgresStorage::<J>::new(&pool).with_config(config);
        let wake_up = Strategy::new()
            .stream(Pubsub::new(pool, J::QUEUE.to_owned()))
            .interval(settings.poll_interval);
        WorkerBuilder::new(format!("{}-{instance}-{restarts}", J::QUEUE))
            .backend(PollWith::new(storage, wake_up))
            .catch_panic()
            .concurrency(settings.concurrency)
            .parallelize(tokio::spawn)
            .data(app.clone())
            .build(execute::<J>)
    })
}

async fn execute<J: Job>(
    job: J,
    app: Data<AppState>,
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
        app: (*app).clone(),
        job_id: id.to_string(),
        attempt: attempt.current(),
    };
    async move {
        let started = Instant::now();
        let result = app.jobs.announce_after(job.run(ctx)).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(()) => tracing::info!(elapsed_ms, "job done"),
            Err(error) => tracing::warn!(%error, elapsed_ms, "job failed"),
        }
        result.map_err(Into::into)
    }
    .instrument(span)
    .await
}
