//! A customer cancels an unpaid order (`POST /billing/orders/{id}/cancel`): its Checkout Session is
//! expired at Stripe first, so a canceled order can never be paid; a payment that got there first
//! wins; late webhooks change nothing.
use std::time::Duration;

use ironclad::billing::error::types;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    auth::{self, Response},
    billing::{BILLING_JOBS, BillingApp, Order, PRO, Shopper, session_id},
};

async fn cancel(app: &BillingApp, token: &str, id: Uuid) -> Response {
    let path = format!("/billing/orders/{id}/cancel");
    auth::call(app, "POST", &path, Some(token), None).await
}

/// A fresh customer and their pending order, with its open Checkout Session.
async fn shopper_with_order(app: &BillingApp, email: &str) -> (Shopper, Order) {
    let shopper = app.customer(email).await;
    let order = app.order_for(&shopper, "key-1").await;
    (shopper, order)
}

/// The order's `cancel_requested` audit rows with `outcome`.
async fn cancel_rows(app: &BillingApp, order: &Order, outcome: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM order_events WHERE order_id = '{}' \
         AND event = 'cancel_requested' AND outcome = '{outcome}'",
        order.id
    ))
    .await
}

/// Delivers the event and answers its outcome once processed.
async fn post_event(app: &BillingApp, id: &str, kind: &str, object: Value) -> String {
    let response = app.post_event(&fake_stripe::event(id, kind, object)).await;
    assert_eq!(response.status(), 200);
    app.outcome_of(id).await
}

fn assert_not_cancelable(response: &Response, detail: &str) {
    assert_eq!(response.status, 409, "{}", response.body);
    assert_eq!(response.header("content-type"), "application/problem+json");
    assert_eq!(response.problem_type(), types::ORDER_NOT_CANCELABLE);
    let actual = response.body["detail"].as_str().unwrap_or_default();
    assert!(actual.contains(detail), "{actual:?} lacks {detail:?}");
}

#[tokio::test]
async fn a_pending_order_is_canceled_after_its_session_is_expired_and_again_changes_nothing() {
    let app = BillingApp::spawn().await;
    let (ada, order) = shopper_with_order(&app, "ada@example.com").await;

    let canceled = cancel(&app, &ada.token, order.id).await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(canceled.body["id"], order.id.to_string());
    assert_eq!(canceled.body["status"], "canceled");
    assert_eq!(canceled.body["lines"][0]["product_id"], PRO.to_string());
    // Stripe was told first: the session can no longer be paid.
    assert_eq!(app.stripe.expire_calls(session_id(&order)), 1);
    let session = app.stripe.update_session(session_id(&order), |_| {});
    assert_eq!(session["status"], "expired");
    assert_eq!(cancel_rows(&app, &order, "applied").await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{}' AND event = 'cancel_requested' \
             AND source = 'api' AND from_status = 'pending_payment' AND to_status = 'canceled'",
            order.id
        ))
        .await,
        1
    );
    let shown = app
        .get_as(&ada.token, &format!("/billing/orders/{}", order.id))
        .await;
    assert_eq!(shown.body, canceled.body);

    // Again: the same answer, without asking Stripe or writing anything.
    let trail = format!(
        "SELECT count(*) FROM order_events WHERE order_id = '{}'",
        order.id
    );
    let rows = app.count(&trail).await;
    let again = cancel(&app, &ada.token, order.id).await;
    assert_eq!((again.status, &again.body), (200, &canceled.body));
    assert_eq!(app.stripe.expire_calls(session_id(&order)), 1);
    assert_eq!(app.count(&trail).await, rows);
    assert_eq!(app.count(BILLING_JOBS).await, 0);
}

