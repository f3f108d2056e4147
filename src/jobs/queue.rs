//! Enqueueing and inspecting jobs with our own SQL, so it can run inside a caller's transaction
//! (apalis' own `push_tasks` is private and opens its own). Rows are written exactly as apalis
//! writes them: same table, JSON codec, `job_type` = queue name, ULID ids.
use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult, Value};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Job,
    announce::{self, Announcer},
};
use crate::{config::JobsConfig, db, telemetry::RequestId};

/// Enqueues jobs with the retry policy from config, and wakes the workers for them.
#[derive(Debug, Clone)]
pub struct JobQueue {
    config: JobsConfig,
    announcer: Announcer,
}

/// Per-job overrides.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Jobs of one queue with the same key are enqueued once: a replayed request or event cannot
    /// queue its work twice (unique index on `(job_type, idempotency_key)`).
    pub idempotency_key: Option<String>,
    pub delay: Option<Duration>,
    pub max_attempts: Option<u32>,
    /// Higher runs first.
    pub priority: i32,
}

impl JobOptions {
    pub fn idempotency_key(key: impl Into<String>) -> Self {
        Self {
            idempotency_key: Some(key.into()),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    New(String),
    /// A job with this idempotency key was already queued: nothing was added.
    Duplicate,
}

/// A job's state as stored (apalis' statuses; `Killed` is what we call dead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JobStatus {
    Pending,
    Queued,
    Running,
    Done,
    Failed,
    Killed,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_result: Option<serde_json::Value>,
}

#[derive(FromQueryResult)]
struct JobRow {
    id: String,
    job_type: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    last_result: Option<serde_json::Value>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = DbErr;
    fn try_from(row: JobRow) -> Result<Self, DbErr> {
        let status = match row.status.as_str() {
            "Pending" => JobStatus::Pending,
            "Queued" => JobStatus::Queued,
            "Running" => JobStatus::Running,
            "Done" => JobStatus::Done,
            "Failed" => JobStatus::Failed,
            "Killed" => JobStatus::Killed,
            other => return Err(DbErr::Type(format!("unknown job status {other:?}"))),
        };
        Ok(Self {
            id: row.id,
            queue: row.job_type,
            status,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            last_result: row.last_result,
        })
    }
}

/// A job serialised for [`JobQueue::push_all`], which queues jobs of any kinds in one statement.
#[derive(Debug, Clone)]
pub struct NewJob {
    queue: &'static str,
    args: Vec<u8>,
    options: JobOptions,
}

impl NewJob {
    pub fn new<J: Job>(job: &J, options: JobOptions) -> Result<Self, DbErr> {
        let args = serde_json::to_vec(job).map_err(|e| DbErr::Json(e.to_string()))?;
        Ok(Self {
            queue: J::QUEUE,
            args,
            options,
        })
    }
}

const PARAMS_PER_JOB: usize = 11;

/// One job's row in the INSERT, its parameters numbered from `$first`. Written exactly as apalis
/// writes a job; the metadata carries the retry policy read by the database trigger, the request
/// id that enqueued the job (for its logs) and the W3C `traceparent` of the span that queued it (for
/// exported traces). hstore values must never be NULL (apalis unwraps).
fn insert_row(first: usize) -> String {
    let p: Vec<String> = (first..first + PARAMS_PER_JOB)
        .map(|n| format!("${n}"))
        .collect();
    format!(
        "({}, {}, {}, 'Pending', 0, {}, now() + {} * interval '1 millisecond', {}, \
          hstore(ARRAY['retry_base_ms', 'retry_max_ms', 'request_id', 'traceparent'], \
                 ARRAY[{}, {}, {}, {}]), {})",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]
    )
}

const SELECT: &str =
    "SELECT id, job_type, status, attempts, max_attempts, run_at, last_result FROM apalis.jobs";

impl JobQueue {
    /// Also starts the task that wakes the workers for new jobs (on `db`, the app's pool).
    pub fn new(config: JobsConfig, db: DatabaseConnection) -> Self {
        Self {
            config,
            announcer: Announcer::start(db),
        }
    }

