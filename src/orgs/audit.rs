//! The organisation's audit trail (`org_audit`): who changed its settings or its membership.
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;
use uuid::Uuid;

use crate::db::stmt;

/// Who did it: a person, or one of the org's API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    Key(Uuid),
}

/// Records `action` by `actor` on `org`, in the caller's transaction.
pub async fn record(
    db: &impl ConnectionTrait,
    org: Uuid,
    actor: Actor,
    action: &str,
    subject: Option<String>,
    detail: Value,
) -> Result<(), DbErr> {
    let (user, key) = match actor {
        Actor::User(id) => (Some(id), None),
        Actor::Key(id) => (None, Some(id)),
    };
    tracing::info!(target: "ironclad::audit", %org, ?actor, action, subject, detail = %detail, "org action");
    db.execute_raw(stmt(
        "INSERT INTO org_audit (org_id, actor_user_id, actor_api_key_id, action, subject, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        [
            org.into(),
            user.into(),
            key.into(),
            action.into(),
            subject.into(),
            detail.into(),
        ],
    ))
    .await?;
    Ok(())
}
