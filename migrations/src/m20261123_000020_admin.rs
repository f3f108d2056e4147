//! Operator tools: webhook deliveries that failed (their transaction rolled back, so `stripe_events`
//! never saw them), an audit trail of what admins did, and `reconcile` as a source of order changes.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000020_admin"
    }
}

const UP: &str = r#"
-- Written outside the failed delivery's transaction. An event that later succeeds (a Stripe retry, an
-- operator's replay) lands in stripe_events; a failure with a stripe_events row is therefore resolved.
CREATE TABLE stripe_event_failures (
    event_id         text        PRIMARY KEY,
    event_type       text        NOT NULL,
    payload          jsonb       NOT NULL,
    error            text        NOT NULL,
    failures         integer     NOT NULL DEFAULT 1,
    first_failed_at  timestamptz NOT NULL DEFAULT now(),
    last_failed_at   timestamptz NOT NULL DEFAULT now()
);

-- What operators did through /api/v1/admin, with what they saw (e.g. a dead job's last error, which
-- its next run overwrites).
CREATE TABLE admin_actions (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    admin_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
    action      text        NOT NULL,
    target      text        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_actions_created ON admin_actions (created_at DESC);

ALTER TABLE order_events DROP CONSTRAINT order_events_source_check;
ALTER TABLE order_events ADD CONSTRAINT order_events_source_check
    CHECK (source IN ('stripe', 'job', 'api', 'reconcile'));

-- The stuck-order sweep reads only pending orders, oldest first.
CREATE INDEX orders_pending_payment ON orders (created_at) WHERE status = 'pending_payment';
"#;

const DOWN: &str = r#"
DROP INDEX orders_pending_payment;
ALTER TABLE order_events DROP CONSTRAINT order_events_source_check;
ALTER TABLE order_events ADD CONSTRAINT order_events_source_check
    CHECK (source IN ('stripe', 'job', 'api'));
DROP TABLE admin_actions;
DROP TABLE stripe_event_failures;
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