    /// Runs `work` (one request, one job run), then wakes the workers for the jobs it queued: by
    /// then the transactions that queued them have ended. See [`announce`].
    pub async fn announce_after<F: Future>(&self, work: F) -> F::Output {
        self.announcer.after(work).await
    }

    /// Wakes the listeners of `channel` ([`Wakeups`](super::Wakeups)) in every process, after the
    /// caller's commit and outside its transaction (see [`announce`]).
    pub fn announce(&self, channel: &'static str) {
        self.announcer.channel(channel);
    }

    /// Enqueues `job` on `conn`, which may be an open transaction: the job then exists only if that
    /// transaction commits.
    pub async fn push<J: Job>(
        &self,
        conn: &impl ConnectionTrait,
        job: &J,
        options: JobOptions,
    ) -> Result<Enqueued, DbErr> {
        let mut new = self
            .push_all(conn, vec![NewJob::new(job, options)?])
            .await?;
        Ok(new.pop().map_or(Enqueued::Duplicate, Enqueued::New))
    }

    /// Enqueues `jobs` in one statement on `conn` (which may be an open transaction) and returns the
    /// ids of the new ones. `ON CONFLICT DO NOTHING` rather than apalis' plain insert: a job whose
    /// idempotency key is already queued is skipped without aborting the caller's transaction.
    pub async fn push_all(
        &self,
        conn: &impl ConnectionTrait,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<String>, DbErr> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let request_id = RequestId::current().map(|r| r.0).unwrap_or_default();
        let traceparent = crate::telemetry::traceparent().unwrap_or_default();
        let millis = |d: Duration| d.as_millis().to_string();
        let mut rows = Vec::with_capacity(jobs.len());
        let mut values: Vec<Value> = Vec::with_capacity(jobs.len() * PARAMS_PER_JOB);
        // A delayed job is not due yet, so not announced: the workers' poll finds it when it is.
        let mut due = HashMap::new();
        for job in jobs {
            let id = ulid::Ulid::generate().to_string();
            let delay = job.options.delay.unwrap_or_default();
            if delay.is_zero() {
                due.insert(id.clone(), job.queue);
            }
            rows.push(insert_row(values.len() + 1));
            values.extend([
                id.into(),
                job.queue.into(),
                job.args.into(),
                (job.options.max_attempts.unwrap_or(self.config.max_attempts) as i32).into(),
                (delay.as_millis() as i64).into(),
                job.options.priority.into(),
                millis(self.config.retry_base).into(),
                millis(self.config.retry_max).into(),
                request_id.clone().into(),
                traceparent.clone().into(),
                job.options.idempotency_key.into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO apalis.jobs \
                 (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) \
             VALUES {} ON CONFLICT (job_type, idempotency_key) DO NOTHING RETURNING id",
            rows.join(", ")
        );
        let inserted = conn
            .query_all_raw(db::stmt(&sql, values))
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut unannounced = announce::Queued::new();
        for id in &inserted {
            if let Some(queue) = due.get(id)
                && !announce::note(queue, id)
            {
                unannounced.insert(queue, id.clone());
            }
        }
        if !unannounced.is_empty() {
            conn.execute_raw(announce::notify(&unannounced)).await?;
        }
        Ok(inserted)
    }

    pub async fn find(conn: &impl ConnectionTrait, id: &str) -> Result<Option<JobRecord>, DbErr> {
        let sql = format!("{SELECT} WHERE id = $1");
        JobRow::find_by_statement(db::stmt(&sql, [id.into()]))
            .one(conn)
            .await?
            .map(JobRecord::try_from)
            .transpose()
    }
}

/// A dead job as operators see it: what it was asked to do, how often it ran, why it last failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01JDQ4M8K9X2V7T3N5R6P8W0YZ",
    "queue": "email",
    "args": {"to": "ada@example.com", "template": "receipt", "context": {}, "message_key": null},
    "attempts": 8,
    "max_attempts": 8,
    "last_error": "template receipt: not found",
    "failed_at": "2026-11-23T12:00:00Z"
}))]
pub struct DeadJob {
    pub id: String,
    pub queue: String,
    /// The job's arguments (its JSON payload).
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub failed_at: Option<DateTime<Utc>>,
}

