//! Stuck orders reconciled with their Checkout Session, by hand or by the periodic sweep; an order
//! that never got a session expires once its checkout can no longer be retried.
use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use super::sweep;
use crate::support::auth::{admin, admin_token};
use crate::support::{
    auth::{call, mail_to},
    billing::{BillingApp, PRO},
};

fn pay(app: &BillingApp, session: &Value, payment_intent: &str) {
    let id = session["id"].as_str().unwrap();
    app.stripe
        .update_session(id, |s| *s = fake_stripe::completed(s, payment_intent, true));
}

fn expire(app: &BillingApp, session: &Value) {
    let id = session["id"].as_str().unwrap();
    app.stripe
        .update_session(id, |s| s["status"] = json!("expired"));
}

#[tokio::test]
async fn stuck_orders_are_reconciled_with_their_checkout_session() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let paid = app.pending_order("paid@example.com").await;
    let expired = app.pending_order("expired@example.com").await;
    let open = app.pending_order("open@example.com").await;
    // At Stripe, one was paid and one expired; their webhooks never arrived.
    pay(&app, &paid.session, &paid.payment_intent);
    expire(&app, &expired.session);

    // Younger than BILLING_RECONCILE_AFTER_SECS (30 min by default): not stuck yet.
    assert_eq!(
        admin(&app, "GET", "/stuck-orders", &token).await.body,
        json!([])
    );
    let stuck = admin(&app, "GET", "/stuck-orders?older_than_secs=0", &token)
        .await
        .body;
    assert_eq!(stuck.as_array().unwrap().len(), 3, "{stuck}");

    let r = admin(
        &app,
        "POST",
        &format!("/stuck-orders/{}/reconcile", paid.id),
        &token,
    )
    .await
    .body;
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["status"], "paid");
    assert_eq!(r["session_status"], "complete");
    // Exactly what the webhook would have done: licence, licence email and receipt.
    mail_to(&app, "paid@example.com", "Your Ironclad receipt").await;
    mail_to(&app, "paid@example.com", "Your Ironclad licence").await;
    app.eventually(
        &format!(
            "SELECT count(*) FROM licenses WHERE order_id = '{}'",
            paid.id
        ),
        1,
    )
    .await;

    let all = sweep(&app, &token).await;
    let results: Vec<(String, &str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["order_id"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(results.len(), 2, "{all}");
    assert!(
        results.contains(&(expired.id.to_string(), "applied", "expired")),
        "{all}"
    );
    assert!(
        results.contains(&(open.id.to_string(), "still_open", "pending_payment")),
        "{all}"
    );

    // Again: nothing changes.
    let r = admin(
        &app,
        "POST",
        &format!("/stuck-orders/{}/reconcile", paid.id),
        &token,
    )
    .await
    .body;
    assert_eq!(r["result"], "not_pending");
    let all = sweep(&app, &token).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "only the open one is left: {all}"
    );
    app.jobs_idle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM order_events WHERE source = 'reconcile'")
            .await,
        2,
        "one transition each for the paid and the expired order"
    );
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 1);
    assert_eq!(app.order_status(paid.id).await, "fulfilled");
    assert_eq!(app.order_status(expired.id).await, "expired");
    assert_eq!(app.order_status(open.id).await, "pending_payment");
    let receipts = app
        .sink
        .messages()
        .iter()
        .filter(|m| m.subject.as_deref().unwrap_or("").contains("receipt"))
        .count();
    assert_eq!(receipts, 1);
    let missing = call(
        &app,
        "POST",
        &format!("/admin/stuck-orders/{}/reconcile", Uuid::now_v7()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn the_periodic_sweep_reconciles_without_anyone_asking() {
    let app = BillingApp::spawn_with(&[
        ("BILLING_RECONCILE_AFTER_SECS", "0"),
        ("BILLING_RECONCILE_INTERVAL_SECS", "1"),
    ])
    .await;
    let order = app.pending_order("ada@example.com").await;
    pay(&app, &order.session, &order.payment_intent);
    app.eventually(
        &format!(
            "SELECT count(*) FROM orders WHERE id = '{}' AND status = 'fulfilled'",
            order.id
        ),
        1,
    )
    .await;
    mail_to(&app, "ada@example.com", "Your Ironclad receipt").await;
    // Later sweeps find nothing to do: still one transition, one licence.
    app.eventually(
        "SELECT least(count(*), 3) FROM apalis.jobs WHERE job_type = 'billing_reconcile_stuck_orders' AND status = 'Done'",
        3,
    )
    .await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{}' AND to_status = 'paid'",
            order.id
        ))
        .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 1);
}

/// Checks out for `user` under `key` while Stripe is down: the order is left without a session.
async fn order_without_session(app: &BillingApp, user: Uuid, key: &str) -> Uuid {
    app.stripe.fail_next(1);
    app.checkout(user, key, PRO, 1).await.unwrap_err();
    app.db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT id FROM orders WHERE checkout_key = '{key}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<Uuid>("", "id")
        .unwrap()
}

#[tokio::test]
async fn an_order_that_never_got_a_session_expires_once_its_checkout_can_no_longer_be_retried() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let user = app.user("no-session@example.com").await;
    let old = order_without_session(&app, user, "old").await;
    let recent = order_without_session(&app, user, "recent").await;
    app.sql(
        "UPDATE orders SET created_at = now() - interval '25 hours' WHERE checkout_key = 'old'",
    )
    .await;

    let results = sweep(&app, &token).await;
    let result_for = |id: Uuid| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["order_id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} not swept: {results}"))
            .clone()
    };
    assert_eq!(result_for(old)["result"], "applied", "{results}");
    assert_eq!(result_for(old)["status"], "expired", "{results}");
    assert_eq!(result_for(recent)["result"], "no_session", "{results}");
    assert_eq!(app.order_status(old).await, "expired");
    assert_eq!(app.order_status(recent).await, "pending_payment");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{old}' \
             AND source = 'reconcile' AND event = 'session_expired' AND outcome = 'applied'"
        ))
        .await,
        1
    );

    // A late retry of the expired checkout hands out no way to pay; the recent one still can.
    let (late, _) = app.checkout(user, "old", PRO, 1).await.unwrap();
    assert_eq!(late.status, ironclad::billing::orders::OrderStatus::Expired);
    assert_eq!(late.checkout_url, None);
    let (retried, _) = app.checkout(user, "recent", PRO, 1).await.unwrap();
    assert!(retried.checkout_url.is_some());
}

#[tokio::test]
async fn a_checkout_retry_racing_the_expiry_hands_out_no_session() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let user = app.user("racer@example.com").await;
    let order = order_without_session(&app, user, "late").await;
    app.sql(
        "UPDATE orders SET created_at = now() - interval '25 hours' WHERE checkout_key = 'late'",
    )
    .await;

    // The retry reaches Stripe (held there) before the sweep expires the order.
    app.stripe.hold();
    let retry = app.checkout(user, "late", PRO, 1);
    let expire = async {
        while app.stripe.requests().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let swept = sweep(&app, &token).await;
        app.stripe.release();
        swept
    };
    let (retried, swept) = tokio::join!(retry, expire);
    assert_eq!(swept[0]["status"], "expired", "{swept}");
    let (retried, _) = retried.unwrap();
    assert_eq!(
        retried.status,
        ironclad::billing::orders::OrderStatus::Expired
    );
    assert_eq!(
        retried.checkout_url, None,
        "a session for an expired order must never be handed out"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders WHERE id = '{order}' AND stripe_checkout_session_id IS NULL"
        ))
        .await,
        1
    );
}
