//! The schema, as ordered migrations. `ironclad migrate up` applies them; tests apply them once to a
//! template database and clone it per test. Demo data is not here: `ironclad seed` adds it.
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_base;
mod m20261123_000002_jobs;
mod m20261123_000003_auth;
mod m20261123_000010_billing;
mod m20261123_000011_idempotency_keys;
mod m20261123_000012_demo_products;
mod m20261123_000013_sent_emails;
mod m20261123_000020_admin;
mod m20261123_000030_jobs_wake_after_commit;
mod m20261124_000040_orders_reconciled_at;
mod m20261124_000041_housekeeping_indexes;
mod m20261202_000050_security_hardening;
mod m20261202_000060_stripe_inbox;
mod m20261202_000070_orgs;
mod m20261202_000080_org_billing;
mod m20261203_000090_subscriptions;
mod m20261203_000100_usage;
mod m20261203_000110_order_traces;
mod m20261207_000120_paid_invoices;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_base::Migration),
            Box::new(m20261123_000002_jobs::Migration),
            Box::new(m20261123_000003_auth::Migration),
            Box::new(m20261123_000010_billing::Migration),
            Box::new(m20261123_000011_idempotency_keys::Migration),
            Box::new(m20261123_000012_demo_products::Migration),
            Box::new(m20261123_000013_sent_emails::Migration),
            Box::new(m20261123_000020_admin::Migration),
            Box::new(m20261123_000030_jobs_wake_after_commit::Migration),
            Box::new(m20261124_000040_orders_reconciled_at::Migration),
            Box::new(m20261124_000041_housekeeping_indexes::Migration),
            Box::new(m20261202_000050_security_hardening::Migration),
            Box::new(m20261202_000060_stripe_inbox::Migration),
            Box::new(m20261202_000070_orgs::Migration),
            Box::new(m20261202_000080_org_billing::Migration),
            Box::new(m20261203_000090_subscriptions::Migration),
            Box::new(m20261203_000100_usage::Migration),
            Box::new(m20261203_000110_order_traces::Migration),
            Box::new(m20261207_000120_paid_invoices::Migration),
            // ironclad-generate: migrations
        ]
    }
}

/// Drops everything the migrations made (the `public` schema's tables, functions and triggers, and
/// the job queue's `apalis` schema), then applies every migration: `ironclad migrate fresh`.
///
/// Not [`MigratorTrait::fresh`]: that drops tables and types only, so the functions our triggers
/// call survive and the first migration's `CREATE FUNCTION` fails; nor does it know `apalis`.
pub async fn fresh(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(
        "DROP SCHEMA IF EXISTS apalis CASCADE; \
         DROP SCHEMA IF EXISTS public CASCADE; \
         CREATE SCHEMA public; \
         GRANT USAGE ON SCHEMA public TO PUBLIC;",
    )
    .await?;
    Migrator::up(db, None).await
}