#[tokio::test]
async fn concurrent_cancels_all_answer_canceled_and_cancel_once() {
    let app = BillingApp::spawn().await;
    let (ada, order) = shopper_with_order(&app, "ada@example.com").await;

    // Four cancels (a double click, a retry) all get past the status check before any expires the
    // session: Stripe holds them until all four have asked.
    app.stripe.hold();
    let cancels =
        futures_util::future::join_all((0..4).map(|_| cancel(&app, &ada.token, order.id)));
    let release = async {
        while app.stripe.expire_calls(session_id(&order)) < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.stripe.release();
    };
    let (answers, ()) = tokio::join!(cancels, release);

    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["status"], "canceled");
    }
    assert_eq!(app.order_status(order.id).await, "canceled");
    assert_eq!(cancel_rows(&app, &order, "applied").await, 1);
    assert_eq!(app.count(BILLING_JOBS).await, 0);
}

#[tokio::test]
async fn a_session_paid_at_stripe_whose_webhook_is_late_is_409_and_the_webhook_then_pays_the_order()
{
    let app = BillingApp::spawn().await;
    let (ada, order) = shopper_with_order(&app, "ada@example.com").await;
    // The customer paid; Stripe has not told us yet.
    let paid = app.stripe.update_session(session_id(&order), |session| {
        *session = fake_stripe::completed(session, &order.payment_intent, true);
    });

    let refused = cancel(&app, &ada.token, order.id).await;
    assert_not_cancelable(&refused, "the payment went through");
    assert_eq!(app.stripe.expire_calls(session_id(&order)), 1);
    assert_eq!(app.order_status(order.id).await, "pending_payment");
    assert_eq!(cancel_rows(&app, &order, "applied").await, 0);

    // The webhook arrives and the order is paid as usual.
    let ack = post_event(&app, "evt_paid", "checkout.session.completed", paid).await;
    assert_eq!(ack, "applied");
    app.eventually(
        &format!(
            "SELECT count(*) FROM licenses l JOIN orders o ON o.id = l.order_id \
             WHERE o.id = '{}' AND o.status = 'fulfilled' AND l.status = 'active'",
            order.id
        ),
        1,
    )
    .await;
}

#[tokio::test]
async fn a_paid_order_cannot_be_canceled() {
    let app = BillingApp::spawn().await;
    let (ada, order) = shopper_with_order(&app, "ada@example.com").await;
    let paid = fake_stripe::completed(&order.session, &order.payment_intent, true);
    post_event(&app, "evt_paid", "checkout.session.completed", paid).await;
    app.eventually(
        &format!(
            "SELECT count(*) FROM orders WHERE id = '{}' AND status = 'fulfilled'",
            order.id
        ),
        1,
    )
    .await;

    let refused = cancel(&app, &ada.token, order.id).await;
    assert_not_cancelable(&refused, "the order is fulfilled");
    assert_eq!(app.order_status(order.id).await, "fulfilled");
    assert_eq!(app.stripe.expire_calls(session_id(&order)), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM licenses WHERE status = 'active'")
            .await,
        1
    );
}

#[tokio::test]
async fn another_customers_order_or_an_unknown_one_is_404_and_nothing_changes() {
    let app = BillingApp::spawn().await;
    let (_, adas) = shopper_with_order(&app, "ada@example.com").await;
    let eve = app.customer("eve@example.com").await;

    let foreign = cancel(&app, &eve.token, adas.id).await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    assert_eq!(foreign.header("content-type"), "application/problem+json");
    // Exactly what reading it answers: the order does not exist for Eve.
    let read = app
        .get_as(&eve.token, &format!("/billing/orders/{}", adas.id))
        .await;
    assert_eq!(foreign.body, read.body);
    let unknown = cancel(&app, &eve.token, Uuid::now_v7()).await;
    assert_eq!((unknown.status, unknown.body), (404, foreign.body));

    let anonymous = app
        .client
        .post(app.url(&format!("/api/v1/billing/orders/{}/cancel", adas.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    assert_eq!(app.order_status(adas.id).await, "pending_payment");
    assert_eq!(app.stripe.expire_calls(session_id(&adas)), 0);
    assert_eq!(cancel_rows(&app, &adas, "applied").await, 0);
}

#[tokio::test]
async fn stripe_down_is_502_and_the_order_still_awaits_payment() {
    let app = BillingApp::spawn().await;
    let (ada, order) = shopper_with_order(&app, "ada@example.com").await;
    app.stripe.fail_next(1);

    let failed = cancel(&app, &ada.token, order.id).await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    assert_eq!(failed.header("content-type"), "application/problem+json");
    assert_eq!(failed.problem_type(), types::PAYMENT_PROVIDER);
    assert_eq!(app.order_status(order.id).await, "pending_payment");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{}' AND event = 'cancel_requested'",
            order.id
        ))
        .await,
        0
    );

    // Once Stripe is back, the retry cancels.
    let retried = cancel(&app, &ada.token, order.id).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["status"], "canceled");
}

