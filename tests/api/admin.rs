//! Operator tools: who may use them, and that each repairs what it promises — dead jobs run again,
//! a webhook event replayed applies once, a stuck order ends where its Checkout Session (or, for a
//! delayed payment, its PaymentIntent) says.
use std::time::Duration;

use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp,
    auth::{PASSWORD, Response, call, enable_mfa, login, now, resign, signed_in, tokens_of},
    billing::{BillingApp, Order, PRO, session_id},
    fake_stripe,
    jobs::welcome,
};

/// An admin's first session, stepped up with a fresh second factor (aal2).
async fn admin_token(app: &TestApp) -> String {
    let password = secrecy::SecretString::from(PASSWORD.to_owned());
    ironclad::auth::accounts::create_admin(&app.db, "root@example.com", &password)
        .await
        .unwrap();
    let (access, _) = tokens_of(&login(app, "root@example.com", PASSWORD).await);
    enable_mfa(app, &access).await.access_token
}

async fn admin(app: &TestApp, method: &str, path: &str, token: &str) -> Response {
    let r = call(app, method, &format!("/admin{path}"), Some(token), None).await;
    assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    r
}

const ROUTES: [(&str, &str); 6] = [
    ("GET", "/admin/jobs/dead"),
    ("POST", "/admin/jobs/dead/retry"),
    ("GET", "/admin/webhook-events"),
    ("POST", "/admin/webhook-events/evt_nope/replay"),
    ("GET", "/admin/stuck-orders"),
    ("POST", "/admin/stuck-orders/reconcile"),
];

/// Reconciles every stuck order at once (as the periodic sweep does) and returns the results.
async fn sweep(app: &TestApp, token: &str) -> Value {
    admin(
        app,
        "POST",
        "/stuck-orders/reconcile?older_than_secs=0",
        token,
    )
    .await
    .body
}

#[tokio::test]
async fn operator_tools_need_the_admin_role_and_a_fresh_second_factor() {
    let app = BillingApp::spawn().await;
    let password = secrecy::SecretString::from(PASSWORD.to_owned());
    ironclad::auth::accounts::create_admin(&app.db, "root@example.com", &password)
        .await
        .unwrap();
    let (no_mfa, _) = tokens_of(&login(&app, "root@example.com", PASSWORD).await);
    let fresh = enable_mfa(&app, &no_mfa).await.access_token;
    let stale = resign(&fresh, |c| c["mfa_time"] = (now() - 301).into());
    // A user with a fresh second factor is still not an admin.
    let (user, _) = signed_in(&app, "ada@example.com").await;
    let user = enable_mfa(&app, &user).await.access_token;

    for (method, path) in ROUTES {
        let anonymous = call(&app, method, path, None, None).await;
        assert_eq!(anonymous.status, 401, "{method} {path}");
        let r = call(&app, method, path, Some(&user), None).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:forbidden");
        let r = call(&app, method, path, Some(&stale), None).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:mfa-required");
        let r = call(&app, method, path, Some(&fresh), None).await;
        let expected = if path.contains("evt_nope") { 404 } else { 200 };
        assert_eq!(r.status, expected, "{method} {path}: {}", r.body);
    }
    // The admin's token from before MFA was enabled: aal1, so a step-up is asked for.
    let r = call(&app, "GET", "/admin/jobs/dead", Some(&no_mfa), None).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // An admin who never enrolled is told to enrol first.
    ironclad::auth::accounts::create_admin(&app.db, "ops@example.com", &password)
        .await
        .unwrap();
    let (unenrolled, _) = tokens_of(&login(&app, "ops@example.com", PASSWORD).await);
    let r = call(&app, "GET", "/admin/jobs/dead", Some(&unenrolled), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:mfa-enrolment-required"
    );
    // Refused requests did nothing.
    // Only the admitted requests left a trace (the two POSTs that found something to do, or not).
    assert_eq!(app.count("SELECT count(*) FROM admin_actions").await, 2);
}

