//! Recurring billing: the plan catalogue (its demo plans come from `ironclad seed`), each org's
//! Stripe customer, our copy of each Stripe subscription, and the subscription Checkout Sessions.
//!
//! - `plans` / `plan_prices`: a plan grants `features` (entitlement keys) up to `max_seats`; it
//!   has one Stripe price per interval, charged per seat.
//! - `stripe_customers`: one Stripe customer per org, made once (idempotently) at its first
//!   subscription checkout.
//! - `subscriptions`: our copy, one row per Stripe subscription (unique). `read_started_at` is when
//!   the Stripe read behind the copy began: a read that began earlier is dropped, so an old read
//!   never overwrites a newer one. `status_since` is when the status last changed (the past-due
//!   grace counts from it). `paid_through` is the period end of the last paid invoice.
//! - `subscription_checkouts`: at most one open (or being created) per org, by a partial unique
//!   index; a new checkout first expires the previous session.
//! - `dunning_invoices`: invoices whose payment failed, until paid (revenue recovery).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000090_subscriptions"
    }
}

const UP: &str = r#"
CREATE TABLE plans (
    key          text        PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description  text        NOT NULL DEFAULT '',
    trial_days   integer     NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 730),
    features     text[]      NOT NULL DEFAULT '{}',
    max_seats    integer     CHECK (max_seats > 0),
    sort_order   integer     NOT NULL DEFAULT 0,
    active       boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plan_prices (
    plan_key         text   NOT NULL REFERENCES plans (key) ON DELETE CASCADE,
    interval         text   NOT NULL CHECK (interval IN ('month', 'year')),
    stripe_price_id  text   NOT NULL UNIQUE,
    -- Per seat, in the currency's smallest unit.
    unit_amount      bigint NOT NULL CHECK (unit_amount >= 0),
    currency         text   NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    PRIMARY KEY (plan_key, interval)
);

CREATE TABLE stripe_customers (
    org_id              uuid        PRIMARY KEY REFERENCES orgs (id),
    stripe_customer_id  text        NOT NULL UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id                      uuid        PRIMARY KEY,
    org_id                  uuid        NOT NULL REFERENCES orgs (id),
    stripe_subscription_id  text        NOT NULL UNIQUE,
    stripe_customer_id      text        NOT NULL,
    -- NULL when the price is not one of our plans' (made in the Dashboard, say): no features.
    plan_key                text        REFERENCES plans (key),
    interval                text        CHECK (interval IN ('month', 'year')),
    stripe_price_id         text,
    status                  text        NOT NULL CHECK (status IN ('incomplete',
                                'incomplete_expired', 'trialing', 'active', 'past_due',
                                'canceled', 'unpaid', 'paused')),
    status_since            timestamptz NOT NULL,
    quantity                integer     NOT NULL CHECK (quantity >= 0),
    current_period_start    timestamptz,
    current_period_end      timestamptz,
    cancel_at_period_end    boolean     NOT NULL DEFAULT false,
    cancel_at               timestamptz,
    canceled_at             timestamptz,
    ended_at                timestamptz,
    trial_end               timestamptz,
    latest_invoice_id       text,
    -- The invoice waiting for the customer to authenticate (SCA), until it is paid.
    action_required_invoice text,
    paid_through            timestamptz,
    read_started_at         timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_org ON subscriptions (org_id, created_at DESC);
-- The reconciliation sweep: live subscriptions whose period ended without a paid invoice.
CREATE INDEX subscriptions_period_end ON subscriptions (current_period_end)
    WHERE status NOT IN ('canceled', 'incomplete_expired');
CREATE TRIGGER subscriptions_set_updated_at BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE subscription_checkouts (
    id                uuid        PRIMARY KEY,
    org_id            uuid        NOT NULL REFERENCES orgs (id),
    plan_key          text        NOT NULL REFERENCES plans (key),
    interval          text        NOT NULL CHECK (interval IN ('month', 'year')),
    seats             integer     NOT NULL CHECK (seats > 0),
    started_by        uuid        REFERENCES users (id) ON DELETE SET NULL,
    started_by_key    uuid        REFERENCES org_api_keys (id) ON DELETE SET NULL,
    status            text        NOT NULL DEFAULT 'creating'
                          CHECK (status IN ('creating', 'open', 'completed', 'expired')),
    stripe_session_id text        UNIQUE,
    checkout_url      text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX subscription_checkouts_one_open ON subscription_checkouts (org_id)
    WHERE status IN ('creating', 'open');
CREATE TRIGGER subscription_checkouts_set_updated_at BEFORE UPDATE ON subscription_checkouts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Invoices whose payment failed (dunning), and what became of them: the revenue-recovery view.
CREATE TABLE dunning_invoices (
    invoice_id              text        PRIMARY KEY,
    stripe_subscription_id  text        NOT NULL,
    org_id                  uuid        NOT NULL REFERENCES orgs (id),
    amount_due              bigint      NOT NULL,
    currency                text        NOT NULL,
    attempt_count           integer     NOT NULL DEFAULT 0,
    status                  text        NOT NULL CHECK (status IN ('failed', 'action_required', 'paid')),
    first_failed_at         timestamptz NOT NULL DEFAULT now(),
    paid_at                 timestamptz,
    amount_paid             bigint      NOT NULL DEFAULT 0
);
CREATE INDEX dunning_invoices_open ON dunning_invoices (first_failed_at) WHERE status <> 'paid';
CREATE INDEX dunning_invoices_paid ON dunning_invoices (paid_at) WHERE status = 'paid';

-- Subscription and invoice events of a customer that is no org of ours are kept for review.
ALTER TABLE stripe_events DROP CONSTRAINT stripe_events_outcome_check,
    ADD CONSTRAINT stripe_events_outcome_check CHECK (outcome IN ('applied', 'ignored',
        'rejected', 'unhandled_type', 'unknown_order', 'unknown_customer'));
DROP INDEX stripe_events_review;
CREATE INDEX stripe_events_review ON stripe_events (received_at)
    WHERE status <> 'processed'
       OR outcome IN ('unknown_order', 'unknown_customer', 'unhandled_type', 'rejected');
"#;

const DOWN: &str = r#"
UPDATE stripe_events SET outcome = 'unknown_order' WHERE outcome = 'unknown_customer';
ALTER TABLE stripe_events DROP CONSTRAINT stripe_events_outcome_check,
    ADD CONSTRAINT stripe_events_outcome_check CHECK (outcome IN ('applied', 'ignored',
        'rejected', 'unhandled_type', 'unknown_order'));
DROP INDEX stripe_events_review;
CREATE INDEX stripe_events_review ON stripe_events (received_at)
    WHERE status <> 'processed' OR outcome IN ('unknown_order', 'unhandled_type', 'rejected');
DROP TABLE dunning_invoices;
DROP TABLE subscription_checkouts;
DROP TABLE subscriptions;
DROP TABLE stripe_customers;
DROP TABLE plan_prices;
DROP TABLE plans;
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
