//! Users: the account row and its queries, the profile (`/me`), the billing email, admins.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, Event},
    domain::{Email, Role},
    dto::NewAccount,
    dto::{CurrentSession, Me},
    error::AuthError,
    guard::AuthUser,
    password::{self},
    request_meta::RequestMeta,
};
use crate::db::{self, stmt};

#[derive(Debug, Clone, FromQueryResult)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub mfa_enabled: bool,
}

impl UserRow {
    /// The account's address as a domain value (stored normalised, so it always parses).
    pub fn address(&self) -> Result<Email, AuthError> {
        Email::parse(&self.email)
            .map_err(|e| AuthError::Unexpected(anyhow::anyhow!("stored email {}: {e}", self.id)))
    }
}

db::text_column!(Role, |raw| raw.parse().ok());

pub(super) const SELECT_USER: &str = r#"
SELECT u.id, u.email, u.password_hash, u.role, u.email_verified_at, u.created_at,
       EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL)
           AS mfa_enabled
FROM users u
"#;

pub async fn find_by_email(
    conn: &impl ConnectionTrait,
    email: &Email,
) -> Result<Option<UserRow>, AuthError> {
    Ok(UserRow::find_by_statement(stmt(
        &format!("{SELECT_USER} WHERE u.email = $1"),
        [email.as_str().into()],
    ))
    .one(conn)
    .await?)
}

pub async fn find_by_id(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<UserRow>, AuthError> {
    Ok(
        UserRow::find_by_statement(stmt(&format!("{SELECT_USER} WHERE u.id = $1"), [id.into()]))
            .one(conn)
            .await?,
    )
}

/// `GET /me`.
pub fn me(user: &AuthUser) -> Me {
    let row = &user.account;
    Me {
        id: row.id,
        role: row.role,
        email_verified: user.email_verified(),
        mfa_enabled: row.mfa_enabled,
        created_at: row.created_at,
        email: row.email.clone(),
        session: CurrentSession {
            id: user.session_id,
            aal: user.aal,
            amr: user.amr.clone(),
        },
    }
}

/// Creates a verified admin account (`ironclad create-admin`).
pub async fn create_admin(db: &DatabaseConnection, account: NewAccount) -> Result<Uuid, AuthError> {
    create_verified(db, account, Role::Admin, "cli")
        .await?
        .ok_or_else(|| AuthError::validation("email", "is already registered"))
}

/// Creates a verified account with `role`, made `via` a tool (`cli`, `seed`) rather than signed up;
/// `None` when the email is already registered (the existing account is left as it is).
pub async fn create_verified(
    db: &DatabaseConnection,
    account: NewAccount,
    role: Role,
    via: &str,
) -> Result<Option<Uuid>, AuthError> {
    let NewAccount { email, password } = account;
    let hash = password::hash(password.secret()).await?;
    let txn = db.begin().await?;
    let id = Uuid::now_v7();
    let created = txn
        .execute_raw(stmt(
            "INSERT INTO users (id, email, password_hash, role, email_verified_at)
             VALUES ($1, $2, $3, $4, now()) ON CONFLICT (email) DO NOTHING",
            [
                id.into(),
                email.as_str().into(),
                hash.into(),
                role.as_str().into(),
            ],
        ))
        .await?
        .rows_affected();
    if created != 1 {
        txn.rollback().await?;
        return Ok(None);
    }
    let event = match role {
        Role::Admin => Event::AdminCreated,
        Role::User => Event::Registered,
    };
    audit::record(
        &txn,
        event,
        Some(id),
        None,
        &RequestMeta::default(),
        json!({"via": via}),
    )
    .await?;
    txn.commit().await?;
    Ok(Some(id))
}
