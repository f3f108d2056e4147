//! Billing belongs to the organisation: orders and licences move from the user to the org.
//!
//! - `orders.org_id`: the organisation that buys (existing orders go to the buyer's personal org).
//!   Who placed the order is `placed_by` (a person; the old `user_id`) or `placed_by_key` (one of
//!   the org's API keys): exactly one of the two.
//! - A checkout key is unique per (org, principal): the same Idempotency-Key picked by two members,
//!   or by a member in two orgs, makes two orders; the same caller retrying finds theirs.
//! - `licenses.org_id` replaces `licenses.user_id`: a licence is the org's, whoever bought it.
//! - `org_billing`: the org's billing email (where receipts go), moved from `users.billing_email`
//!   to each account's personal org.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000080_org_billing"
    }
}

const UP: &str = r#"
ALTER TABLE orders RENAME COLUMN user_id TO placed_by;
ALTER TABLE orders ALTER COLUMN placed_by DROP NOT NULL;
ALTER TABLE orders ADD COLUMN placed_by_key uuid REFERENCES org_api_keys (id);
ALTER TABLE orders ADD COLUMN org_id uuid REFERENCES orgs (id);
UPDATE orders o SET org_id = g.id FROM orgs g WHERE g.personal_for = o.placed_by;
ALTER TABLE orders ALTER COLUMN org_id SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_placed_by_one
    CHECK ((placed_by IS NULL) <> (placed_by_key IS NULL));
ALTER TABLE orders DROP CONSTRAINT orders_user_id_checkout_key_key;
ALTER TABLE orders ADD CONSTRAINT orders_checkout_key
    UNIQUE NULLS NOT DISTINCT (org_id, checkout_key, placed_by, placed_by_key);
DROP INDEX orders_user;
CREATE INDEX orders_org ON orders (org_id, created_at DESC, id DESC);

ALTER TABLE licenses ADD COLUMN org_id uuid REFERENCES orgs (id);
UPDATE licenses l SET org_id = o.org_id FROM orders o WHERE o.id = l.order_id;
ALTER TABLE licenses ALTER COLUMN org_id SET NOT NULL;
ALTER TABLE licenses DROP COLUMN user_id;
CREATE INDEX licenses_org ON licenses (org_id, created_at DESC);

CREATE TABLE org_billing (
    org_id         uuid        PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    billing_email  text        NOT NULL CHECK (billing_email = lower(btrim(billing_email))),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO org_billing (org_id, billing_email)
    SELECT g.id, u.billing_email FROM users u JOIN orgs g ON g.personal_for = u.id
    WHERE u.billing_email IS NOT NULL;
ALTER TABLE users DROP COLUMN billing_email;
"#;

// Orders an API key placed go back to the key's creator; should one have none, `SET NOT NULL`
// fails and nothing is undone (the migration runs in one transaction).
const DOWN: &str = r#"
ALTER TABLE users ADD COLUMN billing_email text CHECK (billing_email = lower(btrim(billing_email)));
UPDATE users u SET billing_email = b.billing_email
    FROM org_billing b JOIN orgs g ON g.id = b.org_id WHERE g.personal_for = u.id;
DROP TABLE org_billing;

ALTER TABLE orders DROP CONSTRAINT orders_placed_by_one;
UPDATE orders o SET placed_by = k.created_by
    FROM org_api_keys k WHERE o.placed_by IS NULL AND k.id = o.placed_by_key;
ALTER TABLE orders ALTER COLUMN placed_by SET NOT NULL;
ALTER TABLE licenses ADD COLUMN user_id uuid REFERENCES users (id);
UPDATE licenses l SET user_id = o.placed_by FROM orders o WHERE o.id = l.order_id;
ALTER TABLE licenses ALTER COLUMN user_id SET NOT NULL;
DROP INDEX licenses_org;
ALTER TABLE licenses DROP COLUMN org_id;
CREATE INDEX licenses_user ON licenses (user_id, created_at DESC);

DROP INDEX orders_org;
ALTER TABLE orders DROP CONSTRAINT orders_checkout_key;
ALTER TABLE orders DROP COLUMN org_id;
ALTER TABLE orders DROP COLUMN placed_by_key;
ALTER TABLE orders RENAME COLUMN placed_by TO user_id;
ALTER TABLE orders ADD CONSTRAINT orders_user_id_checkout_key_key UNIQUE (user_id, checkout_key);
CREATE INDEX orders_user ON orders (user_id, created_at DESC);
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
