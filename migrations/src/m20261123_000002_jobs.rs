//! The job queue: apalis-postgres' own schema (`apalis.*`), plus the retry policy it lacks.
//!
//! apalis-postgres 1.0 re-fetches a failed job at once (it stores no backoff) and re-enqueues the jobs
//! of a dead worker with `attempts + 1` but no cap, so a job that crashes its worker would loop forever.
//! A trigger closes both gaps where every code path (apalis' acks, its orphan reaper, our admin tools)
//! has to pass: the database.
use sea_orm::DatabaseExecutor;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000002_jobs"
    }
}

const RETRY_POLICY: &str = r#"
-- Runs when a job leaves a worker's hands (Queued/Running -> something else).
--   Failed with attempts left  -> stays Failed, run_at pushed back exponentially (with jitter);
--   Failed with none left      -> Killed: dead, kept for inspection and a manual retry;
--   re-enqueued (Pending) by the orphan reaper with none left -> Killed as well.
-- Per-job tuning rides in the job's metadata: retry_base_ms (default 1000), retry_max_ms (default 1h).
CREATE FUNCTION apalis.ironclad_retry_policy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    base_ms  double precision := coalesce((NEW.metadata -> 'retry_base_ms')::double precision, 1000);
    max_ms   double precision := coalesce((NEW.metadata -> 'retry_max_ms')::double precision, 3600000);
    delay_ms double precision;
BEGIN
    IF OLD.status NOT IN ('Queued', 'Running') THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'Failed' THEN
        IF NEW.attempts >= NEW.max_attempts THEN
            NEW.status := 'Killed';
        ELSE
            delay_ms := least(base_ms * power(2, greatest(NEW.attempts - 1, 0)), max_ms);
            NEW.run_at := now() + (delay_ms * (0.75 + random() * 0.5)) * interval '1 millisecond';
        END IF;
    ELSIF NEW.status = 'Pending' AND NEW.attempts >= NEW.max_attempts THEN
        NEW.status := 'Killed';
        NEW.done_at := now();
        NEW.last_result := jsonb_build_object(
            'Err', format('gave up after %s attempts: the worker running it was lost each time', NEW.attempts));
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ironclad_retry_policy BEFORE UPDATE OF status ON apalis.jobs
    FOR EACH ROW EXECUTE FUNCTION apalis.ironclad_retry_policy();

-- Dead jobs are listed by operators; keep that cheap however large the queue grows.
CREATE INDEX ironclad_jobs_dead ON apalis.jobs (job_type, done_at) WHERE status = 'Killed';
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // apalis ships its schema as sqlx migrations (tracked in apalis._sqlx_migrations); run them on the
        // same database. A later apalis-postgres release with new migrations gets its own migration here
        // calling `setup` again.
        let DatabaseExecutor::Connection(conn) = manager.get_connection() else {
            return Err(DbErr::Migration(
                "the jobs migration must run outside a transaction".into(),
            ));
        };
        apalis_postgres::PostgresStorage::setup(conn.get_postgres_connection_pool())
            .await
            .map_err(|e| DbErr::Migration(format!("apalis-postgres setup: {e}")))?;
        conn.execute_unprepared(RETRY_POLICY).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP SCHEMA apalis CASCADE;")
            .await?;
        Ok(())
    }

    // apalis' setup runs its own migrations on the pool: it cannot join a sea-orm transaction.
    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }
}
