//! Settings of the auth layer (`AUTH_*`, `JWT_*` variables). Every one is explained in `.env.example`.
//!
//! Outside production the keys default to fixed, publicly known development values (see the `DEV_*`
//! constants): convenient for `just dev` and the tests, worthless as secrets. Production requires real
//! keys and refuses the development ones.
use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};

use super::tokens::JwtKeys;
use crate::config::{ConfigError, Environment, Vars};

/// DEVELOPMENT ONLY — publicly known. Base64 of 32 bytes.
pub const DEV_JWT_SECRET: &str = "ZGV2LW9ubHktand0LXNlY3JldC1kby1ub3QtdXNlLSE=";
pub const DEV_JWT_KID: &str = "dev-1";
/// DEVELOPMENT ONLY — publicly known. Base64 of 32 bytes.
pub const DEV_TOTP_KEY: &str = "ZGV2LW9ubHktdG90cC1lbmMta2V5LWRvLW5vdC11c2U=";

#[derive(Clone)]
pub struct AuthConfig {
    pub jwt: JwtKeys,
    /// AES-256-GCM key encrypting TOTP secrets at rest.
    pub totp_key: [u8; 32],
    /// The product's name: shown in authenticator apps, and a word no password may be built from.
    pub totp_issuer: String,
    pub access_token_ttl: Duration,
    /// Absolute lifetime of a session (and so of its refresh tokens).
    pub session_ttl: Duration,
    pub mfa_token_ttl: Duration,
    pub email_verification_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub throttle: ThrottleConfig,
    /// Take the client IP from `Forwarded`/`X-Forwarded-For` (only behind a proxy that sets them).
    pub trust_proxy_headers: bool,
}

/// Brute-force limits: attempts allowed per key within `window`.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    pub window: Duration,
    pub login_per_account: u32,
    pub login_per_ip: u32,
    pub mfa_per_account: u32,
    pub mfa_per_ip: u32,
    /// Registrations per IP (every one counts: it is an email sent to someone).
    pub register_per_ip: u32,
    /// Password-reset requests per IP, and per email address (so nobody can flood one mailbox).
    pub forgot_password_per_ip: u32,
    pub forgot_password_per_account: u32,
    /// Requests for a new verification link per IP, and per email address.
    pub resend_verification_per_ip: u32,
    pub resend_verification_per_account: u32,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt", &self.jwt)
            .field("totp_key", &"[redacted]")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("session_ttl", &self.session_ttl)
            .field("throttle", &self.throttle)
            .field("trust_proxy_headers", &self.trust_proxy_headers)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    pub fn from_vars(vars: &Vars<'_>, env: Environment) -> Result<Self, ConfigError> {
        let production = env == Environment::Production;
        let secret = |var: &'static str, dev: &str| -> Result<Vec<u8>, ConfigError> {
            let raw = match vars.get(var) {
                Some(raw) => raw,
                None if production => return Err(required_in_production(var)),
                None => dev.to_owned(),
            };
            if production && raw == dev {
                return Err(ConfigError {
                    var,
                    reason: "the development default must not be used in production".into(),
                });
            }
            decode_key(var, &raw)
        };

        let current_secret = secret("JWT_SECRET", DEV_JWT_SECRET)?;
        let current_kid = match vars.get("JWT_KID") {
            Some(kid) => kid,
            None if production => return Err(required_in_production("JWT_KID")),
            None => DEV_JWT_KID.to_owned(),
        };
        let previous = match (
            vars.get("JWT_PREVIOUS_KID"),
            vars.get("JWT_PREVIOUS_SECRET"),
        ) {
            (None, None) => None,
            (Some(kid), Some(raw)) => {
                if kid == current_kid {
                    return Err(ConfigError {
                        var: "JWT_PREVIOUS_KID",
                        reason: "must differ from JWT_KID".into(),
                    });
                }
                Some((kid, decode_key("JWT_PREVIOUS_SECRET", &raw)?))
            }
            (Some(_), None) => {
                return Err(required_with("JWT_PREVIOUS_SECRET", "JWT_PREVIOUS_KID"));
            }
            (None, Some(_)) => {
                return Err(required_with("JWT_PREVIOUS_KID", "JWT_PREVIOUS_SECRET"));
            }
        };
        let jwt = JwtKeys::new(
            (current_kid, current_secret),
            previous,
            vars.get("JWT_ISSUER").unwrap_or_else(|| "ironclad".into()),
            vars.get("JWT_AUDIENCE")
                .unwrap_or_else(|| "ironclad-api".into()),
            Duration::from_secs(vars.parse_or("JWT_LEEWAY_SECS", 30)?),
        );

        let totp_key: [u8; 32] = secret("AUTH_TOTP_ENCRYPTION_KEY", DEV_TOTP_KEY)?
            .try_into()
            .map_err(|_| ConfigError {
                var: "AUTH_TOTP_ENCRYPTION_KEY",
                reason: "must be exactly 32 bytes (base64), e.g. `openssl rand -base64 32`".into(),
            })?;

        let secs = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            let value: u64 = vars.parse_or(var, default)?;
            if value == 0 {
                return Err(ConfigError {
                    var,
                    reason: "must be greater than 0".into(),
                });
            }
            Ok(Duration::from_secs(value))
        };
        Ok(Self {
            jwt,
            totp_key,
            totp_issuer: vars
                .get("AUTH_TOTP_ISSUER")
                .unwrap_or_else(|| "Ironclad".into()),
            access_token_ttl: secs("AUTH_ACCESS_TOKEN_TTL_SECS", 15 * 60)?,
            session_ttl: secs("AUTH_SESSION_TTL_SECS", 30 * 24 * 3600)?,
            mfa_token_ttl: secs("AUTH_MFA_TOKEN_TTL_SECS", 5 * 60)?,
            email_verification_ttl: secs("AUTH_EMAIL_VERIFICATION_TTL_SECS", 24 * 3600)?,
            password_reset_ttl: secs("AUTH_PASSWORD_RESET_TTL_SECS", 3600)?,
            throttle: ThrottleConfig {
                window: secs("AUTH_THROTTLE_WINDOW_SECS", 15 * 60)?,
                login_per_account: vars.parse_or("AUTH_LOGIN_MAX_ATTEMPTS_PER_ACCOUNT", 10)?,
                login_per_ip: vars.parse_or("AUTH_LOGIN_MAX_ATTEMPTS_PER_IP", 100)?,
                mfa_per_account: vars.parse_or("AUTH_MFA_MAX_ATTEMPTS_PER_ACCOUNT", 10)?,
                mfa_per_ip: vars.parse_or("AUTH_MFA_MAX_ATTEMPTS_PER_IP", 100)?,
                register_per_ip: vars.parse_or("AUTH_REGISTER_MAX_PER_IP", 30)?,
                forgot_password_per_ip: vars.parse_or("AUTH_FORGOT_PASSWORD_MAX_PER_IP", 30)?,
                forgot_password_per_account: vars
                    .parse_or("AUTH_FORGOT_PASSWORD_MAX_PER_ACCOUNT", 5)?,
                resend_verification_per_ip: vars
                    .parse_or("AUTH_VERIFY_EMAIL_RESEND_MAX_PER_IP", 30)?,
                resend_verification_per_account: vars
                    .parse_or("AUTH_VERIFY_EMAIL_RESEND_MAX_PER_ACCOUNT", 5)?,
            },
            trust_proxy_headers: vars.parse_or("AUTH_TRUST_PROXY_HEADERS", false)?,
        })
    }
}

