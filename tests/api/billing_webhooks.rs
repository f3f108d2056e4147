//! The Stripe webhook under what Stripe and the network really do: forged and stale deliveries,
//! storms of duplicates, concurrent events for one order, out-of-order events, and a crash in the
//! middle of processing.
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{
    billing::{BILLING_JOBS, BillingApp, SECRET},
    fake_stripe,
};

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
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE outcome = 'unhandled_type'")
            .await,
        3
    );
}

#[tokio::test]
async fn fifty_identical_events_at_once_make_one_transition_one_licence_one_receipt() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    let event = fake_stripe::event(
        "evt_storm",
        "checkout.session.completed",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    );
    let responses = join_all((0..50).map(|_| app.post_event(&event))).await;
    let mut outcomes = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let ack: Value = response.json().await.unwrap();
        outcomes.push(ack["outcome"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        outcomes.iter().filter(|o| *o == "applied").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 49);

    let id = order.id;
    assert_eq!(app.count("SELECT count(*) FROM stripe_events").await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{id}' AND to_status = 'paid'"
        ))
        .await,
        1
    );
    app.jobs_idle().await;
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 1);
    for queue in ["billing_deliver_license", "billing_send_receipt"] {
        let jobs = app
            .count(&format!(
                "SELECT count(*) FROM apalis.jobs WHERE job_type = '{queue}'"
            ))
            .await;
        assert_eq!(jobs, 1, "{queue}");
    }
    let mail = app.billing_mail(3, Duration::from_secs(2)).await;
    assert_eq!(mail.len(), 2, "one receipt and one licence email: {mail:?}");
    assert_eq!(app.order_status(id).await, "fulfilled");
}

#[tokio::test]
async fn completed_and_async_payment_succeeded_together_pay_once() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    let completed = fake_stripe::event(
        "evt_completed",
        "checkout.session.completed",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    );
    let async_ok = fake_stripe::event(
        "evt_async_ok",
        "checkout.session.async_payment_succeeded",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    );
    // Both events, each delivered several times, all at once.
    let deliveries = (0..10).flat_map(|_| [&completed, &async_ok]);
    let responses = join_all(deliveries.map(|e| app.post_event(e))).await;
    assert!(responses.iter().all(|r| r.status() == 200));

    let id = order.id;
    assert_eq!(app.count("SELECT count(*) FROM stripe_events").await, 2);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{id}' AND to_status = 'paid'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE outcome = 'applied'")
            .await
            + app
                .count("SELECT count(*) FROM stripe_events WHERE outcome = 'ignored'")
                .await,
        2,
        "one paid the order, the other was recorded as a duplicate payment proof"
    );
    app.jobs_idle().await;
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 1);
    let mail = app.billing_mail(3, Duration::from_secs(2)).await;
    assert_eq!(mail.len(), 2, "{mail:?}");
}

#[tokio::test]
async fn expired_after_paid_is_ignored_and_refunded_before_paid_wins() {
    let app = BillingApp::spawn().await;

    // `expired` arriving after `completed`: the order stays paid and fulfilled; the event is kept.
    let first = app.pending_order("ada@example.com").await;
    let paid = fake_stripe::completed(&first.session, &first.payment_intent, true);
    app.post_event(&fake_stripe::event(
        "evt_a_paid",
        "checkout.session.completed",
        paid,
    ))
    .await;
    let mut expired_session = first.session.clone();
    expired_session["status"] = json!("expired");
    let response = app
        .post_event(&fake_stripe::event(
            "evt_a_expired",
            "checkout.session.expired",
            expired_session,
        ))
        .await;
    let ack: Value = response.json().await.unwrap();
    assert_eq!(ack["outcome"], "ignored");
    app.eventually(
        &format!(
            "SELECT count(*) FROM orders WHERE id = '{}' AND status = 'fulfilled'",
            first.id
        ),
        1,
    )
    .await;

    // `charge.refunded` arriving before `completed`: the order goes straight to refunded, the late
    // `completed` is ignored, no licence is ever made, and the customer hears about the refund.
    let second = app.pending_order("bob@example.com").await;
    let refund = fake_stripe::refunded_charge(
        &second.payment_intent,
        Some(&second.id.to_string()),
        4900,
        true,
    );
    let ack: Value = app
        .post_event(&fake_stripe::event(
            "evt_b_refunded",
            "charge.refunded",
            refund,
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack["outcome"], "applied");
    let paid = fake_stripe::completed(&second.session, &second.payment_intent, true);
    let ack: Value = app
        .post_event(&fake_stripe::event(
            "evt_b_paid",
            "checkout.session.completed",
            paid,
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack["outcome"], "ignored");
    app.jobs_idle().await;
    assert_eq!(app.order_status(second.id).await, "refunded");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM licenses WHERE order_id = '{}'",
            second.id
        ))
        .await,
        0
    );
    let mail = app.billing_mail(3, Duration::from_secs(10)).await;
    let refund_mail = mail
        .iter()
        .find(|m| {
            m.message_id.as_deref()
                == Some(&format!("<order-{}.refund@ironclad.localhost>", second.id))
        })
        .expect("a refund email");
    assert_eq!(refund_mail.to, ["bob@example.com"]);
    assert!(
        !refund_mail.raw.contains("has been revoked"),
        "there was no licence to revoke"
    );
}

