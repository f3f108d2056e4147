//! An organisation's API keys: created by an admin (shown once), listed, revoked, and checked on
//! every request that carries one (`guard.rs` asks [`authenticate`]).
//!
//! A key authenticates as itself, never as the person who made it: it reaches only its org's
//! routes its scopes allow, never account or admin routes. Its scopes are a subset of what its
//! creator's role allows at creation. `last_used_at` is written at most once a minute; a use from
//! a new address, creation and revocation are audited. Keys never appear in logs.
use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    OrgError, OrgsState,
    audit::{self, Actor},
    domain::OrgName,
    dto::{ApiKeyView, CreateApiKey, CreatedApiKey, OrgView},
    guard::{OrgMember, Principal},
    key_format::KeyToken,
    policy::{Scope, allows},
};
use crate::{auth::AuthError, db::stmt};

const VIEW: &str = "SELECT k.id, k.name, k.prefix, k.last4, k.scopes, u.email AS created_by, \
        k.created_at, k.expires_at, k.last_used_at \
    FROM org_api_keys k LEFT JOIN users u ON u.id = k.created_by";

/// The most live (unrevoked) keys one org may have.
pub const MAX_KEYS_PER_ORG: i64 = 50;

#[derive(FromQueryResult)]
struct KeyRow {
    id: Uuid,
    org_id: Uuid,
    scopes: serde_json::Value,
    revoked: bool,
    expired: bool,
    stale: bool,
    last_used_ip: Option<String>,
    personal: bool,
    name: String,
    slug: String,
    members: i64,
    seat_limit: Option<i32>,
    created_at: chrono::DateTime<Utc>,
}

fn invalid(detail: &str) -> OrgError {
    OrgError::Auth(AuthError::Unauthenticated(detail.into()))
}

/// The organisation principal of the key `raw`, used from `ip`; 401 for a malformed (its checksum
/// fails before any lookup), unknown, revoked or expired key.
pub async fn authenticate(
    app: &OrgsState,
    raw: &str,
    ip: Option<String>,
) -> Result<OrgMember, OrgError> {
    let key = KeyToken::parse(raw).ok_or_else(|| invalid("the API key is not valid"))?;
    let row = KeyRow::find_by_statement(stmt(
        "SELECT k.id, k.org_id, k.scopes, k.revoked_at IS NOT NULL AS revoked, \
            coalesce(k.expires_at <= now(), false) AS expired, \
            coalesce(k.last_used_at < now() - interval '1 minute', true) AS stale, \
            k.last_used_ip, o.personal_for IS NOT NULL AS personal, o.name, o.slug, \
            o.member_count::bigint AS members, o.seat_limit, o.created_at \
         FROM org_api_keys k JOIN orgs o ON o.id = k.org_id AND o.deleted_at IS NULL \
         WHERE k.key_hash = $1",
        [key.hash().into()],
    ))
    .one(&app.db)
    .await?
    .ok_or_else(|| invalid("the API key is not valid"))?;
    if row.revoked {
        return Err(invalid("the API key has been revoked"));
    }
    if row.expired {
        return Err(invalid("the API key has expired"));
    }
    let new_ip = ip.is_some() && row.last_used_ip != ip;
    if row.stale || new_ip {
        // Off the request's path: the answer does not wait for the bookkeeping.
        let (db, id, org) = (app.db.clone(), row.id, row.org_id);
        tokio::spawn(async move {
            if let Err(error) = touch(&db, id, org, ip, new_ip).await {
                tracing::warn!(%error, key = %id, "api key: last use not recorded");
            }
        });
    }
    let scopes = serde_json::from_value::<Vec<String>>(row.scopes)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Scope::parse(s))
        .collect();
    Ok(OrgMember {
        org_id: row.org_id,
        personal: row.personal,
        org: OrgView {
            id: row.org_id,
            name: row.name,
            slug: row.slug,
            personal: row.personal,
            role: None,
            members: row.members,
            seat_limit: row.seat_limit,
            created_at: row.created_at,
        },
        principal: Principal::Key { id: row.id, scopes },
    })
}

