//! Indexes housekeeping (`src/housekeeping.rs`) deletes by, so each of its batches reads only the
//! rows it deletes instead of scanning the table: finished jobs by when they finished, sessions by
//! when they expire.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000041_housekeeping_indexes"
    }
}

const UP: &str = r#"
CREATE INDEX ironclad_jobs_done ON apalis.jobs (done_at) WHERE status = 'Done';
CREATE INDEX sessions_expiry ON sessions (expires_at);
"#;

const DOWN: &str = r#"
DROP INDEX sessions_expiry;
DROP INDEX apalis.ironclad_jobs_done;
"#;

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
