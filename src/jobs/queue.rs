//! Enqueueing and inspecting jobs with our own SQL, so it can run inside a caller's transaction
//! (apalis' own `push_tasks` is private and opens its own). Rows are written exactly as apalis
//! writes them: same table, JSON codec, `job_type` = queue name, ULID ids.
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use serde::Serialize;

use super::Job;
use crate::{config::JobsConfig, http::RequestId};

/// Enqueues jobs with the retry policy from config.
#[derive(Debug, Clone)]
pub struct JobQueue {
    config: JobsConfig,
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

// `ON CONFLICT DO NOTHING` rather than apalis' plain insert: a duplicate key must not abort the
// caller's transaction. Metadata carries the retry policy read by the database trigger and the
// request id that enqueued the job (for tracing); hstore values must never be NULL (apalis unwraps).
const INSERT: &str = r#"
INSERT INTO apalis.jobs
    (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key)
VALUES
    ($1, $2, $3, 'Pending', 0, $4, now() + $5 * interval '1 millisecond', $6,
     hstore(ARRAY['retry_base_ms', 'retry_max_ms', 'request_id'], ARRAY[$7, $8, $9]), $10)
ON CONFLICT (job_type, idempotency_key) DO NOTHING
RETURNING id
"#;

const SELECT: &str =
    "SELECT id, job_type, status, attempts, max_attempts, run_at, last_result FROM apalis.jobs";

impl JobQueue {
    pub fn new(config: JobsConfig) -> Self {
        Self { config }
    }

    /// Enqueues `job` on `conn`, which may be an open transaction: the job then exists only if that
    /// transaction commits.
    pub async fn push<J: Job>(
        &self,
        conn: &impl ConnectionTrait,
        job: &J,
        options: JobOptions,
    ) -> Result<Enqueued, DbErr> {
        let args = serde_json::to_vec(job).map_err(|e| DbErr::Json(e.to_string()))?;
        let id = ulid::Ulid::generate().to_string();
        let millis = |d: Duration| d.as_millis().to_string();
        let request_id = RequestId::current().map(|r| r.0).unwrap_or_default();
        let values: Vec<Value> = vec![
            id.into(),
            J::QUEUE.into(),
            args.into(),
            (options.max_attempts.unwrap_or(self.config.max_attempts) as i32).into(),
            (options.delay.unwrap_or_default().as_millis() as i64).into(),
            options.priority.into(),
            millis(self.config.retry_base).into(),
            millis(self.config.retry_max).into(),
            request_id.into(),
            options.idempotency_key.into(),
        ];
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                INSERT,
                values,
            ))
            .await?;
        match row {
            Some(row) => Ok(Enqueued::New(row.try_get("", "id")?)),
            None => Ok(Enqueued::Duplicate),
        }
    }

    pub async fn find(conn: &impl ConnectionTrait, id: &str) -> Result<Option<JobRecord>, DbErr> {
        let sql = format!("{SELECT} WHERE id = $1");
        JobRow::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [id.into()],
        ))
        .one(conn)
        .await?
        .map(JobRecord::try_from)
        .transpose()
    }

    /// Jobs that ran out of attempts, newest first.
    pub async fn dead(conn: &impl ConnectionTrait, limit: u64) -> Result<Vec<JobRecord>, DbErr> {
        let sql =
            format!("{SELECT} WHERE status = 'Killed' ORDER BY done_at DESC NULLS LAST LIMIT $1");
        JobRow::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [(limit as i64).into()],
        ))
        .all(conn)
        .await?
        .into_iter()
        .map(JobRecord::try_from)
        .collect()
    }
}
