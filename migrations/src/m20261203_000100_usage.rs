//! Usage budgets: the meters the product counts, what each plan includes, one counter row per
//! (org, meter, period), the reservations against it, members' caps and the overage reported to
//! Stripe.
//!
//! - `usage_meters`: a meter (`ai_tokens`, `api_calls`), what an org without a granting
//!   subscription may use per calendar `free_period`, and the Stripe billing meter its overage is
//!   reported to.
//! - `plan_meters`: what a plan includes per `period` (`billing`: the subscription's period;
//!   `day`: the calendar day) and its overage policy: `hard` refuses past it, `metered` allows and
//!   bills the excess.
//! - `usage_counters`: the period is part of the key, so a new period is a new row and needs no
//!   cron. `lim` is what reserves are held to (none for metered), `reserved` the sum of the
//!   reservations still holding. `last_grant` is scratch: what the row's last reserve granted, so
//!   one upsert can both decide and say what it decided. Half-full pages keep its updates HOT.
//! - `usage_reservations`: `held` is what a reservation still counts in its counter's `reserved`
//!   (its amount while open, 0 once settled); `freed` is scratch: what its last transition freed.
//!   `(org_id, meter, key)` is unique, so a retried request counts once.
//! - `usage_member_caps`: an admin's cap on one member's share of a meter, per period.
//! - `usage_meter_reports`: our ledger of the overage reported to Stripe. Each report covers
//!   `(from_total, through]` of a counter's overage and `from_total` is unique per counter, so two
//!   reporters can never cover the same units twice; `identifier` is what Stripe deduplicates on.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000100_usage"
    }
}

const UP: &str = r#"
CREATE TABLE usage_meters (
    key                text   PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_]{0,39}$'),
    name               text   NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    unit               text   NOT NULL,
    free_included      bigint NOT NULL DEFAULT 0 CHECK (free_included >= 0),
    free_period        text   NOT NULL DEFAULT 'month' CHECK (free_period IN ('day', 'month')),
    stripe_event_name  text
);

CREATE TABLE plan_meters (
    plan_key  text   NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    meter     text   NOT NULL REFERENCES usage_meters (key) ON DELETE CASCADE,
    included  bigint NOT NULL CHECK (included >= 0),
    period    text   NOT NULL CHECK (period IN ('billing', 'day')),
    overage   text   NOT NULL CHECK (overage IN ('hard', 'metered')),
    PRIMARY KEY (plan_key, meter)
);

CREATE TABLE usage_counters (
    org_id        uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    meter         text        NOT NULL REFERENCES usage_meters (key) ON DELETE CASCADE,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL CHECK (period_end > period_start),
    lim           bigint      CHECK (lim >= 0),
    included      bigint      NOT NULL CHECK (included >= 0),
    metered       boolean     NOT NULL,
    used          bigint      NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved      bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    last_grant    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, meter, period_start)
) WITH (fillfactor = 50);

CREATE INDEX usage_counters_metered ON usage_counters (period_end) WHERE metered;

CREATE TABLE usage_reservations (
    id            uuid        PRIMARY KEY,
    org_id        uuid        NOT NULL,
    meter         text        NOT NULL,
    period_start  timestamptz NOT NULL,
    member_id     uuid        REFERENCES users (id) ON DELETE SET NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    amount        bigint      NOT NULL CHECK (amount > 0),
    held          bigint      NOT NULL CHECK (held >= 0),
    freed         bigint      NOT NULL DEFAULT 0,
    actual        bigint      CHECK (actual >= 0),
    state         text        NOT NULL DEFAULT 'open'
                  CHECK (state IN ('open', 'committed', 'released', 'expired')),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    settled_at    timestamptz,
    FOREIGN KEY (org_id, meter, period_start)
        REFERENCES usage_counters (org_id, meter, period_start) ON DELETE CASCADE,
    UNIQUE (org_id, meter, key)
);

CREATE INDEX usage_reservations_open ON usage_reservations (org_id, meter, period_start, expires_at)
    WHERE state = 'open';
CREATE INDEX usage_reservations_member ON usage_reservations (org_id, meter, period_start, member_id)
    WHERE member_id IS NOT NULL;

CREATE TABLE usage_member_caps (
    org_id     uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    meter      text        NOT NULL REFERENCES usage_meters (key) ON DELETE CASCADE,
    member_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cap        bigint      NOT NULL CHECK (cap >= 0),
    set_by     uuid        REFERENCES users (id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, meter, member_id)
);

CREATE TABLE usage_meter_reports (
    identifier          text        PRIMARY KEY,
    org_id              uuid        NOT NULL,
    meter               text        NOT NULL,
    period_start        timestamptz NOT NULL,
    stripe_customer_id  text        NOT NULL,
    event_name          text        NOT NULL,
    from_total          bigint      NOT NULL CHECK (from_total >= 0),
    through             bigint      NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    reported_at         timestamptz,
    CHECK (through > from_total),
    FOREIGN KEY (org_id, meter, period_start)
        REFERENCES usage_counters (org_id, meter, period_start) ON DELETE CASCADE,
    UNIQUE (org_id, meter, period_start, from_total)
);

CREATE INDEX usage_meter_reports_pending ON usage_meter_reports (created_at)
    WHERE reported_at IS NULL;
"#;

const DOWN: &str = r#"
DROP TABLE usage_meter_reports;
DROP TABLE usage_member_caps;
DROP TABLE usage_reservations;
DROP TABLE usage_counters;
DROP TABLE plan_meters;
DROP TABLE usage_meters;
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
