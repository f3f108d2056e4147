//! The W3C `traceparent` of the request that placed each order, when traces are exported: Stripe's
//! deliveries carry none, so the events about an order continue the trace it was placed in.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000110_order_traces"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = "ALTER TABLE orders ADD COLUMN traceparent text";
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = "ALTER TABLE orders DROP COLUMN traceparent";
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }
}
