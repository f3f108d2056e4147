//! Subscribing: the plan catalogue, one Stripe customer per org, a subscription-mode session with
//! the plan's price, seats and trial, one open checkout per org, and 409 once subscribed.
use serde_json::json;

use super::{session_of, start_checkout, subscribed};
use crate::{
    orgs::{call, join, org, person},
    support::billing::BillingApp,
};

#[tokio::test]
async fn the_plans_are_listed_with_their_prices_and_features() {
    let app = BillingApp::spawn().await;
    let r = app.get("/api/v1/billing/plans").await;
    assert_eq!(r.status(), 200);
    let plans: serde_json::Value = r.json().await.unwrap();
    let keys: Vec<_> = plans
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].clone())
        .collect();
    assert_eq!(keys, [json!("starter"), json!("business")]);
    let business = &plans[1];
    assert_eq!(business["trial_days"], 14);
    assert_eq!(business["max_seats"], 100);
    assert!(
        business["features"]
            .as_array()
            .unwrap()
            .contains(&json!("audit_log"))
    );
    assert_eq!(
        business["prices"],
        json!([{"interval": "month", "unit_amount": 2900, "currency": "usd"},
               {"interval": "year", "unit_amount": 29000, "currency": "usd"}])
    );
}

#[tokio::test]
async fn a_checkout_opens_a_subscription_session_for_the_orgs_one_customer() {
    let app = BillingApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    let r = start_checkout(&app, &ada, &acme, "business", 4, "k1").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.body["checkout_url"].as_str().unwrap();
    assert!(url.starts_with(&app.stripe.url), "the hosted page: {url}");
    // A retry with the same key answers the same, and makes nothing new at Stripe.
    let again = start_checkout(&app, &ada, &acme, "business", 4, "k1").await;
    assert_eq!(again.body, r.body);

    let customers = app.stripe.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["metadata"]["org_id"], acme.as_str());
    assert_eq!(customers[0]["email"], "ada@example.com");
    let session = app
        .stripe
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/checkout/sessions")
        .expect("a session request");
    let form = &session.form;
    assert_eq!(form["mode"], "subscription");
    assert_eq!(form["customer"], customers[0]["id"].as_str().unwrap());
    assert_eq!(form["line_items[0][price]"], "price_demo_business_month");
    assert_eq!(form["line_items[0][quantity]"], "4");
    assert_eq!(form["subscription_data[trial_period_days]"], "14");
    assert_eq!(form["subscription_data[metadata][org_id]"], acme);
    assert!(
        session
            .idempotency_key
            .unwrap()
            .starts_with("subscription-checkout-")
    );

    // A second checkout (another tab, another key) closes the first session before opening one.
    let second = start_checkout(&app, &ada, &acme, "starter", 4, "k2").await;
    assert_eq!(second.status, 201, "{}", second.body);
    let sessions = app.stripe.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["status"], "expired");
    assert_eq!(sessions[1]["status"], "open");
    assert_eq!(app.stripe.customers().len(), 1, "one customer per org");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM subscription_checkouts WHERE org_id = '{acme}' AND status = 'open'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn once_subscribed_another_checkout_is_409_and_a_paid_earlier_session_wins() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let r = start_checkout(&app, &s.owner, &s.org, "business", 3, "again").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:subscription-exists");

    // An earlier session paid in another tab while its webhook is still on the way: the new
    // checkout finds it completed when closing it, and opens nothing.
    let bea = person(&app, "bea@example.com").await;
    let beta = org(&app, &bea, "beta").await;
    assert_eq!(
        start_checkout(&app, &bea, &beta, "starter", 1, "b1")
            .await
            .status,
        201
    );
    let first = session_of(&app, &beta);
    app.stripe.complete_subscription_checkout(&first, "active");
    let r = start_checkout(&app, &bea, &beta, "business", 1, "b2").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:subscription-exists");
    let open = app
        .stripe
        .sessions()
        .iter()
        .filter(|s| s["status"] == "open")
        .count();
    assert_eq!(open, 0, "no second payable session");
}

#[tokio::test]
async fn seats_must_cover_the_members_and_the_plan_limit_and_members_cannot_subscribe() {
    let app = BillingApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let cat = person(&app, "cat@example.com").await;
    let dan = person(&app, "dan@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &cat, "member").await;
    join(&app, &acme, &dan, "member").await;
    let r = start_checkout(&app, &ada, &acme, "starter", 2, "k1").await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:seats-below-members");
    let r = start_checkout(&app, &ada, &acme, "starter", 6, "k2").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = start_checkout(&app, &ada, &acme, "gold", 3, "k3").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:plan-not-found");
    let r = start_checkout(&app, &cat, &acme, "starter", 3, "k4").await;
    assert_eq!(r.status, 403, "{}", r.body);
    // An outsider learns nothing.
    let r = call(
        &app,
        &dan,
        "GET",
        "/orgs/00000000-0000-0000-0000-000000000000/billing/subscription",
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(app.stripe.sessions().is_empty(), "nothing reached Stripe");
}
