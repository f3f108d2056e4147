//! Settings of the billing layer (`STRIPE_*`, `BILLING_*` variables). Outside production every one
//! has a development default, so a fresh clone starts; production requires the secrets and URLs and
//! names the missing variable.
use std::time::Duration;

use secrecy::SecretString;

use super::subscriptions::SubscriptionConfig;
use crate::config::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// Stripe secret API key (`sk_live_...` / `sk_test_...`).
    pub stripe_secret_key: SecretString,
    /// Base URL of the Stripe API. Tests (and offline development) point it at a local fake.
    pub stripe_api_base: String,
    /// How long one Stripe API call may take before checkout answers 502.
    pub stripe_timeout: Duration,
    /// Webhook signing secrets (`whsec_...`). Several during a rotation: an event signed with any of
    /// them is accepted.
    pub webhook_secrets: Vec<SecretString>,
    /// How old (or how far in the future) a webhook signature timestamp may be: Stripe's 5 minutes.
    pub webhook_tolerance: Duration,
    /// Where Stripe sends the customer after paying / giving up. `{CHECKOUT_SESSION_ID}` is
    /// substituted by Stripe.
    pub success_url: String,
    pub cancel_url: String,
    /// The currency checkout sells in (ISO 4217, lower case): each product's price in it is used.
    pub currency: String,
    /// An order still `pending_payment` or `payment_processing` this long after checkout is
    /// "stuck": reconciliation asks Stripe what became of its payment. Webhooks normally land within
    /// seconds.
    pub reconcile_after: Duration,
    /// How often the worker process sweeps stuck orders; zero turns the sweep off.
    pub reconcile_interval: Duration,
    /// The Stripe events inbox: how deliveries are batched and events processed.
    pub inbox: InboxConfig,
    /// The most Stripe API requests per second this process sends (`STRIPE_MAX_REQUESTS_PER_SEC`):
    /// every call waits its turn, and a 429 pauses them all.
    pub stripe_max_requests_per_sec: u32,
    /// Recurring billing.
    pub subscriptions: SubscriptionConfig,
}

/// The inbox's settings (`STRIPE_INBOX_*`): see `stripe/inbox.rs` and `stripe/processor/`.
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// Writer tasks: while one commits a batch of deliveries, the next gathers.
    pub writers: usize,
    /// The most deliveries in one insert.
    pub batch_max: usize,
    /// How long a writer waits for more deliveries once it has one (zero: only those waiting).
    pub batch_window: Duration,
    /// Events one processor claims at a time (at most one per Stripe object).
    pub claim_batch: usize,
    /// Apply transactions one processor runs at once.
    pub lanes: usize,
    /// Events one apply transaction takes (one commit for all; one by one if any fails).
    pub apply_batch: usize,
    /// How long a claim holds; a claim its process did not finish (it died) returns to pending then.
    pub claim_ttl: Duration,
    /// How often an idle processor looks for due events (new ones wake it at once).
    pub poll_interval: Duration,
    /// Attempts before an event is dead (kept for review and replay).
    pub max_attempts: i32,
    /// The first retry's delay; it doubles per attempt, capped at `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Webhook deliveries per second at which this process' processors yield to the ingest
    /// (`processor/yielding.rs`); 0 never yields.
    pub yield_at: u32,
    /// Apply transactions while yielding.
    pub yield_lanes: usize,
    /// Share of the time a lane applies while yielding, in percent (it rests the rest).
    pub yield_duty_pct: u32,
}

