//! Creating, reading, renaming and deleting organisations.
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, SqlErr, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    OrgError, OrgsState,
    audit::{self, Actor},
    domain::{OrgName, Slug},
    dto::OrgView,
    guard::OrgMember,
};
use crate::db::stmt;

// Orgs as `$1` sees them: the caller's role is null for an API key.
const VIEW: &str = "SELECT o.id, o.name, o.slug, o.personal_for IS NOT NULL AS personal, \
        (SELECT m.role FROM org_members m WHERE m.org_id = o.id AND m.user_id = $1) AS role, \
        o.member_count::bigint AS members, \
        o.seat_limit, o.created_at \
    FROM orgs o WHERE o.deleted_at IS NULL";

/// A unique-index violation on the slug means another live org has it.
fn slug_taken(error: DbErr, slug: &Slug) -> OrgError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => OrgError::SlugTaken(slug.to_string()),
        _ => OrgError::Database(error),
    }
}

/// Creates an organisation with `user` as its owner.
pub async fn create(
    app: &OrgsState,
    user: Uuid,
    name: &OrgName,
    slug: &Slug,
) -> Result<OrgView, OrgError> {
    let txn = app.db.begin().await?;
    let id = Uuid::now_v7();
    txn.execute_raw(stmt(
        "INSERT INTO orgs (id, name, slug) VALUES ($1, $2, $3)",
        [id.into(), name.as_str().into(), slug.as_str().into()],
    ))
    .await
    .map_err(|e| slug_taken(e, slug))?;
    txn.execute_raw(stmt(
        "INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, 'owner')",
        [id.into(), user.into()],
    ))
    .await?;
    audit::record(
        &txn,
        id,
        Actor::User(user),
        "org.created",
        None,
        json!({"slug": slug.as_str()}),
    )
    .await?;
    let view = view(&txn, id, Some(user)).await?;
    txn.commit().await?;
    Ok(view)
}

/// The organisations `user` is a member of, personal first, then by name.
pub async fn list(db: &impl ConnectionTrait, user: Uuid) -> Result<Vec<OrgView>, DbErr> {
    OrgView::find_by_statement(stmt(
        &format!(
            "{VIEW} AND EXISTS (SELECT 1 FROM org_members m WHERE m.org_id = o.id AND m.user_id = $1) \
             ORDER BY personal DESC, o.name, o.id"
        ),
        [user.into()],
    ))
    .all(db)
    .await
}

/// One organisation as `user` (a member; `None` for an API key) sees it.
pub async fn view(
    db: &impl ConnectionTrait,
    org: Uuid,
    user: Option<Uuid>,
) -> Result<OrgView, OrgError> {
    OrgView::find_by_statement(stmt(
        &format!("{VIEW} AND o.id = $2"),
        [user.into(), org.into()],
    ))
    .one(db)
    .await?
    .ok_or(OrgError::NotFound)
}

/// Renames the organisation or changes its slug (what is given).
pub async fn update(
    app: &OrgsState,
    member: &OrgMember,
    name: Option<OrgName>,
    slug: Option<Slug>,
) -> Result<OrgView, OrgError> {
    let txn = app.db.begin().await?;
    let updated = txn
        .execute_raw(stmt(
            "UPDATE orgs SET name = coalesce($2, name), slug = coalesce($3, slug) \
             WHERE id = $1 AND deleted_at IS NULL",
            [
                member.org_id.into(),
                name.as_ref().map(|n| n.as_str().to_owned()).into(),
                slug.as_ref().map(|s| s.as_str().to_owned()).into(),
            ],
        ))
        .await
        .map_err(|e| match &slug {
            Some(slug) => slug_taken(e, slug),
            None => OrgError::Database(e),
        })?;
    if updated.rows_affected() == 0 {
        return Err(OrgError::NotFound);
    }
    audit::record(
        &txn,
        member.org_id,
        member.actor(),
        "org.updated",
        None,
        json!({"name": name.as_ref().map(OrgName::as_str), "slug": slug.as_ref().map(Slug::as_str)}),
    )
    .await?;
    let view = view(&txn, member.org_id, member.user_id()).await?;
    txn.commit().await?;
    Ok(view)
}

/// Deletes the organisation: it disappears for every member at once; its row stays for what
/// refers to it, and its slug is free again. A personal organisation goes only with its account.
pub async fn delete(app: &OrgsState, member: &OrgMember) -> Result<(), OrgError> {
    if member.personal {
        return Err(OrgError::PersonalOrg(
            "a personal organisation is deleted with its account",
        ));
    }
    let txn = app.db.begin().await?;
    let deleted = txn
        .execute_raw(stmt(
            "UPDATE orgs SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
            [member.org_id.into()],
        ))
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(OrgError::NotFound);
    }
    audit::record(
        &txn,
        member.org_id,
        member.actor(),
        "org.deleted",
        None,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
