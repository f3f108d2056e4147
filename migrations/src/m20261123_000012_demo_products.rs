//! Demo catalogue rows, so a fresh clone can run a checkout end to end. Fixed ids: docs and tests can
//! name them. Replace with your own products (a later migration, or the admin tool you build).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000012_demo_products"
    }
}

const UP: &str = r#"
INSERT INTO products (id, slug, name, description, seats) VALUES
    ('0193a4c0-0000-7000-8000-000000000001', 'ironclad-pro', 'Ironclad Pro',
     'Perpetual licence for one developer, with a year of updates.', 1),
    ('0193a4c0-0000-7000-8000-000000000002', 'ironclad-team', 'Ironclad Team',
     'Perpetual licence for a team of five developers, with a year of updates.', 5),
    ('0193a4c0-0000-7000-8000-000000000003', 'ironclad-support', 'Priority support',
     'One year of priority email support.', 1);

INSERT INTO prices (product_id, currency, unit_amount) VALUES
    ('0193a4c0-0000-7000-8000-000000000001', 'usd', 4900),
    ('0193a4c0-0000-7000-8000-000000000001', 'eur', 4500),
    ('0193a4c0-0000-7000-8000-000000000002', 'usd', 19900),
    ('0193a4c0-0000-7000-8000-000000000002', 'eur', 18500),
    ('0193a4c0-0000-7000-8000-000000000003', 'usd', 9900);
"#;

const DOWN: &str = r#"
DELETE FROM products WHERE id IN (
    '0193a4c0-0000-7000-8000-000000000001',
    '0193a4c0-0000-7000-8000-000000000002',
    '0193a4c0-0000-7000-8000-000000000003');
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
