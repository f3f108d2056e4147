//! `paid_invoices`: every subscription invoice whose `invoice.paid` we applied. The dunning ledger
//! asks it whether a failed (or SCA-blocked) invoice is paid already — by the invoice, not by the
//! period it covers: a mid-period proration invoice ends where the paid renewal does, and judging
//! it by its period end hid its failure (no email, no dunning, features lost at the grace's end).
//! Filled from the dunning ledger's paid invoices, the only ones known before this table.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000120_paid_invoices"
    }
}

const UP: &str = "
CREATE TABLE paid_invoices (
    invoice_id             text        PRIMARY KEY,
    stripe_subscription_id text        NOT NULL,
    paid_at                timestamptz NOT NULL DEFAULT now()
);
INSERT INTO paid_invoices (invoice_id, stripe_subscription_id, paid_at)
    SELECT invoice_id, stripe_subscription_id, coalesce(paid_at, now())
    FROM dunning_invoices WHERE status = 'paid';
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = "DROP TABLE paid_invoices";
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }
}