#[tokio::test]
async fn dead_jobs_are_listed_with_their_error_and_retried_one_or_all() {
    let app = TestApp::spawn_with(&[("JOBS_MAX_ATTEMPTS", "1")]).await;
    let token = admin_token(&app).await;
    app.jobs_idle().await;
    let sent_before = app.sink.messages().len();
    // A mail outage: every send fails (sending claims its sent_emails row first).
    app.db
        .execute_unprepared(
            "CREATE FUNCTION outage() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'mail provider down'; END $$;
             CREATE TRIGGER outage BEFORE INSERT ON sent_emails FOR EACH ROW EXECUTE FUNCTION outage();",
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for to in ["a@example.com", "b@example.com", "c@example.com"] {
        let queued = app
            .state
            .jobs
            .push(&app.db, &welcome(to), Default::default())
            .await
            .unwrap();
        let ironclad::jobs::Enqueued::New(id) = queued else {
            panic!("a new job")
        };
        ids.push(id);
    }
    app.eventually(
        "SELECT count(*) FROM apalis.jobs WHERE status = 'Killed'",
        3,
    )
    .await;

    let dead = admin(&app, "GET", "/jobs/dead?queue=email", &token)
        .await
        .body;
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 3);
    for job in dead {
        assert_eq!(job["queue"], "email");
        assert_eq!(
            (job["attempts"].as_i64(), job["max_attempts"].as_i64()),
            (Some(1), Some(1))
        );
        let error = job["last_error"].as_str().unwrap();
        assert!(error.contains("mail provider down"), "{error}");
        assert!(job["failed_at"].is_string());
    }
    assert_eq!(
        admin(&app, "GET", "/jobs/dead?queue=other", &token)
            .await
            .body,
        json!([])
    );

    // The outage ends; one job is retried by hand and runs again.
    app.db
        .execute_unprepared("DROP TRIGGER outage ON sent_emails")
        .await
        .unwrap();
    let retried = admin(
        &app,
        "POST",
        &format!("/jobs/dead/{}/retry", ids[0]),
        &token,
    )
    .await;
    assert_eq!(retried.body["id"], ids[0].as_str());
    assert!(
        retried.body["last_error"]
            .as_str()
            .unwrap()
            .contains("mail provider down")
    );
    app.eventually(
        &format!(
            "SELECT count(*) FROM apalis.jobs WHERE id = '{}' AND status = 'Done' AND attempts = 1",
            ids[0]
        ),
        1,
    )
    .await;
    // Not dead any more: a second retry finds nothing to do.
    let again = call(
        &app,
        "POST",
        &format!("/admin/jobs/dead/{}/retry", ids[0]),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(again.status, 404, "{}", again.body);

    // The rest, all at once.
    let all = admin(&app, "POST", "/jobs/dead/retry", &token).await.body;
    assert_eq!(all["retried"], 2);
    app.jobs_idle().await;
    let mut recipients: Vec<String> = app.sink.messages()[sent_before..]
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["a@example.com", "b@example.com", "c@example.com"]
    );
    assert_eq!(
        admin(&app, "GET", "/jobs/dead", &token).await.body,
        json!([])
    );
    // What each retry found is kept in the audit trail.
    assert_eq!(
        app.count("SELECT count(*) FROM admin_actions WHERE action LIKE 'dead_job%' AND details::text LIKE '%mail provider down%'")
            .await,
        2
    );
}

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
    let app = BillingApp::spawn().await;
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
    let ack: Value = app.post_event(&unknown).await.json().await.unwrap();
    assert_eq!(ack["outcome"], "unknown_order");
    // Failed: processing this one breaks, so it rolls back and answers 500.
    let order = app.pending_order("ada@example.com").await;
    app.sql(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'injected failure'; END $$;
         CREATE TRIGGER boom BEFORE INSERT ON stripe_events FOR EACH ROW
             WHEN (NEW.event_id = 'evt_boom') EXECUTE FUNCTION boom();",
    )
    .await;
    let boom = fake_stripe::event(
        "evt_boom",
        "checkout.session.completed",
        fake_stripe::completed(&order.session, &order.payment_intent, true),
    );
    assert_eq!(app.post_event(&boom).await.status(), 500);
    assert_eq!(app.post_event(&boom).await.status(), 500);

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
        ("evt_boom", "failed"),
    ] {
        assert!(reasons.contains(&expected), "{expected:?} in {reasons:?}");
    }
    let failed = admin(&app, "GET", "/webhook-events?reason=failed", &token)
        .await
        .body;
    assert_eq!(failed[0]["failures"], 2);
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("injected failure")
    );

    // The failure is fixed: the replay runs the stored delivery as Stripe's retry would.
    app.sql("DROP TRIGGER boom ON stripe_events").await;
    let replayed = admin(&app, "POST", "/webhook-events/evt_boom/replay", &token)
        .await
        .body;
    assert_eq!(replayed["outcome"], "applied");
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
        "INSERT INTO orders (id, user_id, checkout_key, currency, amount_total)
             VALUES ('{late_order}', '{user}', 'late', 'usd', 4900);
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

