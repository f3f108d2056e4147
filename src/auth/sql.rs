//! Raw SQL helpers: the auth layer's rules (single use, compare-and-set, reuse detection) are
//! clearest as explicit statements.
use sea_orm::{DbBackend, Statement, Value};

pub fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}
