//! Billing over real HTTP with real auth: customers sign up and log in through the auth routes and
//! call the billing routes with their bearer token, as a client would.
use std::time::Duration;

use ironclad::http::idempotency::types;
use serde_json::{Value, json};

use crate::support::billing::{BillingApp, PRO, TEAM};

const ORDERS: &str = "SELECT count(*) FROM orders";

#[tokio::test]
async fn checkout_with_a_key_creates_one_order_and_one_session_and_a_replay_creates_neither() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;
    let body = json!({"product_id": TEAM, "quantity": 2});

    let first = app.post_checkout(&ada.token, Some("key-1"), &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let order_id = first.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        first.header("location"),
        format!("/api/v1/billing/orders/{order_id}")
    );
    assert_eq!(first.body["status"], "pending_payment");
    assert_eq!(app.count(ORDERS).await, 1);
    assert_eq!(app.stripe.sessions().len(), 1);
    assert_eq!(app.stripe.requests().len(), 1);
    // The order is the caller's.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders o JOIN orgs g ON g.id = o.org_id \
             WHERE o.id = '{order_id}' AND o.placed_by = '{0}' AND g.personal_for = '{0}'",
            ada.id
        ))
        .await,
        1
    );

    // A retry with the same key: the stored answer, replayed; nothing new here or at Stripe.
    for _ in 0..2 {
        let again = app.post_checkout(&ada.token, Some("key-1"), &body).await;
        assert_eq!(again.status, 201);
        assert_eq!(again.header("idempotent-replayed"), "true");
        assert_eq!(again.header("location"), first.header("location"));
        assert_eq!(again.body, first.body);
    }
    assert_eq!(app.count(ORDERS).await, 1);
    assert_eq!(app.stripe.sessions().len(), 1);
    assert_eq!(app.stripe.requests().len(), 1);

    // The same key for another purchase is refused; no key at all is refused.
    let changed = app
        .post_checkout(
            &ada.token,
            Some("key-1"),
            &json!({"product_id": PRO, "quantity": 1}),
        )
        .await;
    assert_eq!(changed.status, 422, "{}", changed.body);
    assert_eq!(changed.problem_type(), types::MISMATCH);
    let missing = app.post_checkout(&ada.token, None, &body).await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(missing.problem_type(), types::MISSING);
    assert_eq!(app.count(ORDERS).await, 1);
    assert_eq!(app.stripe.requests().len(), 1);

    // Keys belong to their user: another customer's "key-1" is another purchase.
    let bob = app.customer("bob@example.com").await;
    let other = app.post_checkout(&bob.token, Some("key-1"), &body).await;
    assert_eq!(other.status, 201, "{}", other.body);
    assert_ne!(other.body["order_id"], first.body["order_id"]);
    assert_eq!(app.count(ORDERS).await, 2);
    assert_eq!(app.stripe.sessions().len(), 2);
}

#[tokio::test]
async fn a_duplicate_while_the_first_checkout_is_in_flight_is_409_and_creates_nothing() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;
    let body = json!({"product_id": PRO, "quantity": 1});

    // Stripe is slow: the first request waits there, holding its key.
    app.stripe.hold();
    let first = app.post_checkout(&ada.token, Some("key-1"), &body);
    let second = async {
        while app.stripe.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let response = app.post_checkout(&ada.token, Some("key-1"), &body).await;
        app.stripe.release();
        response
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.problem_type(), types::IN_FLIGHT);
    assert_eq!(second.header("retry-after"), "1");

    // Once the first answered, the retry gets its answer.
    let third = app.post_checkout(&ada.token, Some("key-1"), &body).await;
    assert_eq!(third.status, 201);
    assert_eq!(third.header("idempotent-replayed"), "true");
    assert_eq!(third.body, first.body);
    assert_eq!(app.count(ORDERS).await, 1);
    assert_eq!(app.stripe.requests().len(), 1);
    assert_eq!(app.stripe.sessions().len(), 1);
}

