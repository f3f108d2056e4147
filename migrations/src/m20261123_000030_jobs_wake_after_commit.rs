//! Workers are woken after a transaction that queued jobs commits, not from inside it.
//!
//! apalis' schema wakes its listeners with a `pg_notify` from a row trigger on `apalis.jobs`. A
//! transaction that has called NOTIFY holds a database-wide lock from its commit until its commit
//! record is flushed to disk, so every transaction that queues a job commits one at a time: no
//! group commit. Measured on the 2-core bench machine with pgbench, single-row inserts with such a
//! trigger ran at 740/s, without it at 9,500/s — and every webhook queues jobs.
//!
//! The app announces queued jobs itself (`jobs::announce`): once the request or job that queued them
//! has finished, with a NOTIFY of its own that writes nothing and therefore holds the lock only for
//! an instant. The payload is the trigger's, so apalis' listeners read it unchanged. The workers'
//! poll still finds any job whose announcement was lost.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000030_jobs_wake_after_commit"
    }
}

const UP: &str = "DROP TRIGGER notify_workers ON apalis.jobs;";

// apalis' function is kept by `up`; `down` only re-attaches it.
const DOWN: &str = "CREATE TRIGGER notify_workers AFTER INSERT ON apalis.jobs \
                    FOR EACH ROW EXECUTE FUNCTION apalis.notify_new_jobs();";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
