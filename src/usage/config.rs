//! Settings of the usage layer (`USAGE_*`).
use std::time::Duration;

use crate::config::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// How long a reservation holds its amount before the next reserve reclaims it
    /// (`USAGE_RESERVATION_TTL_SECS`): longer than the slowest unit of work it covers.
    pub reservation_ttl: Duration,
    /// How often committed overage is reported to Stripe (`USAGE_REPORT_INTERVAL_SECS`, 0 = never).
    pub report_interval: Duration,
}

impl UsageConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let ttl: u64 = vars.parse_or("USAGE_RESERVATION_TTL_SECS", 300)?;
        if !(1..=86_400).contains(&ttl) {
            return Err(ConfigError {
                var: "USAGE_RESERVATION_TTL_SECS",
                reason: "must be between 1 and 86400".into(),
            });
        }
        Ok(Self {
            reservation_ttl: Duration::from_secs(ttl),
            report_interval: Duration::from_secs(vars.parse_or("USAGE_REPORT_INTERVAL_SECS", 60)?),
        })
    }
}
