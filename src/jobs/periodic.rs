//! Periodic jobs: every process with workers enqueues the job once per interval, and the queue's
//! idempotency key names the interval (`every:<n>`, n = unix time / interval), so however many
//! processes run, each interval's job is queued once and runs on one worker.
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use sea_orm::DatabaseConnection;

use super::{Job, JobOptions, JobQueue};

/// Enqueues `J::default()` every `every` until `shutdown`; a zero interval turns it off.
pub async fn schedule<J: Job + Default>(
    queue: JobQueue,
    db: DatabaseConnection,
    every: Duration,
    shutdown: CancellationToken,
) {
    every_interval(every, shutdown, || async {
        let slot = Utc::now().timestamp() as u64 / every.as_secs().max(1);
        let key = JobOptions::idempotency_key(format!("every:{slot}"));
        if let Err(error) = queue.push(&db, &J::default(), key).await {
            tracing::warn!(queue = J::QUEUE, %error, "could not enqueue a periodic job");
        }
    })
    .await;
}

/// Runs `tick` after each `every` until `shutdown` (the first run one interval after start); a
/// zero interval turns it off. For a layer's own timer service (`Workers::service`) as well.
pub async fn every_interval<F, Fut>(every: Duration, shutdown: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        tick().await;
    }
}
