//! The usage layer's Prometheus series: units committed and reserves refused, by meter, and the
//! current periods' use by meter (read from the counters at each scrape).
use prometheus_client::{encoding::EncodeLabelSet, metrics::counter::Counter};

use super::error::Scope;
use crate::metrics::Metrics;

type Family<L> = prometheus_client::metrics::family::Family<L, Counter>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MeterLabels {
    meter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    meter: String,
    /// org | member
    scope: &'static str,
}

/// Use in the periods running now, by meter.
const USED_NOW: &str = "SELECT meter AS label, sum(used)::float8 AS value FROM usage_counters \
     WHERE period_end > now() GROUP BY meter";

#[derive(Clone, Debug)]
pub struct UsageMetrics {
    committed: Family<MeterLabels>,
    refused: Family<RefusalLabels>,
}

impl UsageMetrics {
    pub fn register(metrics: &mut Metrics) -> Self {
        metrics.gauge_from_sql(
            "usage_used",
            "Units used in the periods running now, by meter",
            "meter",
            USED_NOW,
        );
        Self {
            committed: metrics.counter("usage_committed", "Units committed, by meter"),
            refused: metrics.counter(
                "usage_refusals",
                "Reserves refused at a limit, by meter and whose limit",
            ),
        }
    }

    pub fn committed(&self, meter: &str, units: i64) {
        self.committed
            .get_or_create(&MeterLabels {
                meter: meter.to_owned(),
            })
            .inc_by(units.max(0) as u64);
    }

    pub fn refused(&self, meter: &str, scope: Scope) {
        self.refused
            .get_or_create(&RefusalLabels {
                meter: meter.to_owned(),
                scope: scope.as_str(),
            })
            .inc();
    }
}
