//! Logging: JSON lines in production (one object per event, with the enclosing spans' fields such as
//! `request_id`), readable colour output in development. `RUST_LOG` overrides the default filter.
use std::future::Future;

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

/// The id of the request a piece of work serves: set by the HTTP middleware for a request's task,
/// read by the job queue so jobs a request enqueues carry it into their logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

tokio::task_local! {
    static CURRENT: RequestId;
}

impl RequestId {
    /// The id of the request being handled on this task, if any.
    pub fn current() -> Option<RequestId> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `work` with this as the current request id.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}