/// Records a use: at most once a minute, and at once (audited) from an address not seen last.
async fn touch(
    db: &impl ConnectionTrait,
    id: Uuid,
    org: Uuid,
    ip: Option<String>,
    new_ip: bool,
) -> Result<(), DbErr> {
    let changed = db
        .execute_raw(stmt(
            "UPDATE org_api_keys SET last_used_at = now(), last_used_ip = coalesce($2, last_used_ip) \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute' \
                                OR ($2::text IS NOT NULL AND last_used_ip IS DISTINCT FROM $2))",
            [id.into(), ip.clone().into()],
        ))
        .await?
        .rows_affected();
    if changed == 1 && new_ip {
        audit::record(
            db,
            org,
            Actor::Key(id),
            "api_key.new_address",
            ip,
            json!({}),
        )
        .await?;
    }
    Ok(())
}

/// Creates a key for `creator`'s org; the key is in the answer and nowhere else.
pub async fn create(
    app: &OrgsState,
    creator: &OrgMember,
    request: &CreateApiKey,
    live: bool,
) -> Result<CreatedApiKey, OrgError> {
    let (user, role) = creator.person()?;
    let name = OrgName::parse(&request.name).map_err(|m| OrgError::validation("name", m))?;
    if request.scopes.is_empty() {
        return Err(OrgError::validation(
            "scopes",
            "must name at least one scope",
        ));
    }
    if request.scopes.iter().any(|s| !allows(role, s.action())) {
        return Err(OrgError::Refused(
            "a key's scopes must be within what your role allows",
        ));
    }
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(OrgError::validation("expires_at", "must be in the future"));
    }
    let mut scopes: Vec<&str> = request.scopes.iter().map(|s| s.as_str()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let txn = app.db.begin().await?;
    let live_keys = txn
        .query_one_raw(stmt(
            "SELECT count(*) FROM org_api_keys WHERE org_id = $1 AND revoked_at IS NULL \
             AND coalesce(expires_at > now(), true)",
            [creator.org_id.into()],
        ))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    if live_keys >= MAX_KEYS_PER_ORG {
        return Err(OrgError::validation(
            "name",
            format!("the organisation has {MAX_KEYS_PER_ORG} keys; revoke one first"),
        ));
    }
    let key = KeyToken::generate(live);
    let id = Uuid::now_v7();
    txn.execute_raw(stmt(
        "INSERT INTO org_api_keys (id, org_id, name, prefix, last4, key_hash, scopes, created_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            id.into(),
            creator.org_id.into(),
            name.as_str().into(),
            key.prefix().into(),
            key.last4().into(),
            key.hash().into(),
            json!(scopes).into(),
            user.user_id.into(),
            request.expires_at.into(),
        ],
    ))
    .await?;
    audit::record(
        &txn,
        creator.org_id,
        creator.actor(),
        "api_key.created",
        Some(id.to_string()),
        json!({"name": name.as_str(), "scopes": scopes, "last4": key.last4()}),
    )
    .await?;
    let view = find(&txn, creator.org_id, id).await?;
    txn.commit().await?;
    Ok(CreatedApiKey {
        key: key.as_str().to_owned(),
        api_key: view,
    })
}

async fn find(conn: &impl ConnectionTrait, org: Uuid, id: Uuid) -> Result<ApiKeyView, OrgError> {
    ApiKeyView::find_by_statement(stmt(
        &format!("{VIEW} WHERE k.org_id = $1 AND k.id = $2 AND k.revoked_at IS NULL"),
        [org.into(), id.into()],
    ))
    .one(conn)
    .await?
    .ok_or(OrgError::ApiKeyNotFound)
}

/// The org's unrevoked keys (expired ones included), newest first.
pub async fn list(db: &impl ConnectionTrait, org: Uuid) -> Result<Vec<ApiKeyView>, DbErr> {
    ApiKeyView::find_by_statement(stmt(
        &format!(
            "{VIEW} WHERE k.org_id = $1 AND k.revoked_at IS NULL ORDER BY k.created_at DESC, k.id"
        ),
        [org.into()],
    ))
    .all(db)
    .await
}

/// Revokes a key: the next request with it gets 401.
pub async fn revoke(app: &OrgsState, member: &OrgMember, id: Uuid) -> Result<(), OrgError> {
    member.person()?;
    let txn = app.db.begin().await?;
    let revoked = txn
        .execute_raw(stmt(
            "UPDATE org_api_keys SET revoked_at = now() \
             WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
            [member.org_id.into(), id.into()],
        ))
        .await?;
    if revoked.rows_affected() == 0 {
        return Err(OrgError::ApiKeyNotFound);
    }
    audit::record(
        &txn,
        member.org_id,
        member.actor(),
        "api_key.revoked",
        Some(id.to_string()),
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
