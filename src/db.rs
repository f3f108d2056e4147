//! The one connection pool. sea-orm uses it for queries; apalis gets the same sqlx pool underneath, so
//! a business write and the jobs it enqueues can share a transaction.
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
    Value,
};
use secrecy::ExposeSecret;

use crate::config::DatabaseConfig;

/// A raw Postgres statement with positional (`$1`, `$2`, …) parameters: the one way this code base
/// writes SQL by hand (the rules that matter — single use, compare-and-set, `SKIP LOCKED` — are
/// clearest as explicit statements).
pub fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

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

/// Rows deleted per statement by [`delete_in_batches`]: small enough that each statement holds its
/// row locks and writes its WAL briefly, however much has piled up.
pub const DELETE_BATCH: u64 = 1_000;

/// Deletes every row of `table` matching `condition` ($1.. bound to `values`), [`DELETE_BATCH`] rows
/// per statement, and returns how many went. The condition is checked again on the row being
/// deleted, so a row that changed since it was picked (a throttle counter counting again, a job
/// retried) is left alone.
pub async fn delete_in_batches(
    conn: &impl ConnectionTrait,
    table: &str,
    condition: &str,
    values: Vec<Value>,
) -> Result<u64, DbErr> {
    let sql = format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {condition} \
         LIMIT {DELETE_BATCH})) AND {condition}"
    );
    let mut deleted = 0;
    loop {
        let batch = conn
            .execute_raw(stmt(&sql, values.iter().cloned()))
            .await?
            .rows_affected();
        deleted += batch;
        if batch < DELETE_BATCH {
            return Ok(deleted);
        }
    }
}

/// Lets a row type hold an enum stored as `text` (`users.role`, `orders.status`), so a row is typed
/// when it is read and the code past it never compares strings. A value the code does not know is a
/// type error at the read. `$parse` turns the text into `Option<$type>`.
///
/// ```ignore
/// db::text_column!(OrderStatus, OrderStatus::parse);
/// ```
macro_rules! text_column {
    ($type:ty, $parse:expr) => {
        impl sea_orm::TryGetable for $type {
            fn try_get_by<I: sea_orm::ColIdx>(
                res: &sea_orm::QueryResult,
                index: I,
            ) -> Result<Self, sea_orm::TryGetError> {
                let raw = <String as sea_orm::TryGetable>::try_get_by(res, index)?;
                let parse: fn(&str) -> Option<$type> = $parse;
                parse(&raw).ok_or_else(|| {
                    sea_orm::TryGetError::DbErr(sea_orm::DbErr::Type(format!(
                        "unknown {} {raw:?}",
                        stringify!($type)
                    )))
                })
            }
        }
    };
}
pub(crate) use text_column;
