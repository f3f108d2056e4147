//! Invitations: an admin invites an address with a role; the person behind it accepts with the
//! emailed token once signed in with that address verified.
//!
//! The token is 256 random bits, stored only as its SHA-256, single use, valid for
//! `ORG_INVITATION_TTL_DAYS`. Inviting an address again while its invitation is pending rotates
//! the token (the old link stops working) and sends a new email. Inviting a member is a no-op.
//! Sending is rate-limited per inviter and per org. With a `seat_limit`, members plus pending
//! invitations may not pass it, checked on inviting and on accepting. Every change runs under the
//! org's row lock, so two accepts of one invitation make one membership.
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    OrgError, OrgsState,
    audit::{self, Actor},
    dto::{InvitationView, InviteStatus, Joined},
    guard::OrgMember,
    policy::OrgRole,
};
use crate::{
    auth::{
        AuthError, AuthUser,
        domain::Email,
        tokens::{random_token, token_hash},
    },
    db::stmt,
    jobs::JobOptions,
    mail::SendEmail,
};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

const PENDING: &str = "accepted_at IS NULL AND revoked_at IS NULL";

const VIEW: &str = "SELECT i.id, i.email, i.role, inviter.email AS invited_by, i.created_at, \
        i.sent_at, i.expires_at, i.expires_at <= now() AS expired \
    FROM org_invitations i LEFT JOIN users inviter ON inviter.id = i.invited_by";

#[derive(FromQueryResult)]
struct LockedOrg {
    name: String,
    seat_limit: Option<i32>,
    /// Members plus invitations still pending and unexpired.
    seats_used: i64,
}

