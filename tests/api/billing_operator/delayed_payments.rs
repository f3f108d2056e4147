//! Stuck delayed payments (SEPA, ACH) reconciled from their PaymentIntent: paid, failed, or still
//! processing (then it waits at the back of the sweep).
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::sweep;
use crate::support::auth::{admin, admin_token};
use crate::support::{
    auth::{call, mail_to},
    billing::{BillingApp, Order, session_id},
};

/// An order whose checkout completed with a delayed payment method (SEPA, ACH), as its webhook
/// reported: it waits in `payment_processing` for `async_payment_succeeded` / `_failed`, which in
/// these tests never arrives.
async fn processing_order(app: &BillingApp, email: &str) -> Order {
    let order = app.pending_order(email).await;
    let id = order.session["id"].as_str().unwrap();
    let session = app.stripe.update_session(id, |s| {
        *s = fake_stripe::completed(s, &order.payment_intent, false);
    });
    let completed = fake_stripe::event(
        &format!("evt_completed_{}", order.id.simple()),
        "checkout.session.completed",
        session,
    );
    assert_eq!(app.post_event(&completed).await.status(), 200);
    assert_eq!(app.order_status(order.id).await, "payment_processing");
    order
}

fn reconcile_path(order: &Order) -> String {
    format!("/stuck-orders/{}/reconcile", order.id)
}

#[tokio::test]
async fn a_delayed_payment_whose_webhook_never_came_is_reconciled_from_its_payment_intent() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let order = processing_order(&app, "ach@example.com").await;
    let stuck = admin(&app, "GET", "/stuck-orders?older_than_secs=0", &token)
        .await
        .body;
    assert_eq!(stuck[0]["id"], order.id.to_string(), "{stuck}");
    assert_eq!(stuck[0]["status"], "payment_processing", "{stuck}");

    // The debit cleared at Stripe; async_payment_succeeded never arrived. Three admins reconcile at once.
    app.stripe
        .set_payment_intent_status(session_id(&order), "succeeded");
    let path = format!("/admin{}", reconcile_path(&order));
    let results = join_all((0..3).map(|_| call(&app, "POST", &path, Some(&token), None))).await;
    let mut applied = 0;
    for r in &results {
        assert_eq!(r.status, 200, "{}", r.body);
        match r.body["result"].as_str().unwrap() {
            "applied" => {
                applied += 1;
                assert_eq!(r.body["status"], "paid", "{}", r.body);
                assert_eq!(r.body["session_status"], "complete", "{}", r.body);
                assert_eq!(r.body["payment_intent_status"], "succeeded", "{}", r.body);
            }
            // Second to the lock, or to the order: the state machine makes it a no-op.
            "ignored" | "not_pending" => {}
            other => panic!("unexpected result {other}: {}", r.body),
        }
    }
    assert_eq!(applied, 1, "exactly one reconciliation moved the order");
    // Once more, afterwards: the order is no longer stuck, the sweep leaves it alone.
    let swept = sweep(&app, &token).await;
    assert_eq!(swept, json!([]));

    mail_to(&app, "ach@example.com", "Your Ironclad licence").await;
    mail_to(&app, "ach@example.com", "Your Ironclad receipt").await;
    app.jobs_idle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'billing_deliver_license'")
            .await,
        1
    );
    let this = format!("order_id = '{}'", order.id);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE {this} AND source = 'reconcile' \
             AND event = 'async_payment_succeeded' AND outcome = 'applied' AND to_status = 'paid'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM licenses WHERE {this}"))
            .await,
        1
    );
    assert_eq!(app.order_status(order.id).await, "fulfilled");
}

#[tokio::test]
async fn a_delayed_payment_that_failed_is_reconciled_to_payment_failed() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let bounced = processing_order(&app, "bounced@example.com").await;
    let canceled = processing_order(&app, "canceled@example.com").await;
    // The debit bounced (the customer may pay again with another method); the other was canceled.
    app.stripe
        .set_payment_intent_status(session_id(&bounced), "requires_payment_method");
    app.stripe
        .set_payment_intent_status(session_id(&canceled), "canceled");

    let all = sweep(&app, &token).await;
    let results: Vec<(String, &str, &str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["order_id"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["payment_intent_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            (
                bounced.id.to_string(),
                "applied",
                "payment_failed",
                "requires_payment_method"
            ),
            (
                canceled.id.to_string(),
                "applied",
                "payment_failed",
                "canceled"
            ),
        ],
        "{all}"
    );
    app.jobs_idle().await;
    assert_eq!(app.order_status(bounced.id).await, "payment_failed");
    assert_eq!(app.order_status(canceled.id).await, "payment_failed");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM order_events WHERE source = 'reconcile' \
             AND event = 'async_payment_failed' AND to_status = 'payment_failed'"
        )
        .await,
        2
    );
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'billing_deliver_license'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_payment_still_processing_waits_and_goes_to_the_back_of_the_sweep() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let stuck_first = |app: &BillingApp| {
        let db = app.db.clone();
        async move {
            let first = ironclad::billing::orders::reconcile::stuck_orders(&db, Duration::ZERO, 1)
                .await
                .unwrap();
            assert_eq!(first.len(), 1);
            first[0].id
        }
    };
    let debit = processing_order(&app, "debit@example.com").await;
    let open = app.pending_order("open@example.com").await;
    // Never checked: oldest first.
    let listed = admin(&app, "GET", "/stuck-orders?older_than_secs=0", &token)
        .await
        .body;
    let listed: Vec<(&str, &str, &Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap(),
                o["status"].as_str().unwrap(),
                &o["reconciled_at"],
            )
        })
        .collect();
    let (debit_id, open_id) = (debit.id.to_string(), open.id.to_string());
    assert_eq!(
        listed,
        [
            (debit_id.as_str(), "payment_processing", &Value::Null),
            (open_id.as_str(), "pending_payment", &Value::Null),
        ]
    );
    assert_eq!(stuck_first(&app).await, debit.id);

    // The debit is still on its way (ACH takes days): nothing to apply, and no one is told otherwise.
    app.stripe
        .set_payment_intent_status(session_id(&debit), "processing");
    let r = admin(&app, "POST", &reconcile_path(&debit), &token)
        .await
        .body;
    assert_eq!(
        (
            r["result"].as_str(),
            r["status"].as_str(),
            r["session_status"].as_str(),
            r["payment_intent_status"].as_str()
        ),
        (
            Some("still_processing"),
            Some("payment_processing"),
            Some("complete"),
            Some("processing")
        ),
        "{r}"
    );
    assert_eq!(app.order_status(debit.id).await, "payment_processing");
    assert_eq!(
        app.count("SELECT count(*) FROM order_events WHERE source = 'reconcile'")
            .await,
        0
    );

    // Checked, it goes to the back: the next sweep reaches the order never checked, then takes turns.
    assert_eq!(stuck_first(&app).await, open.id);
    let listed = admin(&app, "GET", "/stuck-orders?older_than_secs=0", &token)
        .await
        .body;
    assert_eq!(listed[0]["id"], open_id.as_str(), "{listed}");
    assert_eq!(listed[1]["id"], debit_id.as_str(), "{listed}");
    assert!(listed[1]["reconciled_at"].is_string(), "{listed}");
    let r = admin(&app, "POST", &reconcile_path(&open), &token)
        .await
        .body;
    assert_eq!(r["result"], "still_open", "{r}");
    assert_eq!(stuck_first(&app).await, debit.id);
}
