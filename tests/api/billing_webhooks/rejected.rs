//! Events that are not applied: unknown orders and unhandled types are kept for review; a payment
//! of another amount, or with another order's PaymentIntent, is rejected with a 200 (so Stripe
//! stops retrying) and delivers nothing.
use serde_json::{Value, json};

use crate::support::billing::{BILLING_JOBS, BillingApp};

#[tokio::test]
async fn unknown_orders_and_unhandled_types_are_kept_for_review_and_acknowledged() {
    let app = BillingApp::spawn().await;
    let stranger = json!({"id": "cs_elsewhere", "object": "checkout.session", "payment_status": "paid",
                          "metadata": {"order_id": uuid::Uuid::now_v7().to_string()}});
    for (id, kind, object, outcome) in [
        (
            "evt_unknown",
            "checkout.session.completed",
            stranger,
            "unknown_order",
        ),
        (
            "evt_customer",
            "customer.created",
            json!({"id": "cus_1"}),
            "unhandled_type",
        ),
    ] {
        let response = app.post_event(&fake_stripe::event(id, kind, object)).await;
        assert_eq!(response.status(), 200);
        let ack: Value = response.json().await.unwrap();
        assert_eq!(
            app.outcome_of(ack["event_id"].as_str().unwrap()).await,
            outcome
        );
        let stored = app
            .count(&format!("SELECT count(*) FROM stripe_events WHERE event_id = '{id}' AND outcome = '{outcome}'"))
            .await;
        assert_eq!(stored, 1);
    }
    assert_eq!(app.count(BILLING_JOBS).await, 0);
}

#[tokio::test]
async fn a_payment_for_another_amount_is_rejected_and_delivers_nothing() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    let mut paid = fake_stripe::completed(&order.session, &order.payment_intent, true);
    paid["amount_total"] = json!(100);
    let ack: Value = app
        .post_event(&fake_stripe::event(
            "evt_cheap",
            "checkout.session.completed",
            paid,
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.outcome_of(ack["event_id"].as_str().unwrap()).await,
        "rejected"
    );
    assert_eq!(app.order_status(order.id).await, "pending_payment");
    assert_eq!(
        app.count("SELECT count(*) FROM order_events WHERE outcome = 'rejected' AND reason LIKE '%amount%'").await,
        1
    );
    assert_eq!(app.count(BILLING_JOBS).await, 0);
}

#[tokio::test]
async fn an_event_with_another_orders_payment_intent_is_rejected_with_200_not_retried_forever() {
    let app = BillingApp::spawn_without_workers().await;
    let first = app.pending_order("ada@example.com").await;
    let second = app.pending_order("bob@example.com").await;
    let paid = app
        .post_event(&fake_stripe::event(
            "evt_first_paid",
            "checkout.session.completed",
            fake_stripe::completed(&first.session, &first.payment_intent, true),
        ))
        .await;
    assert_eq!(paid.status(), 200);

    // The second order's session, claiming the first order's payment intent.
    let confused = fake_stripe::event(
        "evt_confused",
        "checkout.session.completed",
        fake_stripe::completed(&second.session, &first.payment_intent, true),
    );
    for expected in ["received", "duplicate"] {
        let response = app.post_event(&confused).await;
        assert_eq!(response.status(), 200);
        let ack: Value = response.json().await.unwrap();
        assert_eq!(ack["status"], expected);
        assert_eq!(app.outcome_of("evt_confused").await, "rejected");
    }
    assert_eq!(app.order_status(second.id).await, "pending_payment");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{}' AND outcome = 'rejected' \
             AND reason LIKE '%belongs to another order%'",
            second.id
        ))
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE event_id = 'evt_confused' AND outcome = 'rejected'")
            .await,
        1
    );
    app.run_jobs_until_idle().await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM licenses WHERE order_id = '{}'",
            second.id
        ))
        .await,
        0
    );
}