/// Locks the org's row (every membership and invitation change of one org is serialised by it).
async fn lock_org(conn: &impl ConnectionTrait, org: Uuid) -> Result<LockedOrg, OrgError> {
    LockedOrg::find_by_statement(stmt(
        &format!(
            "SELECT name, seat_limit, \
                (SELECT count(*) FROM org_members WHERE org_id = $1) \
                + (SELECT count(*) FROM org_invitations WHERE org_id = $1 AND {PENDING} \
                   AND expires_at > now()) AS seats_used \
             FROM orgs WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        ),
        [org.into()],
    ))
    .one(conn)
    .await?
    .ok_or(OrgError::NotFound)
}

/// Refuses past a send limit: `limit` sends counted by `condition` within `window`.
async fn within_limit(
    conn: &impl ConnectionTrait,
    condition: &str,
    key: Uuid,
    window: Duration,
    limit: i64,
) -> Result<(), OrgError> {
    #[derive(FromQueryResult)]
    struct Sent {
        sent: i64,
        oldest: Option<DateTime<Utc>>,
    }
    let sent = Sent::find_by_statement(stmt(
        &format!(
            "SELECT count(*) AS sent, min(at) AS oldest FROM org_audit \
             WHERE {condition} = $1 AND action = 'invitation.sent' AND at > now() - make_interval(secs => $2)"
        ),
        [key.into(), window.as_secs_f64().into()],
    ))
    .one(conn)
    .await?
    .ok_or(DbErr::RecordNotFound("count".into()))?;
    if sent.sent < limit {
        return Ok(());
    }
    let window = window.as_secs() as i64;
    let retry_after = sent
        .oldest
        .map(|oldest| window - (Utc::now() - oldest).num_seconds())
        .unwrap_or(window)
        .clamp(1, window) as u64;
    Err(AuthError::RateLimited {
        retry_after: Duration::from_secs(retry_after),
    }
    .into())
}

/// Invites `email` to `inviter`'s org as `role` (admin or member), or sends a pending
/// invitation again with a new token.
#[tracing::instrument(level = "info", skip_all)]
pub async fn invite(
    app: &OrgsState,
    inviter: &OrgMember,
    email: &Email,
    role: OrgRole,
) -> Result<(InviteStatus, Option<InvitationView>), OrgError> {
    if role == OrgRole::Owner {
        return Err(OrgError::validation(
            "role",
            "must be admin or member; make a member an owner once they have joined",
        ));
    }
    let org = inviter.org_id;
    let (user, _) = inviter.person()?;
    let txn = app.db.begin().await?;
    let locked = lock_org(&txn, org).await?;
    let member = txn
        .query_one_raw(stmt(
            "SELECT 1 FROM org_members m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND u.email = $2",
            [org.into(), email.as_str().into()],
        ))
        .await?;
    if member.is_some() {
        return Ok((InviteStatus::AlreadyMember, None));
    }
    let limits = &app.config;
    within_limit(
        &txn,
        "actor_user_id",
        user.user_id,
        HOUR,
        limits.invites_per_inviter_per_hour,
    )
    .await?;
    within_limit(&txn, "org_id", org, DAY, limits.invites_per_org_per_day).await?;

    let token = random_token();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(limits.invitation_ttl).unwrap_or(chrono::Duration::days(7));
    let rotated = txn
        .query_one_raw(stmt(
            &format!(
                "UPDATE org_invitations SET token_hash = $3, role = $4, invited_by = $5, \
                 sent_at = now(), expires_at = $6 WHERE org_id = $1 AND email = $2 AND {PENDING} \
                 RETURNING id"
            ),
            [
                org.into(),
                email.as_str().into(),
                token_hash(&token).into(),
                role.as_str().into(),
                user.user_id.into(),
                expires_at.into(),
            ],
        ))
        .await?;
    let (status, id) = match rotated {
        Some(row) => (InviteStatus::Resent, row.try_get_by_index::<Uuid>(0)?),
        None => {
            if let Some(limit) = locked.seat_limit
                && locked.seats_used >= i64::from(limit)
            {
                return Err(OrgError::SeatLimitReached(limit));
            }
            let id = Uuid::now_v7();
            txn.execute_raw(stmt(
                "INSERT INTO org_invitations (id, org_id, email, role, token_hash, invited_by, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [
                    id.into(),
                    org.into(),
                    email.as_str().into(),
                    role.as_str().into(),
                    token_hash(&token).into(),
                    user.user_id.into(),
                    expires_at.into(),
                ],
            ))
            .await?;
            (InviteStatus::Sent, id)
        }
    };
    audit::record(
        &txn,
        org,
        inviter.actor(),
        "invitation.sent",
        Some(email.as_str().to_owned()),
        json!({"role": role.as_str(), "resent": status == InviteStatus::Resent}),
    )
    .await?;
    let base = &app.public_url;
    let mail = SendEmail {
        to: email.as_str().to_owned(),
        template: "org_invitation".into(),
        context: json!({
            "org_name": locked.name,
            "inviter": user.account.email,
            "role": role.as_str(),
            "token": token,
            "link": format!("{base}/invitations/accept?token={token}"),
            "expires_days": limits.invitation_ttl.as_secs() / 86_400,
            "app_url": base,
        }),
        message_key: None,
    };
    app.jobs.push(&txn, &mail, JobOptions::default()).await?;
    let view =
        InvitationView::find_by_statement(stmt(&format!("{VIEW} WHERE i.id = $1"), [id.into()]))
            .one(&txn)
            .await?;
    txn.commit().await?;
    Ok((status, view))
}

