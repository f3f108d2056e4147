//! The whole configuration: the infrastructure's settings and each layer's, read once at start-up
//! from the environment (and `.env`).
use secrecy::SecretString;

use crate::{
    ai::AiConfig,
    auth::AuthConfig,
    billing::BillingConfig,
    config::{
        ConfigError, DatabaseConfig, Environment, HttpConfig, JobsConfig, MailConfig,
        TelemetryConfig, Vars,
    },
    housekeeping::HousekeepingConfig,
    orgs::OrgsConfig,
    usage::UsageConfig,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    pub http: HttpConfig,
    pub telemetry: TelemetryConfig,
    pub database: DatabaseConfig,
    pub jobs: JobsConfig,
    pub housekeeping: HousekeepingConfig,
    pub mail: MailConfig,
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    pub auth: AuthConfig,
    pub orgs: OrgsConfig,
    pub billing: BillingConfig,
    pub usage: UsageConfig,
    pub ai: AiConfig,
    // ironclad-generate: config fields
}

impl Config {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup`, so tests can build a config without touching the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars::new(&lookup);
        let env: Environment = vars.parse_or("APP_ENV", Environment::Development)?;
        Ok(Self {
            env,
            http: HttpConfig::from_vars(&vars, env)?,
            telemetry: TelemetryConfig::from_vars(&vars)?,
            database: DatabaseConfig::from_vars(&vars)?,
            jobs: JobsConfig::from_vars(&vars)?,
            housekeeping: HousekeepingConfig::from_vars(&vars)?,
            mail: MailConfig::from_vars(&vars, env)?,
            metrics_token: vars.get("METRICS_TOKEN").map(SecretString::from),
            auth: AuthConfig::from_vars(&vars, env)?,
            orgs: OrgsConfig::from_vars(&vars)?,
            billing: BillingConfig::from_vars(&vars, env)?,
            usage: UsageConfig::from_vars(&vars)?,
            ai: AiConfig::from_vars(&vars)?,
            // ironclad-generate: config values
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MailTransport;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn database_url_is_required() {
        let err = config(&[]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("DATABASE_URL", "postgres://x"), ("PORT", "eighty")]).unwrap_err();
        assert_eq!(err.var, "PORT");
        assert!(err.to_string().contains("eighty"), "{err}");
    }

    #[test]
    fn production_requires_a_real_smtp_server() {
        let err =
            config(&[("DATABASE_URL", "postgres://x"), ("APP_ENV", "production")]).unwrap_err();
        assert_eq!(err.var, "SMTP_URL");
        let key = "cHJvZHVjdGlvbi1rZXktcHJvZHVjdGlvbi1rZXktMTIzNA==";
        let ok = config(&[
            ("DATABASE_URL", "postgres://x"),
            ("APP_ENV", "production"),
            ("SMTP_URL", "smtp://localhost:25"),
            ("STRIPE_SECRET_KEY", "sk_live_x"),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_x"),
            ("BILLING_SUCCESS_URL", "https://app.example.com/ok"),
            ("BILLING_CANCEL_URL", "https://app.example.com/cancel"),
            (
                "BILLING_PORTAL_RETURN_URL",
                "https://app.example.com/billing",
            ),
            ("JWT_KID", "k1"),
            ("JWT_SECRET", key),
            (
                "AUTH_TOTP_ENCRYPTION_KEY",
                "cHJvZHVjdGlvbi1rZXktcHJvZHVjdGlvbi1rZXktMTI=",
            ),
        ])
        .unwrap();
        assert!(matches!(ok.mail.transport, MailTransport::Smtp(_)));
    }

    #[test]
    fn a_sub_second_orphan_window_is_refused() {
        // apalis truncates it to whole seconds: 600 ms would re-run every job on every heartbeat.
        let err = config(&[
            ("DATABASE_URL", "postgres://x"),
            ("JOBS_HEARTBEAT_MS", "200"),
            ("JOBS_MISSED_HEARTBEATS", "3"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "JOBS_MISSED_HEARTBEATS");
    }

    #[test]
    fn development_defaults_to_the_mail_sink() {
        let cfg = config(&[("DATABASE_URL", "postgres://x")]).unwrap();
        assert_eq!(cfg.env, Environment::Development);
        assert!(matches!(cfg.mail.transport, MailTransport::Sink));
    }
}
