//! The billing layer's Prometheus series: how long each webhook took, by event type and outcome.
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;

use crate::metrics::{HistogramFamily, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event_type: String,
    /// applied | duplicate | ignored | failed | …
    outcome: &'static str,
}

#[derive(Clone)]
pub struct BillingMetrics {
    webhooks: HistogramFamily<WebhookLabels>,
}

impl BillingMetrics {
    pub fn register(metrics: &mut Metrics) -> Self {
        Self {
            webhooks: metrics.histogram(
                "webhook_duration_seconds",
                "Stripe webhook handling time by event type and outcome",
            ),
        }
    }

    pub fn observe_webhook(&self, event_type: &str, outcome: &'static str, elapsed: Duration) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                event_type: event_type.to_owned(),
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }
}
