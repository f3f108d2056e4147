//! Operator tools: who may use them, and that each repairs what it promises — dead jobs run again,
//! a webhook event replayed applies once, a stuck order ends where its Checkout Session (or, for a
//! delayed payment, its PaymentIntent) says. The helpers below are the admin tests' own.
mod access;
mod dead_jobs;
mod delayed_payments;
mod stuck_orders;
mod webhook_review;

use serde_json::Value;

use crate::support::{
    TestApp,
    auth::{PASSWORD, Response, call, enable_mfa, login, tokens_of},
};

/// An admin's first session, stepped up with a fresh second factor (aal2).
async fn admin_token(app: &TestApp) -> String {
    ironclad::auth::users::create_admin(
        &app.db,
        crate::support::auth::new_account("root@example.com", PASSWORD),
    )
    .await
    .unwrap();
    let (access, _) = tokens_of(&login(app, "root@example.com", PASSWORD).await);
    enable_mfa(app, &access).await.access_token
}

async fn admin(app: &TestApp, method: &str, path: &str, token: &str) -> Response {
    let r = call(app, method, &format!("/admin{path}"), Some(token), None).await;
    assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    r
}

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
