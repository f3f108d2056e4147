//! An admin's cap on one member's share of a meter (per period), recorded in the org's audit trail.
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{UsageState, error::UsageError};
use crate::{
    db::stmt,
    orgs::{OrgError, OrgMember, audit},
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"cap": 20000}))]
pub struct SetCap {
    /// The most the member may use (and hold reserved) per period.
    pub cap: i64,
}

/// Caps `member_id`'s share of `meter` in the caller's org at `cap`.
pub async fn set(
    state: &UsageState,
    by: &OrgMember,
    meter: &str,
    member_id: Uuid,
    cap: i64,
) -> Result<(), UsageError> {
    if cap < 0 {
        return Err(UsageError::validation("cap", "must not be negative"));
    }
    let txn = state.db.begin().await?;
    known(&txn, by.org_id, meter, member_id).await?;
    txn.execute_raw(stmt(
        "INSERT INTO usage_member_caps (org_id, meter, member_id, cap, set_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, meter, member_id) \
         DO UPDATE SET cap = EXCLUDED.cap, set_by = EXCLUDED.set_by, updated_at = now()",
        [
            by.org_id.into(),
            meter.into(),
            member_id.into(),
            cap.into(),
            by.user_id().into(),
        ],
    ))
    .await?;
    audit::record(
        &txn,
        by.org_id,
        by.actor(),
        "usage.cap_set",
        Some(member_id.to_string()),
        json!({"meter": meter, "cap": cap}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Lifts the cap (the member shares the org's limit again).
pub async fn remove(
    state: &UsageState,
    by: &OrgMember,
    meter: &str,
    member_id: Uuid,
) -> Result<(), UsageError> {
    let txn = state.db.begin().await?;
    known(&txn, by.org_id, meter, member_id).await?;
    let removed = txn
        .execute_raw(stmt(
            "DELETE FROM usage_member_caps WHERE org_id = $1 AND meter = $2 AND member_id = $3",
            [by.org_id.into(), meter.into(), member_id.into()],
        ))
        .await?
        .rows_affected();
    if removed > 0 {
        audit::record(
            &txn,
            by.org_id,
            by.actor(),
            "usage.cap_removed",
            Some(member_id.to_string()),
            json!({"meter": meter}),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// 404 unless `meter` exists and `member_id` is a member of the org.
async fn known(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    meter: &str,
    member_id: Uuid,
) -> Result<(), UsageError> {
    let row = db
        .query_one_raw(stmt(
            "SELECT EXISTS (SELECT 1 FROM usage_meters WHERE key = $2) AS meter, \
                EXISTS (SELECT 1 FROM org_members WHERE org_id = $1 AND user_id = $3) AS member",
            [org_id.into(), meter.into(), member_id.into()],
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("exists".into()))?;
    if !row.try_get::<bool>("", "meter")? {
        return Err(UsageError::UnknownMeter(meter.to_owned()));
    }
    if !row.try_get::<bool>("", "member")? {
        return Err(OrgError::MemberNotFound.into());
    }
    Ok(())
}