fn decode_key(var: &'static str, raw: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = STANDARD.decode(raw.trim()).map_err(|e| ConfigError {
        var,
        reason: format!("must be base64: {e}"),
    })?;
    if bytes.len() < 32 {
        return Err(ConfigError {
            var,
            reason: format!(
                "must be at least 32 bytes once base64-decoded (got {}); use `openssl rand -base64 32`",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

fn required_in_production(var: &'static str) -> ConfigError {
    ConfigError {
        var,
        reason: "required in production (see .env.example)".into(),
    }
}

fn required_with(var: &'static str, other: &str) -> ConfigError {
    ConfigError {
        var,
        reason: format!("required when {other} is set"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn auth(pairs: &[(&str, &str)], env: Environment) -> Result<AuthConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |k: &str| map.get(k).cloned();
        AuthConfig::from_vars(&Vars::new(&lookup), env)
    }

    #[test]
    fn development_has_working_defaults() {
        let cfg = auth(&[], Environment::Development).unwrap();
        assert_eq!(cfg.access_token_ttl, Duration::from_secs(900));
        assert_eq!(cfg.jwt.current_kid(), DEV_JWT_KID);
        assert!(!cfg.trust_proxy_headers);
    }

    #[test]
    fn production_requires_real_keys_and_names_the_variable() {
        let err = auth(&[], Environment::Production).unwrap_err();
        assert_eq!(err.var, "JWT_SECRET");
        let key = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0NQ==";
        let err = auth(&[("JWT_SECRET", key)], Environment::Production).unwrap_err();
        assert_eq!(err.var, "JWT_KID");
        let err = auth(
            &[("JWT_SECRET", key), ("JWT_KID", "k1")],
            Environment::Production,
        )
        .unwrap_err();
        assert_eq!(err.var, "AUTH_TOTP_ENCRYPTION_KEY");
        let err = auth(
            &[
                ("JWT_SECRET", DEV_JWT_SECRET),
                ("JWT_KID", "k1"),
                ("AUTH_TOTP_ENCRYPTION_KEY", key),
            ],
            Environment::Production,
        )
        .unwrap_err();
        assert_eq!(err.var, "JWT_SECRET", "the dev key is refused");
    }

    #[test]
    fn keys_must_be_long_enough_and_previous_key_comes_in_pairs() {
        let err = auth(&[("JWT_SECRET", "c2hvcnQ=")], Environment::Test).unwrap_err();
        assert_eq!(err.var, "JWT_SECRET");
        let err = auth(&[("JWT_PREVIOUS_KID", "old")], Environment::Test).unwrap_err();
        assert_eq!(err.var, "JWT_PREVIOUS_SECRET");
        let err = auth(
            &[("AUTH_TOTP_ENCRYPTION_KEY", &STANDARD.encode([7u8; 40]))],
            Environment::Test,
        )
        .unwrap_err();
        assert_eq!(err.var, "AUTH_TOTP_ENCRYPTION_KEY");
    }
}
