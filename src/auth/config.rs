//! Settings of the auth layer (`AUTH_*`, `JWT_*` variables).
use crate::config::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct AuthConfig {}

impl AuthConfig {
    pub fn from_vars(_vars: &Vars<'_>, _env: Environment) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}
