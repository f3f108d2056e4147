//! Billing: the catalogue, orders and their lines, licences, and the two logs that make Stripe's
//! at-least-once webhooks effectively-once (`stripe_events`) and every order change auditable
//! (`order_events`).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000010_billing"
    }
}

const UP: &str = r#"
CREATE TABLE products (
    id           uuid        PRIMARY KEY,
    slug         text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    name         text        NOT NULL CHECK (btrim(name) <> ''),
    description  text        NOT NULL DEFAULT '',
    -- Seats each licence of this product grants per unit bought.
    seats        integer     NOT NULL DEFAULT 1 CHECK (seats > 0),
    active       boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER products_set_updated_at BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One price per product and currency; BILLING_CURRENCY picks which one is sold.
CREATE TABLE prices (
    product_id   uuid    NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    currency     text    NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    -- In the currency's smallest unit (cents), as Stripe counts.
    unit_amount  bigint  NOT NULL CHECK (unit_amount > 0),
    PRIMARY KEY (product_id, currency)
);

CREATE TABLE orders (
    id                          uuid        PRIMARY KEY,
    user_id                     uuid        NOT NULL REFERENCES users (id),
    -- The Idempotency-Key the order was created with: a retried checkout finds its order again even
    -- after the stored HTTP response expired or was never saved (crash after commit).
    checkout_key                text        NOT NULL,
    status                      text        NOT NULL DEFAULT 'pending_payment' CHECK (status IN (
        'pending_payment', 'payment_processing', 'paid', 'fulfilled',
        'payment_failed', 'expired', 'canceled', 'refunded', 'disputed')),
    currency                    text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    amount_total                bigint      NOT NULL CHECK (amount_total > 0),
    stripe_checkout_session_id  text        UNIQUE,
    checkout_url                text,
    stripe_payment_intent_id    text        UNIQUE,
    paid_at                     timestamptz,
    fulfilled_at                timestamptz,
    closed_at                   timestamptz,
    receipt_sent_at             timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, checkout_key)
);
CREATE INDEX orders_user ON orders (user_id, created_at DESC);
CREATE TRIGGER orders_set_updated_at BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Prices are copied at checkout: a later catalogue change never rewrites what a customer bought.
CREATE TABLE order_lines (
    id            uuid    PRIMARY KEY,
    order_id      uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id    uuid    NOT NULL REFERENCES products (id),
    product_name  text    NOT NULL,
    unit_amount   bigint  NOT NULL CHECK (unit_amount > 0),
    quantity      integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    seats         integer NOT NULL CHECK (seats > 0),
    UNIQUE (order_id, product_id)
);

CREATE TABLE licenses (
    id             uuid        PRIMARY KEY,
    -- One licence per order line, enforced here: a re-run of the delivery job cannot mint a second.
    order_line_id  uuid        NOT NULL UNIQUE REFERENCES order_lines (id),
    order_id       uuid        NOT NULL REFERENCES orders (id),
    user_id        uuid        NOT NULL REFERENCES users (id),
    product_id     uuid        NOT NULL REFERENCES products (id),
    license_key    text        NOT NULL UNIQUE,
    seats          integer     NOT NULL CHECK (seats > 0),
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'revoked')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX licenses_user ON licenses (user_id, created_at DESC);
CREATE INDEX licenses_order ON licenses (order_id);
CREATE TRIGGER licenses_set_updated_at BEFORE UPDATE ON licenses
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Every verified Stripe event, once. The primary key on Stripe's event id is the gate that turns
-- retries and concurrent duplicate deliveries into no-ops: the second INSERT waits for the first
-- transaction and then conflicts. Stripe event ids are unique across types, so the id alone is a
-- stricter key than (id, type). Events we do not act on are kept too, for review.
CREATE TABLE stripe_events (
    event_id        text        PRIMARY KEY,
    event_type      text        NOT NULL,
    livemode        boolean     NOT NULL,
    api_version     text,
    stripe_created  timestamptz NOT NULL,
    payload         jsonb       NOT NULL,
    order_id        uuid        REFERENCES orders (id),
    outcome         text        NOT NULL CHECK (outcome IN (
        'applied', 'ignored', 'rejected', 'unhandled_type', 'unknown_order')),
    detail          text,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_review ON stripe_events (received_at)
    WHERE outcome IN ('rejected', 'unknown_order');
CREATE INDEX stripe_events_order ON stripe_events (order_id);

-- The audit trail: every event applied to an order, and every one ignored or rejected, with why.
CREATE TABLE order_events (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- 'stripe' (a webhook), 'job' (our own workers) or 'api' (a customer request).
    source           text        NOT NULL CHECK (source IN ('stripe', 'job', 'api')),
    stripe_event_id  text        REFERENCES stripe_events (event_id),
    event            text        NOT NULL,
    from_status      text,          -- NULL for the order's creation
    to_status        text,
    outcome          text        NOT NULL CHECK (outcome IN ('applied', 'ignored', 'rejected')),
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'applied') = (to_status IS NOT NULL))
);
CREATE INDEX order_events_order ON order_events (order_id, id);
-- Forward-only means an order enters each state at most once; the database holds us to it, so even a
-- bug in the state machine cannot record a second `paid`.
CREATE UNIQUE INDEX order_events_enter_state_once ON order_events (order_id, to_status)
    WHERE outcome = 'applied';
"#;

const DOWN: &str = r#"
DROP TABLE order_events;
DROP TABLE stripe_events;
DROP TABLE licenses;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE prices;
DROP TABLE products;
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
