//! The billing layer's Prometheus series: webhook deliveries (ack time by outcome), inbox
//! processing (lag from receipt to applied, by event type and outcome), the inbox's depth and
//! oldest unprocessed event, and subscriptions by status, MRR and MRR at risk (the last ones read
//! from the database at each scrape).
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;

use super::subscriptions;
use crate::metrics::{HistogramFamily, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    /// received | duplicate | invalid | failed
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessedLabels {
    event_type: String,
    /// applied | ignored | rejected | unhandled_type | unknown_order | unknown_customer | failed |
    /// dead
    outcome: &'static str,
}

#[derive(Clone)]
pub struct BillingMetrics {
    deliveries: HistogramFamily<DeliveryLabels>,
    processed: HistogramFamily<ProcessedLabels>,
}

// Per status, each count matching a partial index (no scan of the processed history); `oldest` is
// the age of the oldest event not processed yet (0 when none).
const INBOX_DEPTH: &str = "\
    SELECT 'pending' AS label, count(*)::float8 AS value FROM stripe_events WHERE status = 'pending' \
    UNION ALL \
    SELECT 'processing', count(*)::float8 FROM stripe_events WHERE status = 'processing' \
    UNION ALL \
    SELECT 'dead', count(*)::float8 FROM stripe_events \
    WHERE status = 'dead' AND (status <> 'processed' OR outcome IN ('unknown_order', 'unknown_customer', 'unhandled_type', 'rejected'))";
const INBOX_OLDEST: &str = "SELECT NULL::text AS label, coalesce(extract(epoch FROM now() - least( \
        (SELECT min(received_at) FROM stripe_events WHERE status = 'pending'), \
        (SELECT min(received_at) FROM stripe_events WHERE status = 'processing'))), 0)::float8 AS value";

impl BillingMetrics {
    pub fn register(metrics: &mut Metrics) -> Self {
        metrics.gauge_from_sql(
            "stripe_inbox_events",
            "Stripe events in the inbox not processed, by status",
            "status",
            INBOX_DEPTH,
        );
        metrics.gauge_from_sql(
            "stripe_inbox_oldest_unprocessed_age_seconds",
            "Age of the oldest Stripe event not processed yet",
            "",
            INBOX_OLDEST,
        );
        metrics.gauge_from_sql(
            "subscriptions",
            "Subscriptions (our copy of Stripe's), by status",
            "status",
            subscriptions::SUBSCRIPTIONS_BY_STATUS,
        );
        metrics.gauge_from_sql(
            "billing_mrr",
            "Monthly recurring revenue (active, past due, unpaid), smallest currency unit",
            "currency",
            subscriptions::MRR_BY_CURRENCY,
        );
        metrics.gauge_from_sql(
            "billing_mrr_at_risk",
            "Monthly recurring revenue past due or unpaid, smallest currency unit",
            "currency",
            subscriptions::MRR_AT_RISK_BY_CURRENCY,
        );
        Self {
            deliveries: metrics.histogram(
                "webhook_duration_seconds",
                "Stripe webhook deliveries: time to acknowledge, by outcome",
            ),
            processed: metrics.histogram(
                "stripe_event_processing_lag_seconds",
                "Stripe events processed: time from receipt to applied, by event type and outcome",
            ),
        }
    }

    pub fn observe_delivery(&self, outcome: &'static str, elapsed: Duration) {
        self.deliveries
            .get_or_create(&DeliveryLabels { outcome })
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_processed(&self, event_type: &str, outcome: &'static str, lag: Duration) {
        self.processed
            .get_or_create(&ProcessedLabels {
                event_type: event_type.to_owned(),
                outcome,
            })
            .observe(lag.as_secs_f64());
    }
}
