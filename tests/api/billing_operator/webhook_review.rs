//! Webhook events to review (unhandled, for an unknown order, dead after failing): listed, and
//! replayed through the processor so that each applies once however many replays race.
use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::auth::{admin, admin_token};
use crate::support::{
    auth::call,
    billing::{BillingApp, PRO},
};

/// A session for an order that does not exist (yet): its amount and currency are the Pro licence's.
fn session_for(order_id: Uuid, session_id: &str) -> Value {
    json!({
        "id": session_id, "object": "checkout.session", "status": "complete",
        "payment_status": "paid", "amount_total": 4900, "currency": "usd",
        "client_reference_id": order_id, "metadata": {"order_id": order_id},
        "payment_intent": format!("pi_for_{session_id}"),
    })
}

#[tokio::test]
async fn webhook_events_to_review_are_listed_and_a_replay_applies_once() {
    // Two attempts, no backoff: a failing event is dead within one pass of the processor.
    let app = BillingApp::spawn_with(&[
        ("STRIPE_INBOX_MAX_ATTEMPTS", "2"),
        ("STRIPE_INBOX_RETRY_BASE_SECS", "0"),
    ])
    .await;
    let token = admin_token(&app).await;

    // Unhandled: a type we do not act on.
    let other = fake_stripe::event("evt_other", "customer.created", json!({"id": "cus_1"}));
    assert_eq!(app.post_event(&other).await.status(), 200);
    // Unknown order: paid for an order this database does not have (yet).
    let late_order = Uuid::now_v7();
    let unknown = fake_stripe::event(
        "evt_unknown",
        "checkout.session.completed",
        session_for(late_order, "cs_late"),
    );
    assert_eq!(app.post_event(&unknown).await.status(), 200);
    assert_eq!(app.outcome_of("evt_unknown").await, "unknown_order");
    // Dead: processing this one breaks every time, so each attempt rolls back, until none is left.
    let order = app.pending_order("ada@example.com").await;
    app.sql(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'injected failure'; END $$;
         CREATE TRIGGER boom BEFORE INSERT ON order_events FOR EACH ROW
             WHEN (NEW.stripe_event_id = 'evt_boom') EXECUTE FUNCTION boom();",
    )
    .await;
    let boom = fake_stripe::event(
        "evt_boom",
        "checkout.session.completed",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    );
    assert_eq!(app.post_event(&boom).await.status(), 200);
    assert_eq!(app.outcome_of("evt_boom").await, "dead");
    assert_eq!(app.order_status(order.id).await, "pending_payment");

    let listed = admin(&app, "GET", "/webhook-events", &token).await.body;
    let reasons: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{listed}");
    for expected in [
        ("evt_other", "unhandled_type"),
        ("evt_unknown", "unknown_order"),
        ("evt_boom", "dead"),
    ] {
        assert!(reasons.contains(&expected), "{expected:?} in {reasons:?}");
    }
    let dead = admin(&app, "GET", "/webhook-events?reason=dead", &token)
        .await
        .body;
    assert_eq!(dead.as_array().unwrap().len(), 1, "{dead}");
    assert_eq!(dead[0]["attempts"], 2);
    assert!(
        dead[0]["detail"]
            .as_str()
            .unwrap()
            .contains("injected failure")
    );

    // The failure is fixed: the replay runs the stored event through the processor again.
    app.sql("DROP TRIGGER boom ON order_events").await;
    let replayed = admin(&app, "POST", "/webhook-events/evt_boom/replay", &token)
        .await
        .body;
    assert_eq!(replayed["outcome"], "applied", "{replayed}");
    assert_eq!(replayed["status"], "processed");
    assert_eq!(replayed["replayed"], true);
    assert_eq!(replayed["previous_outcome"], Value::Null);
    app.eventually(
        &format!(
            "SELECT count(*) FROM orders WHERE id = '{}' AND status = 'fulfilled'",
            order.id
        ),
        1,
    )
    .await;

    // The late order appears (say, restored from a backup); several replays race to apply its event.
    let user = app.user("late@example.com").await;
    app.sql(&format!(
        "INSERT INTO orders (id, org_id, placed_by, checkout_key, currency, amount_total)
             SELECT '{late_order}', id, '{user}', 'late', 'usd', 4900 FROM orgs WHERE personal_for = '{user}';
         INSERT INTO order_lines (id, order_id, product_id, product_name, unit_amount, quantity, seats)
             VALUES (gen_random_uuid(), '{late_order}', '{PRO}', 'Ironclad Pro', 4900, 1, 1);"
    ))
    .await;
    let replays = join_all((0..3).map(|_| {
        call(
            &app,
            "POST",
            "/admin/webhook-events/evt_unknown/replay",
            Some(&token),
            None,
        )
    }))
    .await;
    let mut replayed = 0;
    for r in &replays {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["outcome"], "applied");
        if r.body["replayed"] == true {
            assert_eq!(r.body["previous_outcome"], "unknown_order");
            replayed += 1;
        }
    }
    assert_eq!(replayed, 1, "exactly one replay ran it");
    let again = admin(&app, "POST", "/webhook-events/evt_unknown/replay", &token)
        .await
        .body;
    assert_eq!(
        (again["replayed"].as_bool(), again["outcome"].as_str()),
        (Some(false), Some("applied"))
    );
    app.jobs_idle().await;
    let late = format!("order_id = '{late_order}'");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE {late} AND to_status = 'paid'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM licenses WHERE {late}"))
            .await,
        1
    );
    assert_eq!(app.order_status(late_order).await, "fulfilled");

    // What is left to review: the unhandled type.
    let listed = admin(&app, "GET", "/webhook-events", &token).await.body;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["event_id"], "evt_other");
    let missing = call(
        &app,
        "POST",
        "/admin/webhook-events/evt_never/replay",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
}