#[derive(FromQueryResult)]
struct DeadRow {
    id: String,
    job_type: String,
    job: Vec<u8>,
    attempts: i32,
    max_attempts: i32,
    last_result: Option<serde_json::Value>,
    done_at: Option<DateTime<Utc>>,
}

impl From<DeadRow> for DeadJob {
    fn from(row: DeadRow) -> Self {
        // apalis stores a failure as `{"Err": "<message>"}`.
        let last_error = row.last_result.map(|r| match r.get("Err") {
            Some(serde_json::Value::String(message)) => message.clone(),
            _ => r.to_string(),
        });
        Self {
            id: row.id,
            queue: row.job_type,
            args: serde_json::from_slice(&row.job).unwrap_or(serde_json::Value::Null),
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            last_error,
            failed_at: row.done_at,
        }
    }
}

// Retrying makes a dead job new again: `Pending` with a fresh budget of attempts, due now, unlocked.
// The retry-policy trigger leaves it alone (it only acts on jobs leaving a worker). The job keeps its
// id, arguments and idempotency key; its last error stays in `last_result` until the next run
// overwrites it (callers also get it back, for the audit trail). `dead` carries the pre-update values
// out (RETURNING sees the new row), and the NOTIFY wakes idle workers as a new job would.
const RETRY_DEAD: &str = r#"
WITH dead AS (
    SELECT id, job_type, job, attempts, max_attempts, last_result, done_at FROM apalis.jobs
    WHERE status = 'Killed' AND ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR job_type = $2)
    ORDER BY done_at NULLS FIRST, id
    LIMIT $3
    FOR UPDATE
), retried AS (
    UPDATE apalis.jobs j SET status = 'Pending', attempts = 0, run_at = now(),
        lock_by = NULL, lock_at = NULL, done_at = NULL
    FROM dead WHERE j.id = dead.id
    RETURNING dead.*
)
SELECT retried.*, pg_notify('apalis::job::insert',
        json_build_object('job_type', job_type, 'id', id, 'run_at', now())::text)::text AS notified
FROM retried
"#;

impl JobQueue {
    /// Dead jobs with their arguments and last error, most recently dead first.
    pub async fn dead_jobs(
        conn: &impl ConnectionTrait,
        queue: Option<&str>,
        limit: u64,
    ) -> Result<Vec<DeadJob>, DbErr> {
        let rows = DeadRow::find_by_statement(db::stmt("SELECT id, job_type, job, attempts, max_attempts, last_result, done_at FROM apalis.jobs \
             WHERE status = 'Killed' AND ($1::text IS NULL OR job_type = $1) \
             ORDER BY done_at DESC NULLS LAST, id LIMIT $2",
            [queue.map(str::to_owned).into(), (limit as i64).into()],
        ))
        .all(conn)
        .await?;
        Ok(rows.into_iter().map(DeadJob::from).collect())
    }

    /// Retries dead jobs — the one with `id`, or up to `limit` of them (of `queue`, when given) — and
    /// returns them as they were when dead. A job that is not dead (any more) is not touched, so two
    /// operators retrying at once retry it once.
    pub async fn retry_dead(
        conn: &impl ConnectionTrait,
        id: Option<&str>,
        queue: Option<&str>,
        limit: u64,
    ) -> Result<Vec<DeadJob>, DbErr> {
        let rows = DeadRow::find_by_statement(db::stmt(
            RETRY_DEAD,
            [
                id.map(str::to_owned).into(),
                queue.map(str::to_owned).into(),
                (limit as i64).into(),
            ],
        ))
        .all(conn)
        .await?;
        Ok(rows.into_iter().map(DeadJob::from).collect())
    }
    /// Deletes jobs finished (`Done`) longer than `older_than` ago, with their idempotency keys (a
    /// key guards against queueing work twice while it can still happen; days after the work is
    /// done, its cause has long been settled by the state it left, e.g. the order's status). Dead
    /// jobs are kept: each is a failure an operator has yet to look at.
    pub async fn prune_done(
        conn: &impl ConnectionTrait,
        older_than: Duration,
    ) -> Result<u64, DbErr> {
        db::delete_in_batches(
            conn,
            "apalis.jobs",
            "status = 'Done' AND done_at < now() - make_interval(secs => $1)",
            vec![older_than.as_secs_f64().into()],
        )
        .await
    }
}
