//! `RequireEntitlement("audit_log")` on the example route: granted by a plan with the feature
//! while the subscription is active, trialing, or past due within the grace; refused with a 402
//! saying why otherwise; and an outsider still gets the org's 404.
use serde_json::json;

use super::{sub_event, subscribed};
use crate::{
    orgs::{call, join, org, person},
    support::billing::BillingApp,
};

async fn audit_log(app: &BillingApp, who: &crate::orgs::Person, org: &str) -> (u16, String) {
    let r = call(app, who, "GET", &format!("/orgs/{org}/audit-log"), None).await;
    (r.status, r.problem_type().to_owned())
}

/// One run of the subscriptions' reconciliation sweep: how many copies it read again.
async fn sweep(app: &BillingApp) -> usize {
    ironclad::billing::subscriptions::sweep::sweep(&app.layers.billing)
        .await
        .unwrap()
}

const NOT_IN_PLAN: &str = "urn:ironclad:problem:feature-not-in-plan";
const REQUIRED: &str = "urn:ironclad:problem:subscription-required";
const PAST_DUE: &str = "urn:ironclad:problem:payment-past-due";

#[tokio::test]
async fn the_feature_follows_the_plan_and_the_subscriptions_standing() {
    let app = BillingApp::spawn().await;
    // Never subscribed.
    let ada = person(&app, "ada@example.com").await;
    let free = org(&app, &ada, "free").await;
    assert_eq!(audit_log(&app, &ada, &free).await, (402, REQUIRED.into()));

    // A plan without the feature.
    let starter = subscribed(&app, "small", "starter", "active").await;
    assert_eq!(
        audit_log(&app, &starter.owner, &starter.org).await,
        (402, NOT_IN_PLAN.into())
    );

    // A plan with it: granted while trialing and active.
    let s = subscribed(&app, "acme", "business", "trialing").await;
    assert_eq!(audit_log(&app, &s.owner, &s.org).await.0, 200);
    let active = app
        .stripe
        .update_subscription(&s.sub_id, |sub| sub["status"] = json!("active"));
    app.post_event(&sub_event("evt_active", "updated", active))
        .await;
    let r = call(
        &app,
        &s.owner,
        "GET",
        &format!("/orgs/{}/audit-log", s.org),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.is_array());

    // Past due: granted within the grace, refused beyond it.
    let past_due = app
        .stripe
        .update_subscription(&s.sub_id, |sub| sub["status"] = json!("past_due"));
    app.post_event(&sub_event("evt_past_due", "updated", past_due))
        .await;
    assert_eq!(audit_log(&app, &s.owner, &s.org).await.0, 200);
    app.sql(&format!(
        "UPDATE subscriptions SET status_since = now() - interval '8 days' \
         WHERE stripe_subscription_id = '{}'",
        s.sub_id
    ))
    .await;
    assert_eq!(
        audit_log(&app, &s.owner, &s.org).await,
        (402, PAST_DUE.into())
    );

    // Ended: refused.
    let ended = app
        .stripe
        .update_subscription(&s.sub_id, |sub| sub["status"] = json!("canceled"));
    app.post_event(&sub_event("evt_ended", "deleted", ended))
        .await;
    assert_eq!(
        audit_log(&app, &s.owner, &s.org).await,
        (402, REQUIRED.into())
    );
}

#[tokio::test]
async fn a_missed_renewal_stops_granting_once_the_period_is_long_over() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "business", "active").await;
    assert_eq!(audit_log(&app, &s.owner, &s.org).await.0, 200);
    // Our copy says active, but its period ended two days ago and nothing came since.
    app.sql(&format!(
        "UPDATE subscriptions SET current_period_end = now() - interval '2 days' \
         WHERE stripe_subscription_id = '{}'",
        s.sub_id
    ))
    .await;
    assert_eq!(
        audit_log(&app, &s.owner, &s.org).await,
        (402, REQUIRED.into())
    );
    // The sweep reads it again from Stripe (which renewed it) and the feature is back.
    let read = sweep(&app).await;
    assert_eq!(
        read, 0,
        "read within the last hour: not yet overdue for the sweep"
    );
    app.sql(&format!(
        "UPDATE subscriptions SET read_started_at = now() - interval '2 hours' \
         WHERE stripe_subscription_id = '{}'",
        s.sub_id
    ))
    .await;
    let read = sweep(&app).await;
    assert_eq!(read, 1);
    assert_eq!(audit_log(&app, &s.owner, &s.org).await.0, 200);
}

#[tokio::test]
async fn a_missed_renewal_after_a_paid_period_is_read_again() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "business", "active").await;
    // The period was paid: its `invoice.paid` arrived, so the copy is paid through its end.
    let sub = app.stripe.subscription(&s.sub_id);
    let end = sub["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let invoice = fake_stripe::invoice(&sub, "in_first", 2700, end, 1);
    app.post_event(&fake_stripe::event("evt_paid", "invoice.paid", invoice))
        .await;
    // Stripe renewed it, and every event of the renewal was lost (an outage longer than its
    // retries): our copy's period, paid in full, ended two days ago.
    app.stripe
        .update_subscription(&s.sub_id, |sub| fake_stripe::renew(sub, "in_renewal"));
    app.sql(&format!(
        "UPDATE subscriptions SET current_period_end = now() - interval '2 days', \
             paid_through = now() - interval '2 days', read_started_at = now() - interval '2 hours' \
         WHERE stripe_subscription_id = '{}'",
        s.sub_id
    ))
    .await;
    assert_eq!(
        audit_log(&app, &s.owner, &s.org).await,
        (402, REQUIRED.into())
    );
    // The sweep reads every copy whose period has ended, paid or not.
    let read = sweep(&app).await;
    assert_eq!(read, 1, "a paid period that ended is read again");
    assert_eq!(audit_log(&app, &s.owner, &s.org).await.0, 200);
}

#[tokio::test]
async fn outsiders_get_the_orgs_404_and_plain_members_its_403_before_any_402() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "business", "active").await;
    let eve = person(&app, "eve@example.com").await;
    assert_eq!(audit_log(&app, &eve, &s.org).await.0, 404);
    let cat = person(&app, "cat@example.com").await;
    join(&app, &s.org, &cat, "member").await;
    assert_eq!(audit_log(&app, &cat, &s.org).await.0, 403);
    let anonymous = app
        .client
        .get(app.url(&format!("/api/v1/orgs/{}/audit-log", s.org)))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
