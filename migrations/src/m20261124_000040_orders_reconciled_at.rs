//! Reconciliation visits the stuck orders least recently checked first, so none is starved.
//!
//! A sweep takes at most 100 stuck orders. Oldest first, an order that legitimately stays stuck — a
//! bank debit `payment_processing` for days, a session still open, a sessionless order — came back
//! at the head of every sweep, and enough of them would keep newer orders from ever being reached.
//! `reconciled_at` records when reconciliation last took an order up; ordering by it (never checked:
//! by age) makes the sweep a round robin.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000040_orders_reconciled_at"
    }
}

const UP: &str = r#"
-- When reconciliation last took the order up (set before asking Stripe, whatever came of it).
ALTER TABLE orders ADD COLUMN reconciled_at timestamptz;

-- The sweep reads only orders awaiting payment, least recently checked first: this index holds just
-- those and in that order, so the query stops after LIMIT rows however many orders exist. It
-- replaces orders_pending_payment, which only the sweep used.
CREATE INDEX orders_awaiting_payment ON orders ((coalesce(reconciled_at, created_at)), id)
    WHERE status IN ('pending_payment', 'payment_processing');
DROP INDEX orders_pending_payment;
"#;

const DOWN: &str = r#"
CREATE INDEX orders_pending_payment ON orders (created_at) WHERE status = 'pending_payment';
DROP INDEX orders_awaiting_payment;
ALTER TABLE orders DROP COLUMN reconciled_at;
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
