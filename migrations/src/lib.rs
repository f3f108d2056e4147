//! The schema, as ordered migrations. `ironclad migrate up` applies them; tests apply them once to a
//! template database and clone it per test.
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_base;
mod m20261123_000002_jobs;
mod m20261123_000003_auth;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_base::Migration),
            Box::new(m20261123_000002_jobs::Migration),
            Box::new(m20261123_000003_auth::Migration),
        ]
    }
}