/// The org's pending invitations (expired ones included, marked), newest first.
pub async fn pending(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<InvitationView>, DbErr> {
    InvitationView::find_by_statement(stmt(
        &format!("{VIEW} WHERE i.org_id = $1 AND i.{PENDING} ORDER BY i.sent_at DESC, i.id"),
        [org.into()],
    ))
    .all(db)
    .await
}

/// Revokes a pending invitation: its link stops working.
pub async fn revoke(app: &OrgsState, member: &OrgMember, id: Uuid) -> Result<(), OrgError> {
    let txn = app.db.begin().await?;
    let revoked = txn
        .query_one_raw(stmt(
            &format!(
                "UPDATE org_invitations SET revoked_at = now() \
                 WHERE id = $1 AND org_id = $2 AND {PENDING} RETURNING email"
            ),
            [id.into(), member.org_id.into()],
        ))
        .await?
        .ok_or(OrgError::InvitationNotFound)?;
    let email: String = revoked.try_get_by_index(0)?;
    audit::record(
        &txn,
        member.org_id,
        member.actor(),
        "invitation.revoked",
        Some(email),
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

#[derive(FromQueryResult)]
struct Invitation {
    id: Uuid,
    org_id: Uuid,
    email: String,
    role: String,
    expired: bool,
    accepted_by: Option<Uuid>,
    revoked: bool,
}

/// Accepts the invitation `token` names for the signed-in `user`, whose verified address must be
/// the invited one. Accepting again (a retry) answers the membership it made.
#[tracing::instrument(level = "info", skip_all)]
pub async fn accept(app: &OrgsState, user: &AuthUser, token: &str) -> Result<Joined, OrgError> {
    let hash = token_hash(token);
    let find = || {
        Invitation::find_by_statement(stmt(
            "SELECT id, org_id, email, role, expires_at <= now() AS expired, accepted_by, \
                revoked_at IS NOT NULL AS revoked \
             FROM org_invitations WHERE token_hash = $1",
            [hash.clone().into()],
        ))
    };
    let txn = app.db.begin().await?;
    let found = find()
        .one(&txn)
        .await?
        .ok_or(OrgError::InvitationNotFound)?;
    let locked = lock_org(&txn, found.org_id)
        .await
        .map_err(|_| OrgError::InvitationNotFound)?;
    // Read again under the lock: a concurrent accept may have taken it meanwhile.
    let invitation = find()
        .one(&txn)
        .await?
        .ok_or(OrgError::InvitationNotFound)?;
    if invitation.email != user.account.email {
        return Err(OrgError::InvitationForAnotherAddress);
    }
    let role = OrgRole::parse(&invitation.role).ok_or(OrgError::InvitationNotFound)?;
    match invitation.accepted_by {
        Some(by) if by == user.user_id => {
            return Ok(Joined {
                org_id: invitation.org_id,
                role: current_role(&txn, invitation.org_id, user.user_id)
                    .await?
                    .unwrap_or(role),
            });
        }
        Some(_) => return Err(OrgError::InvitationNotFound),
        None if invitation.revoked || invitation.expired => {
            return Err(OrgError::InvitationNotFound);
        }
        None => {}
    }
    let existing = current_role(&txn, invitation.org_id, user.user_id).await?;
    // This invitation is one of the seats counted; joining takes it over.
    if existing.is_none()
        && let Some(limit) = locked.seat_limit
        && locked.seats_used > i64::from(limit)
    {
        return Err(OrgError::SeatLimitReached(limit));
    }
    txn.execute_raw(stmt(
        "UPDATE org_invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1",
        [invitation.id.into(), user.user_id.into()],
    ))
    .await?;
    txn.execute_raw(stmt(
        "INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id, user_id) DO NOTHING",
        [
            invitation.org_id.into(),
            user.user_id.into(),
            role.as_str().into(),
        ],
    ))
    .await?;
    audit::record(
        &txn,
        invitation.org_id,
        Actor::User(user.user_id),
        "invitation.accepted",
        Some(invitation.email.clone()),
        json!({"role": role.as_str(), "already_member": existing.is_some()}),
    )
    .await?;
    txn.commit().await?;
    Ok(Joined {
        org_id: invitation.org_id,
        role: existing.unwrap_or(role),
    })
}

async fn current_role(
    conn: &impl ConnectionTrait,
    org: Uuid,
    user: Uuid,
) -> Result<Option<OrgRole>, DbErr> {
    let row = conn
        .query_one_raw(stmt(
            "SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2",
            [org.into(), user.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => OrgRole::parse(&row.try_get_by_index::<String>(0)?),
        None => None,
    })
}
