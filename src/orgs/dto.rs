//! Request and response bodies of the orgs API, with the examples the OpenAPI document shows.
use chrono::{DateTime, Utc};
use sea_orm::FromQueryResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    OrgError,
    domain::{OrgName, Slug},
    policy::{OrgRole, Scope},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Ltd", "slug": "acme"}))]
pub struct CreateOrg {
    /// 1 to 100 characters.
    pub name: String,
    /// 3 to 48 of `a-z`, `0-9`, `-`; made from the name when left out.
    pub slug: Option<String>,
}

impl CreateOrg {
    pub fn parse(&self) -> Result<(OrgName, Slug), OrgError> {
        let name = OrgName::parse(&self.name).map_err(|m| OrgError::validation("name", m))?;
        let slug = match &self.slug {
            Some(slug) => Slug::parse(slug).map_err(|m| OrgError::validation("slug", m))?,
            None => Slug::from_name(&name).ok_or_else(|| {
                OrgError::validation("slug", "cannot be made from this name; give one")
            })?,
        };
        Ok((name, slug))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Group"}))]
pub struct UpdateOrg {
    pub name: Option<String>,
    pub slug: Option<String>,
}

impl UpdateOrg {
    pub fn parse(&self) -> Result<(Option<OrgName>, Option<Slug>), OrgError> {
        let name = self
            .name
            .as_deref()
            .map(OrgName::parse)
            .transpose()
            .map_err(|m| OrgError::validation("name", m))?;
        let slug = self
            .slug
            .as_deref()
            .map(Slug::parse)
            .transpose()
            .map_err(|m| OrgError::validation("slug", m))?;
        Ok((name, slug))
    }
}

/// An organisation, as one of its members sees it.
#[derive(Debug, Clone, Serialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "id": "0193a5b2-7c1d-7e4f-9a3b-5c6d7e8f9a0b", "name": "Acme Ltd", "slug": "acme",
    "personal": false, "role": "owner", "members": 3, "seat_limit": null,
    "created_at": "2026-12-02T10:00:00Z"
}))]
pub struct OrgView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// The account's own organisation, made with it: it cannot be deleted or left by its owner.
    pub personal: bool,
    /// The caller's role (null when the caller is an API key).
    #[schema(value_type = Option<OrgRole>)]
    pub role: Option<String>,
    pub members: i64,
    /// The most members (and pending invitations) the plan allows; null: no limit.
    pub seat_limit: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// A member of an organisation.
#[derive(Debug, Clone, Serialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "user_id": "0193a5b2-0000-7e4f-9a3b-5c6d7e8f9a0b", "email": "ada@example.com",
    "role": "admin", "joined_at": "2026-12-02T10:00:00Z"
}))]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: String,
    #[schema(value_type = OrgRole)]
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct ChangeRole {
    pub role: OrgRole,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "grace@example.com", "role": "member"}))]
pub struct InviteRequest {
    pub email: String,
    /// `admin` or `member` (owners are made from members).
    pub role: OrgRole,
}

/// What inviting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    /// A new invitation, emailed.
    Sent,
    /// The pending invitation emailed again with a new token (the old link no longer works).
    Resent,
    /// The address already belongs to a member: nothing was sent.
    AlreadyMember,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "sent", "invitation": {
    "id": "0193a5b2-1111-7e4f-9a3b-5c6d7e8f9a0b", "email": "grace@example.com", "role": "member",
    "invited_by": "ada@example.com", "created_at": "2026-12-02T10:00:00Z",
    "sent_at": "2026-12-02T10:00:00Z", "expires_at": "2026-12-09T10:00:00Z", "expired": false}}))]
pub struct InviteResponse {
    pub status: InviteStatus,
    /// The invitation (absent for `already_member`).
    pub invitation: Option<InvitationView>,
}

/// A pending invitation (its token is only ever in the email).
#[derive(Debug, Clone, Serialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "id": "0193a5b2-1111-7e4f-9a3b-5c6d7e8f9a0b", "email": "grace@example.com", "role": "member",
    "invited_by": "ada@example.com", "created_at": "2026-12-02T10:00:00Z",
    "sent_at": "2026-12-02T10:00:00Z", "expires_at": "2026-12-09T10:00:00Z", "expired": false
}))]
pub struct InvitationView {
    pub id: Uuid,
    pub email: String,
    #[schema(value_type = OrgRole)]
    pub role: String,
    /// Who sent it last (null if that account is gone).
    pub invited_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Past its expiry: resend it to renew.
    pub expired: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "q0Yk3mV1x8gJc6c0bX3E1cC0pQ9oWfB2l1m3nKxV5zA"}))]
pub struct AcceptInvitation {
    /// The token from the invitation email.
    pub token: String,
}

/// The membership an accepted invitation made.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"org_id": "0193a5b2-7c1d-7e4f-9a3b-5c6d7e8f9a0b", "role": "member"}))]
pub struct Joined {
    pub org_id: Uuid,
    pub role: OrgRole,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI deploys", "scopes": ["org:read"], "expires_at": "2027-06-01T00:00:00Z"}))]
pub struct CreateApiKey {
    /// What the key is for (1 to 100 characters).
    pub name: String,
    /// Within what your role allows.
    pub scopes: Vec<Scope>,
    /// When it stops working; never when left out.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key as lists show it: never the key itself.
#[derive(Debug, Clone, Serialize, ToSchema, FromQueryResult)]
#[schema(example = json!({
    "id": "0193a5b2-2222-7e4f-9a3b-5c6d7e8f9a0b", "name": "CI deploys", "prefix": "ic_live_",
    "last4": "x9Qz", "scopes": ["org:read"], "created_by": "ada@example.com",
    "created_at": "2026-12-02T10:00:00Z", "expires_at": "2027-06-01T00:00:00Z",
    "last_used_at": null
}))]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub last4: String,
    #[schema(value_type = Vec<Scope>)]
    pub scopes: serde_json::Value,
    /// Who made it (null if that account is gone).
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// To the minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new key: `key` is shown this once; store it now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "key": "ic_live_4Fq8ZrT1mN0pXc7VbL2sK9dH3gJ6wY5e0A1b2C",
    "api_key": {
        "id": "0193a5b2-2222-7e4f-9a3b-5c6d7e8f9a0b", "name": "CI deploys", "prefix": "ic_live_",
        "last4": "1b2C", "scopes": ["org:read"], "created_by": "ada@example.com",
        "created_at": "2026-12-02T10:00:00Z", "expires_at": null, "last_used_at": null
    }
}))]
pub struct CreatedApiKey {
    pub key: String,
    pub api_key: ApiKeyView,
}
