//! Settings of the AI example (`AI_*`).
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct AiConfig {
    /// The LLM provider's base URL (`AI_PROVIDER_URL`); none turns the example route off (503).
    /// `just dev` and the tests run the local fake (`tools/fake-llm`).
    pub provider_url: Option<String>,
    /// Sent as `Authorization: Bearer …` when set (`AI_PROVIDER_API_KEY`).
    pub api_key: Option<SecretString>,
    /// The model asked for (`AI_MODEL`).
    pub model: String,
    /// How long one completion may take (`AI_TIMEOUT_SECS`); keep it under
    /// `USAGE_RESERVATION_TTL_SECS`, so a reservation outlives the call it covers.
    pub timeout: Duration,
}

impl AiConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let provider_url = vars
            .get("AI_PROVIDER_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &provider_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError {
                var: "AI_PROVIDER_URL",
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        Ok(Self {
            provider_url,
            api_key: vars.get("AI_PROVIDER_API_KEY").map(SecretString::from),
            model: vars.get("AI_MODEL").unwrap_or_else(|| "demo-1".into()),
            timeout: Duration::from_secs(vars.parse_or("AI_TIMEOUT_SECS", 60)?),
        })
    }
}
