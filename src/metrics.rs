//! Prometheus metrics, served as text at `GET /metrics` (by [`crate::http::scrape`]).
//!
//! Counters and histograms are updated in-process by the code that knows the outcome. This module
//! owns the registry and the infrastructure's own series (HTTP, idempotency keys, the job queue);
//! a layer registers its own series while the composition root builds it ([`Metrics::counter`],
//! [`Metrics::histogram`], [`Metrics::gauge_from_sql`]; e.g. `auth::AuthMetrics`), so no layer's
//! metrics are named here. Queue gauges (and a layer's SQL gauges) are read from the database at
//! scrape time, so every instance reports the same, true depth.
use std::time::Duration;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use sea_orm::{ConnectionTrait, FromQueryResult};

use crate::db;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// The label of a counter of outcomes (`ok`, `invalid_code`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// A histogram per label set, with the latency buckets every histogram here uses.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    idempotency: Family<OutcomeLabels, Counter>,
    jobs: Family<JobLabels, Gauge>,
    oldest_pending: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    sql_gauges: Vec<SqlGauge>,
}

/// A gauge family a layer defined by a query: refreshed from the database at every scrape.
struct SqlGauge {
    /// The label's name; empty for a gauge without labels.
    label: &'static str,
    /// Returns rows `(label text, value float8)`.
    sql: &'static str,
    family: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ironclad");
        let metrics = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            idempotency: Family::default(),
            jobs: Family::default(),
            oldest_pending: Family::default(),
            sql_gauges: Vec::new(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            metrics.http_duration.clone(),
        );
        registry.register(
            "idempotency_keys",
            "Idempotency-Key lookups by outcome (new, replayed, in_flight, mismatch)",
            metrics.idempotency.clone(),
        );
        registry.register("jobs", "Jobs by queue and status", metrics.jobs.clone());
        registry.register(
            "jobs_oldest_pending_age_seconds",
            "Age of the oldest job due to run but not started, by queue",
            metrics.oldest_pending.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Registers a layer's counter family (`ironclad_<name>_total`); call while building the layer.
    pub fn counter<L>(&mut self, name: &str, help: &str) -> Family<L, Counter>
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = Family::<L, Counter>::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// Registers a layer's latency histogram family (seconds, 0.5 ms to ~16 s).
    pub fn histogram<L>(&mut self, name: &str, help: &str) -> HistogramFamily<L>
    where
        L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = HistogramFamily::<L>::new_with_constructor(latency_histogram);
        self.registry.register(name, help, family.clone());
        family
    }

    /// Registers a layer's gauge family read by `sql` at every scrape: each row `(label, value)`
    /// (text, float8) sets the gauge whose `label_name` label is `label` (no label when empty).
    pub fn gauge_from_sql(
        &mut self,
        name: &str,
        help: &str,
        label_name: &'static str,
        sql: &'static str,
    ) {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        self.sql_gauges.push(SqlGauge {
            label: label_name,
            sql,
            family,
        });
    }

    pub fn count_idempotency(&self, outcome: &'static str) {
        self.idempotency
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Refreshes the queue gauges from the database, then renders everything.
    pub async fn render(&self, db: &impl ConnectionTrait) -> Result<String, sea_orm::DbErr> {
        #[derive(FromQueryResult)]
        struct QueueRow {
            job_type: String,
            status: String,
            jobs: i64,
            oldest_pending_secs: Option<f64>,
        }
        let rows = QueueRow::find_by_statement(db::stmt(
            "SELECT job_type, status, count(*) AS jobs,
                    extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
                        AS oldest_pending_secs
             FROM apalis.jobs GROUP BY job_type, status",
            [],
        ))
        .all(db)
        .await?;
        self.jobs.clear();
        self.oldest_pending.clear();
        for row in rows {
            self.jobs
                .get_or_create(&JobLabels {
                    queue: row.job_type.clone(),
                    status: row.status.clone(),
                })
                .set(row.jobs);
            let waiting = row.status == "Pending" || row.status == "Failed";
            if let (true, Some(age)) = (waiting, row.oldest_pending_secs) {
                let gauge = self.oldest_pending.get_or_create(&QueueLabels {
                    queue: row.job_type,
                });
                gauge.set(gauge.get().max(age));
            }
        }
        #[derive(FromQueryResult)]
        struct GaugeRow {
            label: Option<String>,
            value: f64,
        }
        for gauge in &self.sql_gauges {
            let rows = GaugeRow::find_by_statement(db::stmt(gauge.sql, []))
                .all(db)
                .await?;
            gauge.family.clear();
            for row in rows {
                let labels = match (gauge.label, row.label) {
                    ("", _) | (_, None) => Vec::new(),
                    (name, Some(value)) => vec![(name.to_owned(), value)],
                };
                gauge.family.get_or_create(&labels).set(row.value);
            }
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        Ok(text)
    }
}

/// Records every request's route, status and latency. The route is the matched pattern (bounded
/// cardinality), `unmatched` for requests no route took.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let started = std::time::Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().to_string();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        metrics.observe_http(
            &method,
            &route,
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    Ok(response)
}
