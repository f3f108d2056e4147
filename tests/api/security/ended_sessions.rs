//! A token whose session ended is refused at once, on every route, and a deleted account's token
//! gets a 401, never a 500.
use serde_json::json;

use crate::support::{auth::*, billing::BillingApp, billing::PRO};

/// Every bearer route of the OpenAPI document answers `token` with 401 `unauthenticated`.
async fn refused_everywhere(app: &BillingApp, token: &str) {
    for (method, path) in bearer_operations(app, "").await {
        let r = call(app, &method, &path, Some(token), Some(json!({}))).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(
            r.problem_type(),
            "urn:ironclad:problem:unauthenticated",
            "{method} {path}"
        );
    }
    let checkout = app
        .post_checkout(
            token,
            Some("after-the-end"),
            &json!({"product_id": PRO, "quantity": 1}),
        )
        .await;
    assert_eq!(checkout.status, 401, "{}", checkout.body);
}

#[tokio::test]
async fn after_logout_all_the_old_access_token_works_nowhere() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;
    let bought = app
        .post_checkout(
            &ada.token,
            Some("k1"),
            &json!({"product_id": PRO, "quantity": 1}),
        )
        .await;
    assert_eq!(bought.status, 201, "{}", bought.body);
    assert_eq!(
        app.get_as(&ada.token, "/billing/licenses").await.status,
        200
    );

    let out = post(&app, "/auth/logout-all", Some(&ada.token), json!({})).await;
    assert_eq!(out.status, 204);
    // The token has most of its 15 minutes left; the session behind it is gone.
    refused_everywhere(&app, &ada.token).await;
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_tokens_at_once() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;
    let (laptop, _) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    let changed = post(
        &app,
        "/me/password",
        Some(&ada.token),
        json!({"current_password": PASSWORD, "new_password": "plum tectonic nightjar ferry"}),
    )
    .await;
    assert_eq!(changed.status, 204, "{}", changed.body);
    refused_everywhere(&app, &laptop).await;
    // The session that changed it carries on.
    assert_eq!(
        app.get_as(&ada.token, "/billing/licenses").await.status,
        200
    );
}

#[tokio::test]
async fn a_deleted_accounts_token_gets_401_not_500() {
    let app = BillingApp::spawn().await;
    let bob = app.customer("bob@example.com").await;
    app.sql(&format!("DELETE FROM users WHERE id = '{}'", bob.id))
        .await;
    refused_everywhere(&app, &bob.token).await;
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
}
