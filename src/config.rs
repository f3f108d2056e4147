//! Settings primitives: [`Vars`] (how every part reads its variables), [`ConfigError`], and the
//! infrastructure's own settings (HTTP, database, jobs, mail). Each feature layer reads its settings
//! in its own `config.rs`; the composition root assembles the whole (`startup::Config`). Every
//! variable is listed and explained in `.env.example`; a bad value stops the process with a message
//! naming the variable.
use std::{net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// Where the process runs. Development turns on pretty logs, the dev mail sink and `/dev/mail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            other => Err(format!(
                "expected development, test or production, got {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub host: IpAddr,
    /// 0 picks a free port (the tests do).
    pub port: u16,
    /// The public base URL, used in links sent by email.
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    pub workers: usize,
    /// Origins whose browser pages may call the API (`Origin` values); empty: none.
    pub cors_allowed_origins: Vec<String>,
    /// `Strict-Transport-Security` max-age; `None` sends no HSTS header.
    pub hsts_max_age_secs: Option<u64>,
}

/// Trace export (`OTEL_*`): off unless an endpoint is set.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g.
    /// `http://otel-collector:4318`); traces go to `<it>/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` on every span (`OTEL_SERVICE_NAME`, default `ironclad`).
    pub service_name: String,
}

impl TelemetryConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let otlp_endpoint = vars
            .get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .filter(|e| !e.is_empty());
        if let Some(endpoint) = &otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError {
                var: "OTEL_EXPORTER_OTLP_ENDPOINT",
                reason: "must be an http:// or https:// URL (OTLP over HTTP)".into(),
            });
        }
        Ok(Self {
            otlp_endpoint,
            service_name: vars
                .get("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| "ironclad".into()),
        })
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs run at once per queue in this process.
    pub concurrency: usize,
    /// Heartbeat period; a worker silent for `heartbeat * missed_heartbeats` is presumed dead and
    /// its jobs are re-run elsewhere.
    pub heartbeat: Duration,
    pub missed_heartbeats: usize,
    /// How often an idle worker looks for delayed or retried jobs (new jobs wake it via NOTIFY).
    pub poll_interval: Duration,
    /// First retry delay; doubles on every attempt, capped at `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    /// The job queues and services (e.g. `stripe_inbox`) this process runs; empty: all of them.
    /// Lets a deployment dedicate processes (say, one pool for email, another for the inbox).
    pub only: Vec<String>,
}

impl JobsConfig {
    /// Whether this process runs the job queue or service `name`.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    /// How long a worker may stay silent before its running jobs are re-run elsewhere.
    pub fn orphaned_after(&self) -> Duration {
        self.heartbeat * self.missed_heartbeats as u32
    }
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: MailTransport,
    pub from: lettre::message::Mailbox,
    /// Domain of the deterministic Message-IDs we stamp on every email.
    pub message_id_domain: String,
    /// Folder holding `email/*` templates.
    pub templates_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub enum MailTransport {
    /// A real SMTP server, e.g. `smtps://user:pass@smtp.example.com:465`.
    Smtp(SecretString),
    /// An in-process SMTP server keeping every message in memory (development and tests).
    Sink,
}

impl HttpConfig {
    pub fn from_vars(vars: &Vars<'_>, env: Environment) -> Result<Self, ConfigError> {
        let port = vars.parse_or("PORT", 8080u16)?;
        let cors_allowed_origins = parse_origins(
            &vars.get("CORS_ALLOWED_ORIGINS").unwrap_or_default(),
        )
        .map_err(|reason| ConfigError {
            var: "CORS_ALLOWED_ORIGINS",
            reason,
        })?;
        // One year in production (served over TLS there); off elsewhere. 0 turns it off.
        let hsts_default = if env == Environment::Production {
            365 * 24 * 3600
        } else {
            0
        };
        let hsts = vars.parse_or("HTTP_HSTS_MAX_AGE_SECS", hsts_default)?;
        Ok(Self {
            host: vars.parse_or("HOST", IpAddr::from([127, 0, 0, 1]))?,
            port,
            public_url: vars
                .get("PUBLIC_URL")
                .unwrap_or_else(|| format!("http://localhost:{port}")),
            body_limit: vars.parse_or("HTTP_BODY_LIMIT_BYTES", 256 * 1024)?,
            shutdown_timeout: Duration::from_secs(vars.parse_or("SHUTDOWN_TIMEOUT_SECS", 30)?),
            // Two per core: a worker is one thread with its own event loop, and while it waits
            // for a core (Postgres runs on the same ones) its connections wait with it.
            workers: vars.parse_or(
                "HTTP_WORKERS",
                2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            )?,
            cors_allowed_origins,
            hsts_max_age_secs: (hsts > 0).then_some(hsts),
        })
    }
}

/// Parses `CORS_ALLOWED_ORIGINS`: comma-separated origins, each `scheme://host[:port]` with no
/// path (what a browser sends in `Origin`).
fn parse_origins(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
            });
            if valid {
                Ok(origin.to_owned())
            } else {
                Err(format!(
                    "{origin:?} is not an origin (scheme://host[:port])"
                ))
            }
        })
        .collect()
}

