//! The shared base: `updated_at` bookkeeping and the users table every layer hangs off.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000001_base"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
-- Any table with an updated_at column gets it maintained by the database, so no code path can forget.
CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TABLE users (
    id                 uuid        PRIMARY KEY,
    -- Stored normalised (trimmed, lower-case): one account per mailbox, whatever the casing typed.
    email              text        NOT NULL UNIQUE CHECK (email = lower(btrim(email))),
    password_hash      text        NOT NULL,
    role               text        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE users; DROP FUNCTION set_updated_at();")
            .await?;
        Ok(())
    }
}
