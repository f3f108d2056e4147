//! The inbox itself: group-committed deliveries where one bad row fails only itself, processors
//! racing over the same events, one event per object in flight, claims of a dead processor taken
//! over, the cross-process wake-up, catching up from Stripe's Events API, and the inbox's metrics.
use std::time::Duration;

use futures_util::future::join_all;
use ironclad::billing::stripe::{Processor, inbox::CHANNEL, sync};
use ironclad::jobs::Wakeups;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};

use crate::support::billing::{BillingApp, Order};

fn completion(id: &str, order: &Order) -> Value {
    fake_stripe::event(
        id,
        "checkout.session.completed",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    )
}

async fn paid_transitions(app: &BillingApp, order: &Order) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM order_events WHERE order_id = '{}' AND to_status = 'paid'",
        order.id
    ))
    .await
}

#[tokio::test]
async fn a_row_that_cannot_be_written_fails_alone_and_its_batch_neighbours_are_stored() {
    let app = BillingApp::spawn_without_workers().await;
    app.sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'injected failure'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON stripe_events FOR EACH ROW
             WHEN (NEW.event_id = 'evt_bad') EXECUTE FUNCTION refuse();",
    )
    .await;
    let events: Vec<Value> = (0..40)
        .map(|n| {
            fake_stripe::event(
                &format!("evt_{n}"),
                "customer.created",
                json!({"id": "cus_1"}),
            )
        })
        .chain([fake_stripe::event(
            "evt_bad",
            "customer.created",
            json!({"id": "cus_2"}),
        )])
        .collect();
    let responses = join_all(events.iter().map(|e| app.deliver(e))).await;
    for (event, response) in events.iter().zip(responses) {
        let expected = if event["id"] == "evt_bad" { 500 } else { 200 };
        assert_eq!(response.status(), expected, "{}", event["id"]);
    }
    assert_eq!(app.count("SELECT count(*) FROM stripe_events").await, 40);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM stripe_events WHERE status = 'pending' AND outcome IS NULL"
        )
        .await,
        40,
        "stored, not processed: the webhook does nothing else"
    );
}

#[tokio::test]
async fn processors_racing_over_the_same_events_apply_each_once() {
    let app = BillingApp::spawn_without_workers().await;
    let mut orders = Vec::new();
    for n in 0..6 {
        orders.push(app.pending_order(&format!("buyer{n}@example.com")).await);
    }
    // Each payment proven twice (two events about the same session), each delivered three times.
    for (n, order) in orders.iter().enumerate() {
        let completed = completion(&format!("evt_done_{n}"), order);
        let mut succeeded = completion(&format!("evt_async_{n}"), order);
        succeeded["type"] = json!("checkout.session.async_payment_succeeded");
        for event in [&completed, &succeeded, &completed, &succeeded, &completed] {
            assert_eq!(app.deliver(event).await.status(), 200);
        }
    }
    // Four processes' processors drain at once.
    let processors: Vec<Processor> = (0..4)
        .map(|_| Processor::new(app.layers.billing.clone()))
        .collect();
    let drained = join_all(processors.iter().map(Processor::drain)).await;
    let claimed: usize = drained.into_iter().map(Result::unwrap).sum();
    assert_eq!(claimed, 12, "every event claimed once, by one of them");
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE status = 'processed'")
            .await,
        12
    );
    for order in &orders {
        assert_eq!(paid_transitions(&app, order).await, 1);
    }
    app.run_jobs_until_idle().await;
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 6);
}

#[tokio::test]
async fn one_event_per_object_is_in_flight_and_the_next_waits_for_it() {
    let app = BillingApp::spawn_without_workers().await;
    let order = app.pending_order("ada@example.com").await;
    let completed = completion("evt_first", &order);
    let mut succeeded = completion("evt_second", &order);
    succeeded["type"] = json!("checkout.session.async_payment_succeeded");
    succeeded["created"] = json!(completed["created"].as_i64().unwrap() + 1);
    app.deliver(&completed).await;
    app.deliver(&succeeded).await;

    // Hold the order's lock, so the first event's apply waits inside its transaction.
    let holder = app.db.begin().await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &holder,
        &format!("SELECT 1 FROM orders WHERE id = '{}' FOR UPDATE", order.id),
    )
    .await
    .unwrap();
    let first = Processor::new(app.layers.billing.clone());
    let draining = tokio::spawn(async move { first.drain().await });
    app.eventually(
        "SELECT count(*) FROM stripe_events WHERE status = 'processing' AND event_id = 'evt_first'",
        1,
    )
    .await;
    // Another processor finds the second event's object busy: it claims nothing.
    let other = Processor::new(app.layers.billing.clone());
    assert_eq!(other.drain().await.unwrap(), 0);
    assert_eq!(app.outcome_of("evt_second").await, "pending");

    holder.rollback().await.unwrap();
    assert_eq!(draining.await.unwrap().unwrap(), 2, "then both, in turn");
    assert_eq!(app.outcome_of("evt_first").await, "applied");
    assert_eq!(app.outcome_of("evt_second").await, "ignored");
    assert_eq!(paid_transitions(&app, &order).await, 1);
}

