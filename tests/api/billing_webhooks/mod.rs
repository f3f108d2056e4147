//! The Stripe webhook under what Stripe and the network really do: forged and stale deliveries,
//! storms of duplicates, concurrent events for one order, out-of-order events, and a crash in the
//! middle of processing.
mod inbox;
mod payloads;
mod redelivery;
mod refunds;
mod rejected;
mod signatures;

use crate::support::billing::{BILLING_JOBS, BillingApp};

const NOTHING_WRITTEN: [&str; 4] = [
    "SELECT count(*) FROM stripe_events",
    "SELECT count(*) FROM order_events WHERE source = 'stripe'",
    "SELECT count(*) FROM licenses",
    BILLING_JOBS,
];

async fn assert_nothing_written(app: &BillingApp) {
    for sql in NOTHING_WRITTEN {
        assert_eq!(app.count(sql).await, 0, "{sql}");
    }
}
