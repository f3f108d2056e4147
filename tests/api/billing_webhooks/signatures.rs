//! Who may deliver: unsigned, forged, stale, malformed or non-JSON deliveries are refused and write
//! nothing; during a secret rotation the old and the new secret both sign.
use serde_json::json;

use super::assert_nothing_written;
use crate::support::billing::{BillingApp, SECRET};

#[tokio::test]
async fn unsigned_forged_stale_malformed_or_non_json_deliveries_are_4xx_and_write_nothing() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    let paid = fake_stripe::completed(&order.session, &order.payment_intent, true);
    let payload = serde_json::to_string(&fake_stripe::event(
        "evt_1",
        "checkout.session.completed",
        paid,
    ))
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let sign = |body: &str, secret: &str, t: i64| {
        stripe_webhook::Webhook::generate_test_header(body, secret, Some(t))
    };
    let cases: Vec<(&str, String, Option<String>, &str, u16)> = vec![
        (
            "no signature",
            payload.clone(),
            None,
            "application/json",
            400,
        ),
        (
            "wrong secret",
            payload.clone(),
            Some(sign(&payload, "whsec_attacker", now)),
            "application/json",
            400,
        ),
        (
            "tampered body",
            payload.replace("4900", "1"),
            Some(sign(&payload, SECRET, now)),
            "application/json",
            400,
        ),
        (
            "stale timestamp",
            payload.clone(),
            Some(sign(&payload, SECRET, now - 301)),
            "application/json",
            400,
        ),
        (
            "garbage header",
            payload.clone(),
            Some("t=now,v1=nope".into()),
            "application/json",
            400,
        ),
        (
            "malformed JSON, validly signed",
            "{\"id\": ".into(),
            Some(sign("{\"id\": ", SECRET, now)),
            "application/json",
            400,
        ),
        (
            "not an event, validly signed",
            "{\"hello\": 1}".into(),
            Some(sign("{\"hello\": 1}", SECRET, now)),
            "application/json",
            400,
        ),
        (
            "wrong content type",
            payload.clone(),
            Some(sign(&payload, SECRET, now)),
            "text/plain",
            415,
        ),
    ];
    for (name, body, signature, content_type, status) in cases {
        let response = app.post_webhook(body, signature, content_type).await;
        assert_eq!(response.status(), status, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
    }
    assert_nothing_written(&app).await;
    assert_eq!(app.order_status(order.id).await, "pending_payment");
}

#[tokio::test]
async fn old_and_new_secrets_are_both_accepted_during_a_rotation() {
    let app = BillingApp::spawn_with(&[("STRIPE_WEBHOOK_SECRETS", "whsec_new,whsec_old")]).await;
    let now = chrono::Utc::now().timestamp();
    for (id, secrets) in [
        ("evt_old", vec!["whsec_old"]),
        ("evt_new", vec!["whsec_new"]),
        // Stripe signs with every active secret during a rotation: one v1 each.
        ("evt_both", vec!["whsec_unrelated", "whsec_new"]),
    ] {
        let payload = serde_json::to_string(&fake_stripe::event(
            id,
            "customer.created",
            json!({"id": "cus_1"}),
        ))
        .unwrap();
        let v1s: Vec<String> = secrets
            .iter()
            .map(|s| {
                let header = stripe_webhook::Webhook::generate_test_header(&payload, s, Some(now));
                header.split_once(",v1=").unwrap().1.to_owned()
            })
            .collect();
        let header = format!("t={now},v1={}", v1s.join(",v1="));
        let response = app
            .post_webhook(payload, Some(header), "application/json; charset=utf-8")
            .await;
        assert_eq!(response.status(), 200, "{id}");
    }
    app.process_inbox().await;
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE outcome = 'unhandled_type'")
            .await,
        3
    );
}
