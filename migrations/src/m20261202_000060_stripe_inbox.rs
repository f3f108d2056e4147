//! Stripe events become an inbox: the webhook stores a verified event and answers; processors apply
//! it later (`billing/processor.rs`).
//!
//! - `stripe_events` gains the processing state: `status` (`pending` → `processing` → `processed`,
//!   or `dead` once out of attempts), the claim (`claimed_by`, `claimed_until`), `attempts`,
//!   `last_error`, `next_attempt_at` (backoff), `processed_at`, and the object the event is about
//!   (`object_type`, `object_id`: at most one event per object is in flight). `outcome` is set when
//!   the event is processed.
//! - `stripe_event_failures` folds in: a delivery that failed under the old design was never stored;
//!   it becomes a pending event (with its failures as attempts and its last error), so the processor
//!   applies it — Stripe's own retry of it is then a duplicate.
//! - Rows already here were processed in their delivery's transaction.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000060_stripe_inbox"
    }
}

const UP: &str = r#"
ALTER TABLE stripe_events
    ADD COLUMN status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'processed', 'dead')),
    ADD COLUMN object_type text,
    ADD COLUMN object_id text,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_by text,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN processed_at timestamptz,
    ALTER COLUMN outcome DROP NOT NULL;

UPDATE stripe_events SET status = 'processed', processed_at = received_at, next_attempt_at = received_at;

ALTER TABLE stripe_events
    ADD CONSTRAINT stripe_events_processed_has_outcome
        CHECK ((status = 'processed') = (outcome IS NOT NULL)),
    ADD CONSTRAINT stripe_events_processing_is_claimed
        CHECK ((status = 'processing') = (claimed_by IS NOT NULL AND claimed_until IS NOT NULL));

INSERT INTO stripe_events (event_id, event_type, livemode, stripe_created, payload, status,
                           attempts, last_error, received_at)
SELECT event_id, event_type, false, first_failed_at, payload, 'pending', failures, error, first_failed_at
FROM stripe_event_failures
ON CONFLICT (event_id) DO NOTHING;

DROP TABLE stripe_event_failures;

-- What a claim scans: due events, oldest first.
CREATE INDEX stripe_events_due ON stripe_events (stripe_created, event_id)
    WHERE status = 'pending';
-- In-flight events: the objects already in flight (a claim skips them) and claims that expired.
CREATE INDEX stripe_events_in_flight ON stripe_events (object_id)
    WHERE status = 'processing';
CREATE INDEX stripe_events_claims ON stripe_events (claimed_until)
    WHERE status = 'processing';
-- The admin review: events not processed (yet) and those processed with an outcome to look at.
DROP INDEX stripe_events_review;
CREATE INDEX stripe_events_review ON stripe_events (received_at)
    WHERE status <> 'processed' OR outcome IN ('unknown_order', 'unhandled_type', 'rejected');
"#;

const DOWN: &str = r#"
CREATE TABLE stripe_event_failures (
    event_id         text        PRIMARY KEY,
    event_type       text        NOT NULL,
    payload          text        NOT NULL,
    error            text        NOT NULL,
    failures         integer     NOT NULL DEFAULT 1,
    first_failed_at  timestamptz NOT NULL DEFAULT now(),
    last_failed_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO stripe_event_failures (event_id, event_type, payload, error, failures, first_failed_at)
SELECT event_id, event_type, payload, coalesce(last_error, 'not processed yet'), greatest(attempts, 1),
       received_at
FROM stripe_events WHERE status <> 'processed';
DELETE FROM stripe_events WHERE status <> 'processed';

DROP INDEX stripe_events_review;
CREATE INDEX stripe_events_review ON stripe_events (received_at)
    WHERE outcome IN ('rejected', 'unknown_order');
DROP INDEX stripe_events_claims;
DROP INDEX stripe_events_in_flight;
DROP INDEX stripe_events_due;
ALTER TABLE stripe_events
    DROP CONSTRAINT stripe_events_processing_is_claimed,
    DROP CONSTRAINT stripe_events_processed_has_outcome,
    ALTER COLUMN outcome SET NOT NULL,
    DROP COLUMN processed_at,
    DROP COLUMN claimed_until,
    DROP COLUMN claimed_by,
    DROP COLUMN next_attempt_at,
    DROP COLUMN last_error,
    DROP COLUMN attempts,
    DROP COLUMN object_id,
    DROP COLUMN object_type,
    DROP COLUMN status;
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