impl InboxConfig {
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let at_least_one = |var: &'static str, value: usize| {
            if value == 0 {
                return Err(ConfigError {
                    var,
                    reason: "must be at least 1".into(),
                });
            }
            Ok(value)
        };
        let config = Self {
            writers: at_least_one(
                "STRIPE_INBOX_WRITERS",
                vars.parse_or("STRIPE_INBOX_WRITERS", 2)?,
            )?,
            batch_max: at_least_one(
                "STRIPE_INBOX_BATCH_MAX",
                vars.parse_or("STRIPE_INBOX_BATCH_MAX", 128)?,
            )?,
            batch_window: Duration::from_micros(vars.parse_or("STRIPE_INBOX_BATCH_WINDOW_US", 0)?),
            claim_batch: at_least_one(
                "STRIPE_INBOX_CLAIM_BATCH",
                vars.parse_or("STRIPE_INBOX_CLAIM_BATCH", 256)?,
            )?,
            lanes: at_least_one(
                "STRIPE_INBOX_LANES",
                vars.parse_or("STRIPE_INBOX_LANES", 8)?,
            )?,
            apply_batch: at_least_one(
                "STRIPE_INBOX_APPLY_BATCH",
                vars.parse_or("STRIPE_INBOX_APPLY_BATCH", 16)?,
            )?,
            claim_ttl: Duration::from_secs(vars.parse_or("STRIPE_INBOX_CLAIM_TTL_SECS", 60)?),
            poll_interval: Duration::from_millis(vars.parse_or("STRIPE_INBOX_POLL_MS", 1_000)?),
            max_attempts: vars.parse_or("STRIPE_INBOX_MAX_ATTEMPTS", 8)?,
            retry_base: Duration::from_secs(vars.parse_or("STRIPE_INBOX_RETRY_BASE_SECS", 2)?),
            retry_max: Duration::from_secs(vars.parse_or("STRIPE_INBOX_RETRY_MAX_SECS", 3_600)?),
            yield_at: vars.parse_or("STRIPE_INBOX_YIELD_AT", 2_000)?,
            yield_lanes: at_least_one(
                "STRIPE_INBOX_YIELD_LANES",
                vars.parse_or("STRIPE_INBOX_YIELD_LANES", 1)?,
            )?,
            yield_duty_pct: vars.parse_or("STRIPE_INBOX_YIELD_DUTY_PCT", 50)?,
        };
        if !(1..=100).contains(&config.yield_duty_pct) {
            return Err(ConfigError {
                var: "STRIPE_INBOX_YIELD_DUTY_PCT",
                reason: "must be between 1 and 100".into(),
            });
        }
        if config.batch_max > 4_096 {
            return Err(ConfigError {
                var: "STRIPE_INBOX_BATCH_MAX",
                reason: "must be at most 4096 (8 parameters per row, 65535 per statement)".into(),
            });
        }
        if config.max_attempts < 1 {
            return Err(ConfigError {
                var: "STRIPE_INBOX_MAX_ATTEMPTS",
                reason: "must be at least 1".into(),
            });
        }
        if config.claim_ttl < Duration::from_secs(5) {
            return Err(ConfigError {
                var: "STRIPE_INBOX_CLAIM_TTL_SECS",
                reason: "must be at least 5: a claim must outlive the work it covers".into(),
            });
        }
        Ok(config)
    }
}

const DEV_SECRET_KEY: &str = "sk_test_ironclad_development";
const DEV_WEBHOOK_SECRET: &str = "whsec_ironclad_development";