impl DatabaseConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            url: vars.required("DATABASE_URL")?.into(),
            max_connections: vars.parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            acquire_timeout: Duration::from_secs(
                vars.parse_or("DATABASE_ACQUIRE_TIMEOUT_SECS", 5)?,
            ),
        })
    }
}

impl JobsConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let jobs = Self {
            concurrency: vars.parse_or("JOBS_CONCURRENCY", 8)?,
            heartbeat: Duration::from_millis(vars.parse_or("JOBS_HEARTBEAT_MS", 5_000)?),
            missed_heartbeats: vars.parse_or("JOBS_MISSED_HEARTBEATS", 6)?,
            poll_interval: Duration::from_millis(vars.parse_or("JOBS_POLL_INTERVAL_MS", 1_000)?),
            retry_base: Duration::from_millis(vars.parse_or("JOBS_RETRY_BASE_MS", 2_000)?),
            retry_max: Duration::from_millis(vars.parse_or("JOBS_RETRY_MAX_MS", 3_600_000)?),
            max_attempts: vars.parse_or("JOBS_MAX_ATTEMPTS", 8)?,
            only: vars
                .get("JOBS_ONLY")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        // apalis-postgres compares worker silence in whole seconds (it truncates): under one second
        // every heartbeat would declare every running job orphaned and run it again.
        if jobs.orphaned_after() < Duration::from_secs(2) {
            return Err(ConfigError {
                var: "JOBS_MISSED_HEARTBEATS",
                reason: format!(
                    "JOBS_HEARTBEAT_MS x JOBS_MISSED_HEARTBEATS is {:?}; it must be at least 2 s",
                    jobs.orphaned_after()
                ),
            });
        }
        Ok(jobs)
    }
}

impl MailConfig {
    /// Outside production a missing `SMTP_URL` means the in-process sink.
    pub fn from_vars(vars: &Vars<'_>, env: Environment) -> Result<Self, ConfigError> {
        let transport = match vars.get("SMTP_URL") {
            Some(url) if url != "sink" => MailTransport::Smtp(url.into()),
            Some(_) => MailTransport::Sink,
            None if env != Environment::Production => MailTransport::Sink,
            None => {
                return Err(ConfigError {
                    var: "SMTP_URL",
                    reason: "required in production (smtp:// or smtps:// URL)".into(),
                });
            }
        };
        Ok(Self {
            transport,
            from: vars.parse_or(
                "MAIL_FROM",
                "Ironclad <no-reply@localhost>"
                    .parse()
                    .expect("valid mailbox"),
            )?,
            message_id_domain: vars
                .get("MAIL_MESSAGE_ID_DOMAIN")
                .unwrap_or_else(|| "ironclad.localhost".into()),
            templates_dir: vars.parse_or("TEMPLATES_DIR", PathBuf::from("templates"))?,
        })
    }
}

/// Reads variables, turning "missing" and "unparsable" into errors naming the variable. Each layer
/// reads its own settings through it (`AuthConfig::from_vars`, `BillingConfig::from_vars`).
pub struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Vars<'a> {
    /// Reads variables through `lookup` (a layer's tests use it to check their settings alone).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError {
            var,
            reason: "is not set".into(),
        })
    }

    pub fn parse_or<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e| ConfigError {
                var,
                reason: format!("{raw:?} is not valid: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_origins(" https://app.example.com, http://localhost:3000 ,").unwrap(),
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(parse_origins("").unwrap().is_empty());
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "ftp://x",
            "*",
        ] {
            assert!(parse_origins(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn hsts_is_on_in_production_only_unless_configured() {
        let http = |env, vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup =
                move |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            HttpConfig::from_vars(&Vars::new(&lookup), env).unwrap()
        };
        assert_eq!(
            http(Environment::Production, &[]).hsts_max_age_secs,
            Some(31_536_000)
        );
        assert_eq!(http(Environment::Development, &[]).hsts_max_age_secs, None);
        let off = http(Environment::Production, &[("HTTP_HSTS_MAX_AGE_SECS", "0")]);
        assert_eq!(off.hsts_max_age_secs, None);
        let on = http(
            Environment::Development,
            &[("HTTP_HSTS_MAX_AGE_SECS", "600")],
        );
        assert_eq!(on.hsts_max_age_secs, Some(600));
    }
}
