//! Deliveries again and again: fifty copies of one event at once, two events proving one payment,
//! and an event whose processing fails midway (nothing of it committed), then succeeds on our retry.
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use crate::support::billing::{BILLING_JOBS, BillingApp};

#[tokio::test]
async fn fifty_identical_events_at_once_make_one_transition_one_licence_one_receipt() {
    let app = BillingApp::spawn_without_workers().await;
    let order = app.pending_order("ada@example.com").await;
    let event = fake_stripe::event(
        "evt_storm",
        "checkout.session.completed",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    );
    let responses = join_all((0..50).map(|_| app.deliver(&event))).await;
    let mut acks = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let ack: Value = response.json().await.unwrap();
        acks.push(ack["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        acks.iter().filter(|o| *o == "received").count(),
        1,
        "{acks:?}"
    );
    assert_eq!(acks.iter().filter(|o| *o == "duplicate").count(), 49);
    app.process_inbox().await;
    assert_eq!(app.outcome_of("evt_storm").await, "applied");

    let id = order.id;
    assert_eq!(app.count("SELECT count(*) FROM stripe_events").await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{id}' AND to_status = 'paid'"
        ))
        .await,
        1
    );
    app.run_jobs_until_idle().await;
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
    let app = BillingApp::spawn_without_workers().await;
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
    app.run_jobs_until_idle().await;
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 1);
    let mail = app.billing_mail(3, Duration::from_secs(2)).await;
    assert_eq!(mail.len(), 2, "{mail:?}");
}

#[tokio::test]
async fn a_failure_mid_processing_commits_nothing_of_it_and_our_retry_applies_it_once() {
    let app = BillingApp::spawn_with(&[("STRIPE_INBOX_RETRY_BASE_SECS", "1")]).await;
    let order = app.pending_order("ada@example.com").await;
    // Fail the first job enqueue — the last step, after the audit row and the status change were
    // written. A sequence survives the rollback, so only the first attempt fails.
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
    // Stripe's delivery only stores the event: it succeeds whatever processing will do.
    let response = app.deliver(&event).await;
    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(ack["status"], "received");
    app.eventually(
        "SELECT count(*) FROM stripe_events WHERE event_id = 'evt_paid' AND status = 'pending' \
         AND attempts = 1 AND last_error LIKE '%injected failure%' AND next_attempt_at > now()",
        1,
    )
    .await;
    // The failed attempt left nothing behind but the error on the event.
    for sql in [
        "SELECT count(*) FROM order_events WHERE source = 'stripe'",
        "SELECT count(*) FROM licenses",
        BILLING_JOBS,
    ] {
        assert_eq!(app.count(sql).await, 0, "{sql}");
    }
    assert_eq!(app.order_status(order.id).await, "pending_payment");

    // The processor retries after the backoff: applied once, as if the failure never happened.
    app.eventually(
        "SELECT count(*) FROM stripe_events WHERE event_id = 'evt_paid' AND outcome = 'applied' \
         AND attempts = 2 AND last_error IS NULL",
        1,
    )
    .await;
    app.eventually("SELECT count(*) FROM licenses", 1).await;
    app.eventually(
        &format!(
            "SELECT count(*) FROM orders WHERE id = '{}' AND status = 'fulfilled'",
            order.id
        ),
        1,
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) FROM order_events WHERE to_status = 'paid'")
            .await,
        1
    );
}