#[tokio::test]
async fn a_refund_revokes_and_a_dispute_suspends_delivered_licences() {
    let app = BillingApp::spawn().await;
    let refunded = app.pending_order("ada@example.com").await;
    let disputed = app.pending_order("bob@example.com").await;
    for order in [&refunded, &disputed] {
        let paid = fake_stripe::completed(&order.session, &order.payment_intent, true);
        let id = format!("evt_paid_{}", order.id.simple());
        app.post_event(&fake_stripe::event(&id, "checkout.session.completed", paid))
            .await;
    }
    app.eventually("SELECT count(*) FROM licenses WHERE status = 'active'", 2)
        .await;

    // Charge and dispute events carry no order id: they are matched by the payment intent.
    let refund = fake_stripe::refunded_charge(&refunded.payment_intent, None, 4900, true);
    let partial = fake_stripe::refunded_charge(&disputed.payment_intent, None, 4900, false);
    let dispute = fake_stripe::dispute(&disputed.payment_intent, 4900);
    for (id, kind, object, outcome) in [
        ("evt_refund", "charge.refunded", refund, "applied"),
        ("evt_partial", "charge.refunded", partial, "ignored"),
        ("evt_dispute", "charge.dispute.created", dispute, "applied"),
    ] {
        let ack: Value = app
            .post_event(&fake_stripe::event(id, kind, object))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(ack["outcome"], outcome, "{id}");
    }
    app.eventually(
        &format!(
            "SELECT count(*) FROM licenses WHERE order_id = '{}' AND status = 'revoked'",
            refunded.id
        ),
        1,
    )
    .await;
    app.eventually(
        &format!(
            "SELECT count(*) FROM licenses WHERE order_id = '{}' AND status = 'suspended'",
            disputed.id
        ),
        1,
    )
    .await;
    app.jobs_idle().await;
    let mail = app.billing_mail(6, Duration::from_secs(10)).await;
    let kinds: Vec<String> = mail.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(
        mail.len(),
        6,
        "2 receipts, 2 licences, 1 refund, 1 dispute: {kinds:?}"
    );
    assert!(kinds.contains(&format!(
        "<order-{}.refund@ironclad.localhost>",
        refunded.id
    )));
    assert!(kinds.contains(&format!(
        "<order-{}.dispute@ironclad.localhost>",
        disputed.id
    )));
}

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
        assert_eq!(ack["outcome"], outcome);
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
    assert_eq!(ack["outcome"], "rejected");
    assert_eq!(app.order_status(order.id).await, "pending_payment");
    assert_eq!(
        app.count("SELECT count(*) FROM order_events WHERE outcome = 'rejected' AND reason LIKE '%amount%'").await,
        1
    );
    assert_eq!(app.count(BILLING_JOBS).await, 0);
}

#[tokio::test]
async fn an_event_with_another_orders_payment_intent_is_rejected_with_200_not_retried_forever() {
    let app = BillingApp::spawn().await;
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
    for expected in ["rejected", "duplicate"] {
        let response = app.post_event(&confused).await;
        assert_eq!(response.status(), 200);
        let ack: Value = response.json().await.unwrap();
        assert_eq!(ack["outcome"], expected);
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
    app.jobs_idle().await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM licenses WHERE order_id = '{}'",
            second.id
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn a_failure_mid_processing_commits_nothing_answers_500_and_the_retry_succeeds() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    // Fail the first job enqueue — the last step, after the event, the audit row and the status
    // change were written. A sequence survives the rollback, so only the first attempt fails.
    app.sql(
        "CREATE SEQUENCE fail_once;
         CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('fail_once') = 1 THEN RAISE EXCEPTION 'injected failure'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_once BEFORE INSERT ON apalis.jobs FOR EACH ROW EXECUTE FUNCTION fail_once();",
    )
    .await;
    let event = fake_stripe::event(
        "evt_paid",
        "checkout.session.completed",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    );
    let response = app.post_event(&event).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert!(
        !body.to_string().contains("injected"),
        "the cause is not leaked: {body}"
    );
    assert_nothing_written(&app).await;
    assert_eq!(app.order_status(order.id).await, "pending_payment");

    // Stripe retries the same event: it is processed as if the first attempt never happened.
    let response = app.post_event(&event).await;
    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(ack["outcome"], "applied");
    app.eventually("SELECT count(*) FROM licenses", 1).await;
    app.eventually(
        &format!(
            "SELECT count(*) FROM orders WHERE id = '{}' AND status = 'fulfilled'",
            order.id
        ),
        1,
    )
    .await;
}
