//! Settings of the billing layer (`STRIPE_*`, `BILLING_*` variables).
use crate::config::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct BillingConfig {}

impl BillingConfig {
    pub fn from_vars(_vars: &Vars<'_>, _env: Environment) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}
