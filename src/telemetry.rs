//! Logging: JSON lines in production (one object per event, with the enclosing spans' fields such as
//! `request_id`), readable colour output in development. `RUST_LOG` overrides the default filter.
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::Environment;

pub fn init(env: Environment) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=info,apalis=warn")
    });
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: tests and tools may have installed a subscriber already.
    let _ = match env {
        Environment::Production => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        Environment::Development | Environment::Test => {
            registry.with(fmt::layer().compact()).try_init()
        }
    };
}
