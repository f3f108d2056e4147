//! What the orgs layer keeps only while it can matter, deleted by housekeeping
//! (`crate::housekeeping`). The org's audit trail keeps what happened to each invitation.
use sea_orm::{ConnectionTrait, DbErr};

use crate::db::delete_in_batches;

/// Invitations ended (accepted, revoked or expired) more than this many days ago: no link works
/// any more, and the pending list has shown an expired one long enough for a resend.
pub const KEEP_ENDED_INVITATIONS_DAYS: i32 = 30;

/// Deletes, in batches, and returns how many rows went from which table.
pub async fn prune(conn: &impl ConnectionTrait) -> Result<Vec<(&'static str, u64)>, DbErr> {
    Ok(vec![(
        "org_invitations",
        delete_in_batches(
            conn,
            "org_invitations",
            "coalesce(accepted_at, revoked_at, expires_at) < now() - make_interval(days => $1)",
            vec![KEEP_ENDED_INVITATIONS_DAYS.into()],
        )
        .await?,
    )])
}
