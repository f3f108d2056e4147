//! Cancelling at the period's end and resuming, ending a past-due subscription at once, changing
//! plan and seats (with `pending_if_incomplete`), and the customer portal.
use serde_json::json;

use super::{copy_of, keyed, stripe_state, subscribed};
use crate::{orgs::call, support::billing::BillingApp};

#[tokio::test]
async fn cancel_at_period_end_then_resume_and_a_past_due_one_ends_at_once() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let path = |what: &str| format!("/orgs/{}/billing/subscription/{what}", s.org);
    let r = keyed(&app, &s.owner, "POST", &path("cancel"), "c1", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["subscription"]["cancel_at_period_end"], true);
    assert_eq!(r.body["subscription"]["status"], "active");
    assert_eq!(
        copy_of(&app, &s.sub_id).await,
        stripe_state(&app, &s.sub_id)
    );
    // The features last until the period ends.
    assert_eq!(r.body["features"], json!(["projects"]));

    let r = keyed(&app, &s.owner, "POST", &path("resume"), "r1", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["subscription"]["cancel_at_period_end"], false);
    let again = keyed(&app, &s.owner, "POST", &path("resume"), "r2", None).await;
    assert_eq!(again.status, 409, "{}", again.body);

    app.stripe
        .update_subscription(&s.sub_id, |sub| sub["status"] = json!("past_due"));
    let r = keyed(&app, &s.owner, "POST", &path("cancel"), "c2", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["subscription"]["status"], "canceled");
    assert_eq!(r.body["billing_status"], "canceled");
    assert!(
        app.stripe
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path == format!("/v1/subscriptions/{}", s.sub_id))
    );
    let r = keyed(&app, &s.owner, "POST", &path("cancel"), "c3", None).await;
    assert_eq!(r.status, 404, "nothing left to cancel: {}", r.body);
}

#[tokio::test]
async fn a_plan_change_moves_the_one_item_and_fails_safe() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let path = format!("/orgs/{}/billing/subscription", s.org);
    let body = json!({"plan": "business", "interval": "year", "seats": 8});
    let r = keyed(&app, &s.owner, "PUT", &path, "p1", Some(body.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["subscription"]["plan"], "business");
    assert_eq!(r.body["subscription"]["interval"], "year");
    assert_eq!(r.body["subscription"]["seats"], 8);
    assert!(
        r.body["features"]
            .as_array()
            .unwrap()
            .contains(&json!("audit_log"))
    );
    let update = app
        .stripe
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == format!("/v1/subscriptions/{}", s.sub_id))
        .expect("an update");
    assert_eq!(update.form["payment_behavior"], "pending_if_incomplete");
    assert_eq!(update.form["proration_behavior"], "create_prorations");
    assert_eq!(update.form["items[0][price]"], "price_demo_business_year");
    assert!(
        update
            .idempotency_key
            .unwrap()
            .starts_with("subscription-change-")
    );
    // A retry is the same answer, no second change.
    let again = keyed(&app, &s.owner, "PUT", &path, "p1", Some(body)).await;
    assert_eq!(again.status, 200);
    let updates = app
        .stripe
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == format!("/v1/subscriptions/{}", s.sub_id))
        .count();
    assert_eq!(updates, 1);

    // Too many seats for the plan, or a past-due subscription: refused, nothing sent.
    let r = keyed(
        &app,
        &s.owner,
        "PUT",
        &path,
        "p2",
        Some(json!({"plan": "starter", "interval": "month", "seats": 50})),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    app.stripe
        .update_subscription(&s.sub_id, |sub| sub["status"] = json!("past_due"));
    app.post_event(&super::sub_event(
        "evt_pd",
        "updated",
        app.stripe.subscription(&s.sub_id),
    ))
    .await;
    let r = keyed(
        &app,
        &s.owner,
        "PUT",
        &path,
        "p3",
        Some(json!({"plan": "business", "interval": "month", "seats": 8})),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:subscription-not-changeable"
    );
}

#[tokio::test]
async fn a_preview_shows_the_prorated_amount_and_changes_nothing() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let before = stripe_state(&app, &s.sub_id);
    let r = call(
        &app,
        &s.owner,
        "POST",
        &format!("/orgs/{}/billing/subscription/preview", s.org),
        Some(json!({"plan": "business", "interval": "month", "seats": 7})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"amount_due": 700, "currency": "usd", "proration": "create_prorations"})
    );
    let preview = app
        .stripe
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/invoices/create_preview")
        .expect("a preview request");
    assert_eq!(preview.form["subscription"], s.sub_id);
    assert_eq!(
        preview.form["subscription_details[items][0][price]"],
        "price_demo_business_month"
    );
    assert_eq!(
        preview.form["subscription_details[proration_behavior]"],
        "create_prorations"
    );
    assert_eq!(stripe_state(&app, &s.sub_id), before, "nothing changed");
}

#[tokio::test]
async fn the_portal_opens_for_the_orgs_customer() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let r = call(
        &app,
        &s.owner,
        "POST",
        &format!("/orgs/{}/billing/portal", s.org),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.test/")
    );
    let portal = app
        .stripe
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/billing_portal/sessions")
        .unwrap();
    assert_eq!(
        portal.form["customer"],
        app.stripe.customers()[0]["id"].as_str().unwrap()
    );
    assert_eq!(portal.form["return_url"], "http://localhost:3000/billing");

    let other = crate::orgs::person(&app, "bea@example.com").await;
    let theirs = crate::orgs::org(&app, &other, "beta").await;
    let r = call(
        &app,
        &other,
        "POST",
        &format!("/orgs/{theirs}/billing/portal"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "never subscribed: {}", r.body);
}
