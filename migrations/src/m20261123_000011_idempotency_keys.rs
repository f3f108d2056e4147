//! Stored responses for the `Idempotency-Key` middleware (`src/http/idempotency.rs`).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000011_idempotency_keys"
    }
}

const UP: &str = r#"
CREATE TABLE idempotency_keys (
    -- Whose key it is ("user:<uuid>"): two clients may pick the same key without colliding.
    scope             text        NOT NULL,
    key               text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of method, path, query and body: the same key with another request is a 422.
    fingerprint       bytea       NOT NULL,
    -- Who is running the request, and until when: a claim whose holder died (lease passed) can be
    -- taken over; a live one answers 409.
    owner             uuid        NOT NULL,
    locked_until      timestamptz NOT NULL,
    -- NULL while in flight.
    response_status   smallint,
    response_headers  jsonb,
    response_body     bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
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
            .execute_unprepared("DROP TABLE idempotency_keys;")
            .await?;
        Ok(())
    }
}