impl BillingConfig {
    pub fn from_vars(vars: &Vars<'_>, env: Environment) -> Result<Self, ConfigError> {
        let production = env == Environment::Production;
        // Required in production; a development default elsewhere.
        let setting = |var: &'static str, dev: &str| -> Result<String, ConfigError> {
            match vars.get(var) {
                Some(value) => Ok(value),
                None if production => Err(ConfigError {
                    var,
                    reason: "is required in production".into(),
                }),
                None => Ok(dev.to_owned()),
            }
        };
        let webhook_secrets: Vec<SecretString> =
            setting("STRIPE_WEBHOOK_SECRETS", DEV_WEBHOOK_SECRET)?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| SecretString::from(s.to_owned()))
                .collect();
        if webhook_secrets.is_empty() {
            return Err(ConfigError {
                var: "STRIPE_WEBHOOK_SECRETS",
                reason: "lists no secret".into(),
            });
        }
        let currency = vars
            .get("BILLING_CURRENCY")
            .unwrap_or_else(|| "usd".into())
            .trim()
            .to_owned();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ConfigError {
                var: "BILLING_CURRENCY",
                reason: format!("{currency:?} is not a lower-case ISO 4217 code such as usd"),
            });
        }
        let stripe_api_base = vars
            .get("STRIPE_API_BASE")
            .unwrap_or_else(|| "https://api.stripe.com/".into());
        if !(stripe_api_base.starts_with("https://") || stripe_api_base.starts_with("http://")) {
            return Err(ConfigError {
                var: "STRIPE_API_BASE",
                reason: format!("{stripe_api_base:?} is not an http(s) URL"),
            });
        }
        let stripe_secret_key = setting("STRIPE_SECRET_KEY", DEV_SECRET_KEY)?;
        // Stripe's documented limits are about 100 requests/s in live mode and 25 in test mode.
        let live =
            stripe_secret_key.starts_with("sk_live_") || stripe_secret_key.starts_with("rk_live_");
        let stripe_max_requests_per_sec: u32 =
            vars.parse_or("STRIPE_MAX_REQUESTS_PER_SEC", if live { 80 } else { 20 })?;
        if stripe_max_requests_per_sec == 0 {
            return Err(ConfigError {
                var: "STRIPE_MAX_REQUESTS_PER_SEC",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            stripe_secret_key: stripe_secret_key.into(),
            stripe_api_base,
            stripe_timeout: Duration::from_secs(vars.parse_or("STRIPE_TIMEOUT_SECS", 10)?),
            webhook_secrets,
            webhook_tolerance: Duration::from_secs(
                vars.parse_or("STRIPE_WEBHOOK_TOLERANCE_SECS", 300)?,
            ),
            success_url: setting(
                "BILLING_SUCCESS_URL",
                "http://localhost:3000/billing/success?session_id={CHECKOUT_SESSION_ID}",
            )?,
            cancel_url: setting(
                "BILLING_CANCEL_URL",
                "http://localhost:3000/billing/canceled",
            )?,
            currency,
            reconcile_after: Duration::from_secs(
                vars.parse_or("BILLING_RECONCILE_AFTER_SECS", 1800)?,
            ),
            reconcile_interval: Duration::from_secs(
                vars.parse_or("BILLING_RECONCILE_INTERVAL_SECS", 300)?,
            ),
            inbox: InboxConfig::from_vars(vars)?,
            stripe_max_requests_per_sec,
            subscriptions: SubscriptionConfig::from_vars(vars, env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn config(env: Environment, pairs: &[(&str, &str)]) -> Result<BillingConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |k: &str| map.get(k).cloned();
        BillingConfig::from_vars(&Vars::new(&lookup), env)
    }

    #[test]
    fn development_runs_with_defaults() {
        let cfg = config(Environment::Development, &[]).unwrap();
        assert_eq!(cfg.currency, "usd");
        assert_eq!(cfg.webhook_tolerance, Duration::from_secs(300));
        assert_eq!(cfg.webhook_secrets.len(), 1);
        assert_eq!(cfg.stripe_max_requests_per_sec, 20);
    }

    #[test]
    fn the_stripe_rate_follows_the_key_mode_unless_set() {
        let live = config(Environment::Test, &[("STRIPE_SECRET_KEY", "sk_live_x")]).unwrap();
        assert_eq!(live.stripe_max_requests_per_sec, 80);
        let set = config(
            Environment::Test,
            &[
                ("STRIPE_SECRET_KEY", "sk_live_x"),
                ("STRIPE_MAX_REQUESTS_PER_SEC", "40"),
            ],
        )
        .unwrap();
        assert_eq!(set.stripe_max_requests_per_sec, 40);
        let zero = config(Environment::Test, &[("STRIPE_MAX_REQUESTS_PER_SEC", "0")]).unwrap_err();
        assert_eq!(zero.var, "STRIPE_MAX_REQUESTS_PER_SEC");
        for bad in [
            ("BILLING_PRORATION", "sometimes"),
            ("BILLING_PAST_DUE_GRACE_DAYS", "90"),
        ] {
            assert_eq!(config(Environment::Test, &[bad]).unwrap_err().var, bad.0);
        }
    }

    #[test]
    fn production_names_each_missing_secret() {
        let pairs = [
            ("STRIPE_SECRET_KEY", "sk_live_x"),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_a"),
            ("BILLING_SUCCESS_URL", "https://app.example.com/ok"),
            ("BILLING_CANCEL_URL", "https://app.example.com/cancel"),
            (
                "BILLING_PORTAL_RETURN_URL",
                "https://app.example.com/billing",
            ),
        ];
        assert!(config(Environment::Production, &pairs).is_ok());
        for (missing, _) in pairs {
            let rest: Vec<_> = pairs.into_iter().filter(|(k, _)| *k != missing).collect();
            let err = config(Environment::Production, &rest).unwrap_err();
            assert_eq!(err.var, missing);
        }
    }

    #[test]
    fn webhook_secrets_rotate_as_a_comma_separated_list() {
        let cfg = config(
            Environment::Test,
            &[("STRIPE_WEBHOOK_SECRETS", " whsec_new , whsec_old ,")],
        )
        .unwrap();
        let secrets: Vec<_> = cfg
            .webhook_secrets
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect();
        assert_eq!(secrets, ["whsec_new", "whsec_old"]);
        let err = config(Environment::Test, &[("STRIPE_WEBHOOK_SECRETS", " , ")]).unwrap_err();
        assert_eq!(err.var, "STRIPE_WEBHOOK_SECRETS");
    }

    #[test]
    fn currency_must_be_a_lower_case_code() {
        for bad in ["USD", "us", "dollars"] {
            let err = config(Environment::Test, &[("BILLING_CURRENCY", bad)]).unwrap_err();
            assert_eq!(err.var, "BILLING_CURRENCY");
        }
        let cfg = config(Environment::Test, &[("BILLING_CURRENCY", "eur")]).unwrap();
        assert_eq!(cfg.currency, "eur");
    }
}