fn pay(app: &BillingApp, session: &Value, payment_intent: &str) {
    let id = session["id"].as_str().unwrap();
    app.stripe
        .update_session(id, |s| *s = fake_stripe::completed(s, payment_intent, true));
}

fn expire(app: &BillingApp, session: &Value) {
    let id = session["id"].as_str().unwrap();
    app.stripe
        .update_session(id, |s| s["status"] = json!("expired"));
}

#[tokio::test]
async fn stuck_orders_are_reconciled_with_their_checkout_session() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let paid = app.pending_order("paid@example.com").await;
    let expired = app.pending_order("expired@example.com").await;
    let open = app.pending_order("open@example.com").await;
    // At Stripe, one was paid and one expired; their webhooks never arrived.
    pay(&app, &paid.session, &paid.payment_intent);
    expire(&app, &expired.session);

    // Younger than BILLING_RECONCILE_AFTER_SECS (30 min by default): not stuck yet.
    assert_eq!(
        admin(&app, "GET", "/stuck-orders", &token).await.body,
        json!([])
    );
    let stuck = admin(&app, "GET", "/stuck-orders?older_than_secs=0", &token)
        .await
        .body;
    assert_eq!(stuck.as_array().unwrap().len(), 3, "{stuck}");

    let r = admin(
        &app,
        "POST",
        &format!("/stuck-orders/{}/reconcile", paid.id),
        &token,
    )
    .await
    .body;
    assert_eq!(r["result"], "applied", "{r}");
    assert_eq!(r["status"], "paid");
    assert_eq!(r["session_status"], "complete");
    // Exactly what the webhook would have done: licence, licence email and receipt.
    crate::support::auth::mail_to(&app, "paid@example.com", "Your Ironclad receipt").await;
    crate::support::auth::mail_to(&app, "paid@example.com", "Your Ironclad licence").await;
    app.eventually(
        &format!(
            "SELECT count(*) FROM licenses WHERE order_id = '{}'",
            paid.id
        ),
        1,
    )
    .await;

    let all = sweep(&app, &token).await;
    let results: Vec<(String, &str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["order_id"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(results.len(), 2, "{all}");
    assert!(
        results.contains(&(expired.id.to_string(), "applied", "expired")),
        "{all}"
    );
    assert!(
        results.contains(&(open.id.to_string(), "still_open", "pending_payment")),
        "{all}"
    );

    // Again: nothing changes.
    let r = admin(
        &app,
        "POST",
        &format!("/stuck-orders/{}/reconcile", paid.id),
        &token,
    )
    .await
    .body;
    assert_eq!(r["result"], "not_pending");
    let all = sweep(&app, &token).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "only the open one is left: {all}"
    );
    app.jobs_idle().await;
    assert_eq!(
        app.count("SELECT count(*) FROM order_events WHERE source = 'reconcile'")
            .await,
        2,
        "one transition each for the paid and the expired order"
    );
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 1);
    assert_eq!(app.order_status(paid.id).await, "fulfilled");
    assert_eq!(app.order_status(expired.id).await, "expired");
    assert_eq!(app.order_status(open.id).await, "pending_payment");
    let receipts = app
        .sink
        .messages()
        .iter()
        .filter(|m| m.subject.as_deref().unwrap_or("").contains("receipt"))
        .count();
    assert_eq!(receipts, 1);
    let missing = call(
        &app,
        "POST",
        &format!("/admin/stuck-orders/{}/reconcile", Uuid::now_v7()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn the_periodic_sweep_reconciles_without_anyone_asking() {
    let app = BillingApp::spawn_with(&[
        ("BILLING_RECONCILE_AFTER_SECS", "0"),
        ("BILLING_RECONCILE_INTERVAL_SECS", "1"),
    ])
    .await;
    let order = app.pending_order("ada@example.com").await;
    pay(&app, &order.session, &order.payment_intent);
    app.eventually(
        &format!(
            "SELECT count(*) FROM orders WHERE id = '{}' AND status = 'fulfilled'",
            order.id
        ),
        1,
    )
    .await;
    crate::support::auth::mail_to(&app, "ada@example.com", "Your Ironclad receipt").await;
    // Later sweeps find nothing to do: still one transition, one licence.
    app.eventually(
        "SELECT least(count(*), 3) FROM apalis.jobs WHERE job_type = 'billing_reconcile_stuck_orders' AND status = 'Done'",
        3,
    )
    .await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{}' AND to_status = 'paid'",
            order.id
        ))
        .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM licenses").await, 1);
}

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

    crate::support::auth::mail_to(&app, "ach@example.com", "Your Ironclad licence").await;
    crate::support::auth::mail_to(&app, "ach@example.com", "Your Ironclad receipt").await;
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
            let first = ironclad::billing::reconcile::stuck_orders(&db, Duration::ZERO, 1)
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

