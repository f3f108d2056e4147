//! An organisation's members: listing them, changing a role, removing one (or leaving).
//!
//! Every change runs under the org's row lock and re-reads both memberships (the actor's and the
//! target's) and the owner count inside it: two owners demoting each other at once cannot leave
//! the org without one, and an actor demoted a moment ago no longer acts with the old role.
use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    OrgError, OrgsState, STEP_UP, audit,
    dto::MemberView,
    guard::OrgMember,
    policy::{self, Change, OrgRole, Target},
};
use crate::{auth::guard::Policy, db::stmt};

const MEMBERS: &str = "SELECT m.user_id, u.email, m.role, m.created_at AS joined_at \
    FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1";

/// The members, owners first, then by email.
pub async fn list(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<MemberView>, DbErr> {
    MemberView::find_by_statement(stmt(
        &format!(
            "{MEMBERS} ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.email"
        ),
        [org.into()],
    ))
    .all(db)
    .await
}

#[derive(FromQueryResult)]
struct Locked {
    personal_for: Option<Uuid>,
    owners: i64,
}

#[derive(FromQueryResult)]
struct Role {
    user_id: Uuid,
    role: String,
}

/// Makes `change` to `target`'s membership on behalf of `actor`. Returns the membership as it
/// now is (`None` once removed).
pub async fn change(
    app: &OrgsState,
    actor: &OrgMember,
    target: Uuid,
    change: Change,
) -> Result<Option<MemberView>, OrgError> {
    let org = actor.org_id;
    let (user, _) = actor.person()?;
    let txn = app.db.begin().await?;
    let locked = Locked::find_by_statement(stmt(
        "SELECT personal_for, (SELECT count(*) FROM org_members \
                               WHERE org_id = $1 AND role = 'owner') AS owners \
         FROM orgs WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        [org.into()],
    ))
    .one(&txn)
    .await?
    .ok_or(OrgError::NotFound)?;
    let roles = Role::find_by_statement(stmt(
        "SELECT user_id, role FROM org_members WHERE org_id = $1 AND user_id IN ($2, $3)",
        [org.into(), user.user_id.into(), target.into()],
    ))
    .all(&txn)
    .await?;
    let role_of = |user: Uuid| {
        roles
            .iter()
            .find(|r| r.user_id == user)
            .and_then(|r| OrgRole::parse(&r.role))
    };
    // Removed since the guard looked: as for any non-member.
    let acting = role_of(user.user_id).ok_or(OrgError::NotFound)?;
    let current = role_of(target).ok_or(OrgError::MemberNotFound)?;
    let aimed = Target {
        role: current,
        is_self: target == user.user_id,
        personal_owner: locked.personal_for == Some(target),
    };
    policy::check_change(acting, aimed, change, locked.owners as usize)?;
    if policy::is_ownership_change(current, change) {
        Policy::MfaWhenEnrolled(STEP_UP).check(user, Utc::now())?;
    }
    let action = match change {
        Change::SetRole(role) if role == current => None,
        Change::SetRole(role) => {
            txn.execute_raw(stmt(
                "UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2",
                [org.into(), target.into(), role.as_str().into()],
            ))
            .await?;
            Some((
                "member.role_changed",
                json!({"from": current.as_str(), "to": role.as_str()}),
            ))
        }
        Change::Remove => {
            txn.execute_raw(stmt(
                "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2",
                [org.into(), target.into()],
            ))
            .await?;
            let action = if aimed.is_self {
                "member.left"
            } else {
                "member.removed"
            };
            Some((action, json!({"role": current.as_str()})))
        }
    };
    if let Some((action, detail)) = action {
        audit::record(
            &txn,
            org,
            actor.actor(),
            action,
            Some(target.to_string()),
            detail,
        )
        .await?;
    }
    let now = MemberView::find_by_statement(stmt(
        &format!("{MEMBERS} AND m.user_id = $2"),
        [org.into(), target.into()],
    ))
    .one(&txn)
    .await?;
    txn.commit().await?;
    Ok(now)
}
