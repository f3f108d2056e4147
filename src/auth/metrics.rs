//! The auth layer's Prometheus series: how logins and second-factor checks end.
use prometheus_client::metrics::{counter::Counter, family::Family};

use crate::metrics::{Metrics, OutcomeLabels};

#[derive(Clone)]
pub struct AuthMetrics {
    logins: Family<OutcomeLabels, Counter>,
    mfa_verifications: Family<OutcomeLabels, Counter>,
}

impl AuthMetrics {
    pub fn register(metrics: &mut Metrics) -> Self {
        Self {
            logins: metrics.counter("logins", "Login attempts by outcome"),
            mfa_verifications: metrics
                .counter("mfa_verifications", "MFA code verifications by outcome"),
        }
    }

    pub fn count_login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn count_mfa_verification(&self, outcome: &'static str) {
        self.mfa_verifications
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}