#[tokio::test]
async fn the_claims_of_a_processor_that_died_are_taken_over_and_applied_once() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    // The app's processor must not see the event before the "dead" one has claimed it.
    app.sql(
        "CREATE FUNCTION claimed_by_the_dead() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             NEW.status := 'processing'; NEW.claimed_by := 'processor-killed';
             NEW.claimed_until := now() + interval '2 seconds'; NEW.attempts := 1;
             RETURN NEW;
         END $$;
         CREATE TRIGGER claimed_by_the_dead BEFORE INSERT ON stripe_events FOR EACH ROW
             EXECUTE FUNCTION claimed_by_the_dead();",
    )
    .await;
    assert_eq!(
        app.deliver(&completion("evt_paid", &order)).await.status(),
        200
    );
    app.sql("DROP TRIGGER claimed_by_the_dead ON stripe_events")
        .await;
    assert_eq!(app.outcome_of("evt_paid").await, "processing");

    // The claim expires; the app's processor takes the event over on its next poll.
    app.eventually(
        "SELECT count(*) FROM stripe_events WHERE event_id = 'evt_paid' AND outcome = 'applied' \
         AND attempts = 2",
        1,
    )
    .await;
    assert_eq!(app.outcome_of("evt_paid").await, "applied");
    assert_eq!(paid_transitions(&app, &order).await, 1);
    app.eventually("SELECT count(*) FROM licenses", 1).await;
}

#[tokio::test]
async fn an_announcement_after_commit_wakes_listeners_in_other_processes() {
    let app = BillingApp::spawn_without_workers().await;
    let mut wakeups = Wakeups::new(app.db.clone(), CHANNEL);
    // The listener connects on its first wait; announce until it hears one.
    let announcing = async {
        loop {
            app.layers.jobs.announce(CHANNEL);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = wakeups.next() => {}
        () = announcing => unreachable!(),
        () = tokio::time::sleep(Duration::from_secs(10)) => panic!("no wake-up arrived"),
    }
}

#[tokio::test]
async fn sync_events_feeds_what_the_webhook_missed_and_a_rerun_adds_nothing() {
    let app = BillingApp::spawn_without_workers().await;
    let delivered = app.pending_order("ada@example.com").await;
    let missed = app.pending_order("bob@example.com").await;
    let first = completion("evt_delivered", &delivered);
    let second = completion("evt_missed", &missed);
    let old = fake_stripe::event("evt_old", "customer.created", json!({"id": "cus_old"}));
    let mut old = old;
    old["created"] = json!(chrono::Utc::now().timestamp() - 7200);
    // Stripe has all three; the webhook only got the first (the outage swallowed the second).
    for event in [&old, &first, &second] {
        app.stripe.publish_event(event.clone());
    }
    for n in 0..150 {
        let filler = fake_stripe::event(
            &format!("evt_fill_{n}"),
            "customer.updated",
            json!({"id": "cus_1"}),
        );
        app.stripe.publish_event(filler);
    }
    app.post_event(&first).await;

    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let report = sync::sync_events(&app.layers.billing, since).await.unwrap();
    assert_eq!((report.listed, report.new, report.pages), (152, 151, 2));
    app.process_inbox().await;
    assert_eq!(app.outcome_of("evt_missed").await, "applied");
    assert_eq!(paid_transitions(&app, &missed).await, 1);
    assert_eq!(paid_transitions(&app, &delivered).await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE event_id = 'evt_old'")
            .await,
        0,
        "older than --since"
    );

    let again = sync::sync_events(&app.layers.billing, since).await.unwrap();
    assert_eq!((again.listed, again.new), (152, 0));
}

#[tokio::test]
async fn metrics_show_the_inbox_depth_its_oldest_event_and_the_processing_lag() {
    let app = BillingApp::spawn_without_workers().await;
    let order = app.pending_order("ada@example.com").await;
    app.post_event(&completion("evt_paid", &order)).await;
    app.deliver(&fake_stripe::event(
        "evt_waiting",
        "customer.created",
        json!({"id": "c"}),
    ))
    .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for expected in [
        r#"ironclad_stripe_inbox_events{status="pending"} 1"#,
        r#"ironclad_stripe_inbox_events{status="dead"} 0"#,
        "ironclad_stripe_inbox_oldest_unprocessed_age_seconds",
        r#"ironclad_stripe_event_processing_lag_seconds_count{event_type="checkout.session.completed",outcome="applied"} 1"#,
        r#"ironclad_webhook_duration_seconds_count{outcome="received"} 2"#,
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}
