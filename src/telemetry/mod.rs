//! Logging and tracing. Logs: JSON lines in production (one object per event, with the enclosing
//! spans' fields such as `request_id`), readable colour output in development; `RUST_LOG`
//! overrides the default filter. Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every span is
//! also exported over OTLP/HTTP (`otlp`), with W3C trace context carried from a request's
//! `traceparent` header into the jobs it queues ([`traceparent`], [`continue_trace`]).
use std::{
    collections::HashMap,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{global, trace::TraceContextExt, trace::TracerProvider as _};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{Environment, TelemetryConfig};

mod otlp;

/// Whether spans are exported (so trace context is worth carrying).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The running telemetry: dropping it exports the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every finished span now (tests; before a planned exit).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the subscriber. Call inside the Tokio runtime (trace exports run on it).
pub fn init(env: Environment, config: &TelemetryConfig) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=info,apalis=warn")
    });
    let exporter = config
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| otlp::provider(config, endpoint));
    let (provider, failed) = match exporter {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    let traces = provider.as_ref().map(|provider| {
        global::set_text_map_propagator(TraceContextPropagator::new());
        EXPORTING.store(true, Ordering::Relaxed);
        tracing_opentelemetry::layer().with_tracer(provider.tracer("ironclad"))
    });
    let registry = tracing_subscriber::registry().with(filter).with(traces);
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
    if let Some(error) = failed {
        tracing::error!(
            error = format!("{error:#}"),
            "trace export is off: OTLP exporter not built"
        );
    }
    Telemetry { provider }
}

/// Whether spans are exported: work that only trace context needs can be skipped otherwise.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The W3C `traceparent` of the current span, when traces are exported: what a job queued now
/// carries in its metadata.
pub fn traceparent() -> Option<String> {
    if !EXPORTING.load(Ordering::Relaxed) {
        return None;
    }
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes `span` (not yet entered) a child of the trace `traceparent` names: a request's header, a
/// job's metadata, an order's stored trace. None, empty or malformed leaves it a root.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|t| !t.is_empty()) else {
        return;
    };
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = global::get_text_map_propagator(|p| p.extract(&carrier));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
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
