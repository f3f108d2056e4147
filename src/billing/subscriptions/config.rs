//! Settings of recurring billing (`BILLING_*`): the past-due grace, proration on plan changes and
//! where the customer portal returns to.
use chrono::Duration;

use crate::config::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// How long a `past_due` subscription keeps its features (`BILLING_PAST_DUE_GRACE_DAYS`).
    pub past_due_grace: Duration,
    /// How plan and seat changes are prorated (`BILLING_PRORATION`).
    pub proration: Proration,
    /// Where Stripe's customer portal sends the customer back (`BILLING_PORTAL_RETURN_URL`).
    pub portal_return_url: String,
}

/// Stripe's `proration_behavior` for a plan or seat change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proration {
    CreateProrations,
    AlwaysInvoice,
    None,
}

impl Proration {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateProrations => "create_prorations",
            Self::AlwaysInvoice => "always_invoice",
            Self::None => "none",
        }
    }
}

impl SubscriptionConfig {
    pub fn from_vars(vars: &Vars<'_>, env: Environment) -> Result<Self, ConfigError> {
        let grace_days: i64 = vars.parse_or("BILLING_PAST_DUE_GRACE_DAYS", 7)?;
        if !(0..=60).contains(&grace_days) {
            return Err(ConfigError {
                var: "BILLING_PAST_DUE_GRACE_DAYS",
                reason: "must be between 0 and 60".into(),
            });
        }
        let proration = match vars.get("BILLING_PRORATION").as_deref().map(str::trim) {
            None | Some("create_prorations") => Proration::CreateProrations,
            Some("always_invoice") => Proration::AlwaysInvoice,
            Some("none") => Proration::None,
            Some(other) => {
                return Err(ConfigError {
                    var: "BILLING_PRORATION",
                    reason: format!("{other:?} is not create_prorations, always_invoice or none"),
                });
            }
        };
        let portal_return_url = match vars.get("BILLING_PORTAL_RETURN_URL") {
            Some(url) => url,
            None if env == Environment::Production => {
                return Err(ConfigError {
                    var: "BILLING_PORTAL_RETURN_URL",
                    reason: "is required in production".into(),
                });
            }
            None => "http://localhost:3000/billing".into(),
        };
        Ok(Self {
            past_due_grace: Duration::days(grace_days),
            proration,
            portal_return_url,
        })
    }
}
