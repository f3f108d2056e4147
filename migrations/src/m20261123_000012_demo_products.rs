//! Once the demo catalogue's rows; now a no-op. Demo data is not schema: `ironclad seed` adds it
//! (idempotently, never in production), and `just dev`, the test template and the bench run the
//! same seed. The migration keeps its name so databases that applied it stay in step; those keep
//! the rows it inserted then.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000012_demo_products"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
