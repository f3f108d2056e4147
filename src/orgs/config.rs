//! Settings of the orgs layer (`.env.example`, "Organisations").
use std::time::Duration;

use crate::config::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct OrgsConfig {
    /// How long an invitation link works (`ORG_INVITATION_TTL_DAYS`, default 7).
    pub invitation_ttl: Duration,
    /// Invitations (new or resent) one person may send per hour, over all their orgs
    /// (`ORG_INVITES_PER_INVITER_PER_HOUR`, default 20).
    pub invites_per_inviter_per_hour: i64,
    /// Invitations (new or resent) one org may send per day (`ORG_INVITES_PER_ORG_PER_DAY`,
    /// default 100).
    pub invites_per_org_per_day: i64,
}

impl OrgsConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let days: u64 = vars.parse_or("ORG_INVITATION_TTL_DAYS", 7)?;
        if !(1..=30).contains(&days) {
            return Err(ConfigError {
                var: "ORG_INVITATION_TTL_DAYS",
                reason: "must be 1 to 30 days".into(),
            });
        }
        Ok(Self {
            invitation_ttl: Duration::from_secs(days * 86_400),
            invites_per_inviter_per_hour: vars.parse_or("ORG_INVITES_PER_INVITER_PER_HOUR", 20)?,
            invites_per_org_per_day: vars.parse_or("ORG_INVITES_PER_ORG_PER_DAY", 100)?,
        })
    }
}
