//! Housekeeping: a periodic job deleting what no longer serves any purpose, so the tables the hot
//! paths and the metrics scrape read stay the size of the live data, not of the product's history.
//!
//! Each layer says what of its own can go (`auth::prune`, `JobQueue::prune_done`,
//! `idempotency::prune_expired`, `mail::prune_sent`); this module only runs them, on a worker,
//! once per `HOUSEKEEPING_INTERVAL_SECS` however many instances there are
//! ([`crate::jobs::periodic`]). Every step deletes in small batches and is safe to repeat, so a
//! crash mid-way costs nothing: the next run finishes the work.
//!
//! Kept on purpose: audit trails (`auth_events`, `order_events`, `admin_actions`), Stripe events,
//! orders and licences, and dead jobs (each is a failure an operator has yet to look at).
use std::time::Duration;

use sea_orm::DbErr;
use serde::{Deserialize, Serialize};

use crate::{
    auth,
    http::idempotency,
    jobs::{Job, JobContext, JobError, JobQueue},
    mail,
    startup::AppState,
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

/// Runs every step once and returns the rows deleted per table.
pub async fn run(app: &AppState) -> Result<Vec<(&'static str, u64)>, DbErr> {
    let config = &app.config.housekeeping;
    let db = &app.db;
    let mut deleted = vec![
        (
            "apalis.jobs",
            JobQueue::prune_done(db, config.keep_done_jobs).await?,
        ),
        (
            "sent_emails",
            mail::prune_sent(db, config.keep_done_jobs).await?,
        ),
        ("idempotency_keys", idempotency::prune_expired(db).await?),
    ];
    deleted.extend(auth::prune::prune(db, &app.config.auth, config.keep_ended_sessions).await?);
    Ok(deleted)
}

/// The periodic run, as a job: on a worker, retried like any job if the database fails under it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Housekeeping {}

impl Job for Housekeeping {
    const QUEUE: &'static str = "housekeeping";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let deleted = run(&ctx.app).await?;
        let total: u64 = deleted.iter().map(|(_, n)| n).sum();
        tracing::info!(total, ?deleted, "housekeeping done");
        Ok(())
    }
}