#[tokio::test]
async fn late_webhooks_after_a_cancel_change_nothing_and_a_payment_is_flagged_not_fulfilled() {
    let app = BillingApp::spawn().await;
    let (ada, order) = shopper_with_order(&app, "ada@example.com").await;
    let canceled = cancel(&app, &ada.token, order.id).await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);

    // The expiry we asked for, reported by Stripe: harmless.
    let expired = app.stripe.update_session(session_id(&order), |_| {});
    let ack = post_event(&app, "evt_expired", "checkout.session.expired", expired).await;
    assert_eq!(ack, "ignored");
    assert_eq!(app.order_status(order.id).await, "canceled");

    // A payment for the canceled order cannot happen; if Stripe ever reported one, it is flagged
    // for a human (to refund), and no licence is issued.
    let paid = fake_stripe::completed(&order.session, &order.payment_intent, true);
    let ack = post_event(&app, "evt_paid_late", "checkout.session.completed", paid).await;
    assert_eq!(ack, "rejected");
    assert_eq!(app.order_status(order.id).await, "canceled");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{}' \
             AND event = 'checkout_completed_paid' AND outcome = 'rejected'",
            order.id
        ))
        .await,
        1
    );
    assert_eq!(app.count(BILLING_JOBS).await, 0);
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 0);
    let shown = app
        .get_as(&ada.token, &format!("/billing/orders/{}", order.id))
        .await;
    assert_eq!(shown.body, canceled.body);
}

#[tokio::test]
async fn an_order_without_a_session_is_canceled_without_asking_stripe() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;
    // Creating the session fails: the order waits without one.
    app.stripe.fail_next(1);
    let body = json!({"product_id": PRO, "quantity": 1});
    let failed = app.post_checkout(&ada.token, Some("key-1"), &body).await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    let orders = app.get_as(&ada.token, "/billing/orders").await;
    let id: Uuid = orders.body[0]["id"].as_str().unwrap().parse().unwrap();
    let requests = app.stripe.requests().len();

    let canceled = cancel(&app, &ada.token, id).await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(canceled.body["status"], "canceled");
    assert_eq!(app.stripe.requests().len(), requests);
}

#[tokio::test]
async fn a_cancel_while_the_session_is_being_created_keeps_its_url_from_the_customer() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;
    let body = json!({"product_id": PRO, "quantity": 1});

    // Stripe is slow to create the session; meanwhile the customer cancels the order.
    app.stripe.hold();
    let checkout = app.post_checkout(&ada.token, Some("key-1"), &body);
    let canceled = async {
        while app.stripe.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let orders = app.get_as(&ada.token, "/billing/orders").await;
        let id: Uuid = orders.body[0]["id"].as_str().unwrap().parse().unwrap();
        let response = cancel(&app, &ada.token, id).await;
        app.stripe.release();
        response
    };
    let (checkout, canceled) = tokio::join!(checkout, canceled);
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(canceled.body["status"], "canceled");
    // The session Stripe created is never handed out: nothing to pay with.
    assert_eq!(checkout.status, 201, "{}", checkout.body);
    assert_eq!(checkout.body["status"], "canceled");
    assert!(checkout.body["checkout_url"].is_null(), "{}", checkout.body);
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE checkout_url IS NOT NULL")
            .await,
        0
    );
}
