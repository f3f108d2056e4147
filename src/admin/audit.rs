//! The audit trail of admin actions (`admin_actions`): every operator route, in any layer, records
//! what it did here.
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;
use uuid::Uuid;

use crate::db::stmt;

/// Appends to the admin audit trail (and the log).
pub async fn record(
    db: &impl ConnectionTrait,
    admin_id: Uuid,
    action: &str,
    target: &str,
    details: Value,
) -> Result<(), DbErr> {
    tracing::info!(target: "ironclad::audit", %admin_id, action, target, details = %details, "admin action");
    db.execute_raw(stmt(
        "INSERT INTO admin_actions (admin_id, action, target, details) VALUES ($1, $2, $3, $4)",
        [
            admin_id.into(),
            action.into(),
            target.into(),
            details.into(),
        ],
    ))
    .await?;
    Ok(())
}