/// Checks out for `user` under `key` while Stripe is down: the order is left without a session.
async fn order_without_session(app: &BillingApp, user: Uuid, key: &str) -> Uuid {
    app.stripe.fail_next(1);
    app.checkout(user, key, PRO, 1).await.unwrap_err();
    app.db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT id FROM orders WHERE checkout_key = '{key}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<Uuid>("", "id")
        .unwrap()
}

#[tokio::test]
async fn an_order_that_never_got_a_session_expires_once_its_checkout_can_no_longer_be_retried() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let user = app.user("no-session@example.com").await;
    let old = order_without_session(&app, user, "old").await;
    let recent = order_without_session(&app, user, "recent").await;
    app.sql(
        "UPDATE orders SET created_at = now() - interval '25 hours' WHERE checkout_key = 'old'",
    )
    .await;

    let results = sweep(&app, &token).await;
    let result_for = |id: Uuid| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["order_id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} not swept: {results}"))
            .clone()
    };
    assert_eq!(result_for(old)["result"], "applied", "{results}");
    assert_eq!(result_for(old)["status"], "expired", "{results}");
    assert_eq!(result_for(recent)["result"], "no_session", "{results}");
    assert_eq!(app.order_status(old).await, "expired");
    assert_eq!(app.order_status(recent).await, "pending_payment");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{old}' \
             AND source = 'reconcile' AND event = 'session_expired' AND outcome = 'applied'"
        ))
        .await,
        1
    );

    // A late retry of the expired checkout hands out no way to pay; the recent one still can.
    let (late, _) = app.checkout(user, "old", PRO, 1).await.unwrap();
    assert_eq!(late.status, ironclad::billing::state::OrderStatus::Expired);
    assert_eq!(late.checkout_url, None);
    let (retried, _) = app.checkout(user, "recent", PRO, 1).await.unwrap();
    assert!(retried.checkout_url.is_some());
}

#[tokio::test]
async fn a_checkout_retry_racing_the_expiry_hands_out_no_session() {
    let app = BillingApp::spawn().await;
    let token = admin_token(&app).await;
    let user = app.user("racer@example.com").await;
    let order = order_without_session(&app, user, "late").await;
    app.sql(
        "UPDATE orders SET created_at = now() - interval '25 hours' WHERE checkout_key = 'late'",
    )
    .await;

    // The retry reaches Stripe (held there) before the sweep expires the order.
    app.stripe.hold();
    let retry = app.checkout(user, "late", PRO, 1);
    let expire = async {
        while app.stripe.requests().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let swept = sweep(&app, &token).await;
        app.stripe.release();
        swept
    };
    let (retried, swept) = tokio::join!(retry, expire);
    assert_eq!(swept[0]["status"], "expired", "{swept}");
    let (retried, _) = retried.unwrap();
    assert_eq!(
        retried.status,
        ironclad::billing::state::OrderStatus::Expired
    );
    assert_eq!(
        retried.checkout_url, None,
        "a session for an expired order must never be handed out"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders WHERE id = '{order}' AND stripe_checkout_session_id IS NULL"
        ))
        .await,
        1
    );
}