#[tokio::test]
async fn customers_see_only_their_own_orders_and_licences() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;
    let bob = app.customer("bob@example.com").await;
    let adas = app.order_for(&ada, "key-1").await;
    let bobs = app.order_for(&bob, "key-1").await;

    let listed = app.get_as(&ada.token, "/billing/orders").await;
    assert_eq!(listed.status, 200);
    let ids: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [adas.id.to_string()]);

    let own = app
        .get_as(&ada.token, &format!("/billing/orders/{}", adas.id))
        .await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["status"], "pending_payment");
    // Bob's order does not exist as far as Ada can tell.
    let foreign = app
        .get_as(&ada.token, &format!("/billing/orders/{}", bobs.id))
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.header("content-type"), "application/problem+json");
    let nowhere = app
        .get_as(
            &ada.token,
            &format!("/billing/orders/{}", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!((nowhere.status, nowhere.body), (404, foreign.body));

    // Bob's licence, once delivered, is listed for Bob only.
    let paid = fake_stripe::completed(&bobs.session, &bobs.payment_intent, true);
    let response = app
        .post_event(&fake_stripe::event(
            "evt_bob_paid",
            "checkout.session.completed",
            paid,
        ))
        .await;
    assert_eq!(response.status(), 200);
    app.eventually("SELECT count(*) FROM licenses", 1).await;
    let bobs_licences = app.get_as(&bob.token, "/billing/licenses").await;
    assert_eq!(bobs_licences.status, 200);
    assert_eq!(bobs_licences.body.as_array().unwrap().len(), 1);
    let adas_licences = app.get_as(&ada.token, "/billing/licenses").await;
    assert_eq!(adas_licences.status, 200);
    assert_eq!(adas_licences.body, json!([]));
}

#[tokio::test]
async fn happy_path_over_http_from_sign_up_to_licence() {
    let app = BillingApp::spawn().await;
    let ada = app.customer("ada@example.com").await;

    let checkout = app
        .post_checkout(
            &ada.token,
            Some("first-purchase"),
            &json!({"product_id": PRO, "quantity": 1}),
        )
        .await;
    assert_eq!(checkout.status, 201, "{}", checkout.body);
    let id = checkout.body["order_id"].as_str().unwrap().to_owned();
    let session = app
        .stripe
        .sessions()
        .into_iter()
        .find(|s| s["client_reference_id"] == id.as_str())
        .expect("a session for the order");
    assert_eq!(checkout.body["checkout_url"], session["url"]);

    // The customer pays; Stripe tells us with a signed event.
    let paid = fake_stripe::completed(&session, "pi_happy", true);
    let response = app
        .post_event(&fake_stripe::event(
            "evt_paid",
            "checkout.session.completed",
            paid,
        ))
        .await;
    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(ack["status"], "received");
    assert_eq!(app.outcome_of("evt_paid").await, "applied");

    let mail = app.billing_mail(2, Duration::from_secs(15)).await;
    assert_eq!(mail.len(), 2, "{mail:?}");
    let mail_of = |kind: &str| {
        mail.iter()
            .find(|m| {
                m.message_id.as_deref() == Some(&format!("<order-{id}.{kind}@ironclad.localhost>"))
            })
            .unwrap_or_else(|| panic!("a {kind} email"))
    };
    let receipt = mail_of("receipt");
    assert_eq!(receipt.to, ["ada@example.com"]);
    assert!(receipt.raw.contains("text/plain") && receipt.raw.contains("text/html"));
    let licence_mail = mail_of("license");
    assert_eq!(licence_mail.to, ["ada@example.com"]);

    // What the customer sees through the API.
    let mut order = Value::Null;
    for _ in 0..300 {
        order = app
            .get_as(&ada.token, &format!("/billing/orders/{id}"))
            .await
            .body;
        if order["status"] == "fulfilled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(order["status"], "fulfilled", "{order}");
    assert!(!order["paid_at"].is_null() && !order["fulfilled_at"].is_null());
    let licences = app.get_as(&ada.token, "/billing/licenses").await;
    assert_eq!(licences.status, 200);
    let licences = licences.body.as_array().unwrap().clone();
    assert_eq!(licences.len(), 1);
    assert_eq!(licences[0]["status"], "active");
    let key = licences[0]["license_key"].as_str().unwrap();
    assert!(
        licence_mail.raw.contains(key),
        "the emailed key is the listed one"
    );
    let orders = app.get_as(&ada.token, "/billing/orders").await;
    assert_eq!(orders.body.as_array().unwrap().len(), 1);
}
