//! Billing's operator routes (under `/admin`): who may use them, and that each repairs what it
//! promises — a webhook event replayed applies once, a stuck order ends where its Checkout Session
//! (or, for a delayed payment, its PaymentIntent) says.
mod access;
mod delayed_payments;
mod stuck_orders;
mod webhook_review;

use serde_json::Value;

use crate::support::{TestApp, auth::admin};

/// Reconciles every stuck order at once (as the periodic sweep does) and returns the results.
async fn sweep(app: &TestApp, token: &str) -> Value {
    admin(
        app,
        "POST",
        "/stuck-orders/reconcile?older_than_secs=0",
        token,
    )
    .await
    .body
}
