//! One row per email actually sent, keyed by its Message-ID key: the guard that keeps a re-run email
//! job (a worker presumed dead while still sending, a crash before the job was marked done) from
//! sending the same email twice.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000013_sent_emails"
    }
}

const UP: &str = r#"
CREATE TABLE sent_emails (
    message_key   text        PRIMARY KEY,
    -- While set in the future, one run is sending; others wait (and retry) instead of sending too.
    lease_until   timestamptz NOT NULL,
    sent_at       timestamptz
);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE sent_emails;")
            .await?;
        Ok(())
    }
}
