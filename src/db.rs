//! The one connection pool. sea-orm uses it for queries; apalis gets the same sqlx pool underneath, so
//! a business write and the jobs it enqueues can share a transaction.
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use secrecy::ExposeSecret;

use crate::config::DatabaseConfig;

pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(config.url.expose_secret().to_owned());
    options
        .max_connections(config.max_connections)
        .min_connections(1)
        .acquire_timeout(config.acquire_timeout)
        .connect_timeout(config.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        // A connection that sat idle may have been dropped (a restarted server, a proxy's timeout):
        // ping it before use. A busy one is not pinged: the default pings on every checkout, an
        // extra round trip per query or transaction.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false);
    Database::connect(options).await
}
