//! What Stripe may put in a payload: any valid JSON, `\u0000` escapes included. The event is
//! stored as it was sent, so nothing in it can fail the delivery on every retry.
use sea_orm::ConnectionTrait;

use crate::support::billing::BillingApp;

#[tokio::test]
async fn a_signed_event_holding_a_nul_escape_is_processed_and_kept_as_sent() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    let mut paid = fake_stripe::completed(&order.session, &order.payment_intent, true);
    paid["custom_fields"] = serde_json::json!([{"key": "note", "text": {"value": "a\u{0}b"}}]);
    let event = fake_stripe::event("evt_nul", "checkout.session.completed", paid);
    let sent = serde_json::to_string(&event).unwrap();
    assert!(sent.contains("\\u0000"));

    let response = app.post_event(&event).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let status = app.order_status(order.id).await;
    assert!(["paid", "fulfilled"].contains(&status.as_str()), "{status}");
    // Byte for byte what was signed, and still readable as JSON.
    let stored = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT payload FROM stripe_events WHERE event_id = 'evt_nul'",
        ))
        .await
        .unwrap()
        .expect("recorded");
    let payload: String = stored.try_get("", "payload").unwrap();
    assert_eq!(payload, sent);

    // Unhandled types too.
    let other = fake_stripe::event(
        "evt_nul_other",
        "customer.updated",
        serde_json::json!({"id": "cus_1", "name": "\u{0}"}),
    );
    assert_eq!(app.post_event(&other).await.status(), 200);
}
