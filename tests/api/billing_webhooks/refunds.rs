//! Events around a payment, in any order: an expiry after it is ignored, a refund before it wins;
//! a refund revokes and a dispute suspends the licences already delivered.
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::billing::BillingApp;

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
    assert_eq!(
        app.outcome_of(ack["event_id"].as_str().unwrap()).await,
        "ignored"
    );
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
    assert_eq!(
        app.outcome_of(ack["event_id"].as_str().unwrap()).await,
        "applied"
    );
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
    assert_eq!(
        app.outcome_of(ack["event_id"].as_str().unwrap()).await,
        "ignored"
    );
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
        assert_eq!(
            app.outcome_of(ack["event_id"].as_str().unwrap()).await,
            outcome,
            "{id}"
        );
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
