//! Security hardening of the auth layer, and the webhook payloads kept as Stripe sent them.
//!
//! - `mfa_challenges.failed_attempts` becomes `attempts`: a code is counted *before* it is checked,
//!   in the same statement that refuses a sixth, so concurrent guesses cannot slip past the limit.
//! - A pending authenticator remembers the session that started it (after proving the password):
//!   only that session may confirm it.
//! - Stripe event payloads are stored as `text`: `jsonb` refuses a `\u0000` escape, which JSON
//!   allows and Stripe may send, and the event would fail on every retry.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000050_security_hardening"
    }
}

const UP: &str = r#"
ALTER TABLE mfa_challenges RENAME COLUMN failed_attempts TO attempts;

-- The session that started a pending enrolment (NULL once confirmed, and for older rows).
ALTER TABLE user_totp ADD COLUMN started_by_session uuid REFERENCES sessions (id) ON DELETE SET NULL;

ALTER TABLE stripe_events ALTER COLUMN payload TYPE text USING payload::text;
ALTER TABLE stripe_event_failures ALTER COLUMN payload TYPE text USING payload::text;
"#;

const DOWN: &str = r#"
ALTER TABLE stripe_event_failures ALTER COLUMN payload TYPE jsonb USING payload::jsonb;
ALTER TABLE stripe_events ALTER COLUMN payload TYPE jsonb USING payload::jsonb;
ALTER TABLE user_totp DROP COLUMN started_by_session;
ALTER TABLE mfa_challenges RENAME COLUMN attempts TO failed_attempts;
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
