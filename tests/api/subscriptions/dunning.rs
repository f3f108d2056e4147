//! Invoices: `invoice.paid` applies from the invoice (even before we know the subscription), one
//! receipt per invoice; a failed payment emails once per attempt; a payment waiting for SCA shows
//! as `action_required` until it is paid.
use chrono::Utc;
use serde_json::json;

use super::{copy_of, sub_event, subscribed};
use crate::{orgs::call, support::billing::BillingApp};

async fn subjects(app: &BillingApp, starting: &str) -> usize {
    app.jobs_idle().await;
    app.sink
        .messages()
        .into_iter()
        .filter(|m| {
            m.subject
                .as_deref()
                .is_some_and(|s| s.starts_with(starting))
        })
        .count()
}

async fn billing_status(app: &BillingApp, s: &super::Subscribed) -> String {
    let r = call(
        app,
        &s.owner,
        "GET",
        &format!("/orgs/{}/billing/subscription", s.org),
        None,
    )
    .await;
    r.body["billing_status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_renewal_paid_extends_the_period_and_sends_one_receipt() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let before = copy_of(&app, &s.sub_id).await.4;
    let renewed = app
        .stripe
        .update_subscription(&s.sub_id, |sub| fake_stripe::renew(sub, "in_renewal"));
    let end = renewed["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let invoice = fake_stripe::invoice(&renewed, "in_renewal", 2700, end, 1);
    // Stripe's `invoice.paid`, then the same invoice again under another event id.
    for id in ["evt_paid", "evt_paid_again"] {
        app.post_event(&fake_stripe::event(id, "invoice.paid", invoice.clone()))
            .await;
    }
    let copy = copy_of(&app, &s.sub_id).await;
    assert_eq!(copy.4, end, "the period runs to the paid invoice's end");
    assert!(copy.4 > before);
    assert_eq!(subjects(&app, "Your receipt").await, 1);
}

#[tokio::test]
async fn invoice_paid_for_a_subscription_we_never_heard_of_reads_it_first() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    // As if the checkout's events were lost: forget the copy.
    app.sql("DELETE FROM subscriptions").await;
    let sub = app.stripe.subscription(&s.sub_id);
    let end = sub["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let invoice = fake_stripe::invoice(&sub, "in_first", 2700, end, 1);
    app.post_event(&fake_stripe::event(
        "evt_first_paid",
        "invoice.paid",
        invoice,
    ))
    .await;
    assert_eq!(app.outcome_of("evt_first_paid").await, "applied");
    assert_eq!(copy_of(&app, &s.sub_id).await.0, "active");
}

#[tokio::test]
async fn a_failed_payment_emails_once_per_attempt_and_sca_shows_until_paid() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let past_due = app.stripe.update_subscription(&s.sub_id, |sub| {
        sub["status"] = json!("past_due");
        sub["latest_invoice"] = json!("in_due");
    });
    let now = Utc::now().timestamp();
    let attempt = |n| fake_stripe::invoice(&past_due, "in_due", 2700, now + 3600, n);
    for (id, n) in [("evt_f1", 1), ("evt_f1_retry", 1), ("evt_f2", 2)] {
        app.post_event(&fake_stripe::event(
            id,
            "invoice.payment_failed",
            attempt(n),
        ))
        .await;
    }
    assert_eq!(subjects(&app, "Your payment of 27.00 USD failed").await, 2);
    assert_eq!(billing_status(&app, &s).await, "past_due");

    app.post_event(&fake_stripe::event(
        "evt_sca",
        "invoice.payment_action_required",
        attempt(3),
    ))
    .await;
    assert_eq!(billing_status(&app, &s).await, "action_required");
    assert_eq!(subjects(&app, "Confirm your payment").await, 1);

    // The customer authenticates; Stripe reports the invoice paid (the subscription's own
    // `updated` event may come later): active again, the banner clears.
    app.stripe
        .update_subscription(&s.sub_id, |sub| sub["status"] = json!("active"));
    app.post_event(&fake_stripe::event("evt_paid", "invoice.paid", attempt(3)))
        .await;
    assert_eq!(copy_of(&app, &s.sub_id).await.0, "active");
    assert_eq!(billing_status(&app, &s).await, "ok");
    app.post_event(&sub_event(
        "evt_up",
        "updated",
        app.stripe.subscription(&s.sub_id),
    ))
    .await;
    assert_eq!(billing_status(&app, &s).await, "ok");
}

#[tokio::test]
async fn the_recovery_view_counts_mrr_at_risk_dunning_and_what_was_recovered() {
    let app = BillingApp::spawn().await;
    // Two orgs on the starter plan (9.00 per seat, 3 seats): one pays, one falls past due.
    let fine = subscribed(&app, "fine", "starter", "active").await;
    let late = subscribed(&app, "late", "starter", "active").await;
    let _ = fine;
    let past_due = app.stripe.update_subscription(&late.sub_id, |sub| {
        sub["status"] = json!("past_due");
        sub["latest_invoice"] = json!("in_late");
    });
    let now = Utc::now().timestamp();
    let invoice = |n| fake_stripe::invoice(&past_due, "in_late", 2700, now + 3600, n);
    app.post_event(&fake_stripe::event(
        "evt_late_1",
        "invoice.payment_failed",
        invoice(1),
    ))
    .await;
    app.post_event(&fake_stripe::event(
        "evt_late_2",
        "invoice.payment_failed",
        invoice(2),
    ))
    .await;
    let admin = crate::support::auth::admin_token(&app).await;
    let r = crate::support::auth::admin(&app, "GET", "/billing/recovery", &admin).await;
    assert_eq!(r.body["currency"], "usd");
    assert_eq!(r.body["mrr"], 2 * 3 * 900);
    assert_eq!(r.body["mrr_at_risk"], 3 * 900);
    assert_eq!(r.body["recovered_last_30_days"], 0);
    let dunning = r.body["in_dunning"].as_array().unwrap();
    assert_eq!(dunning.len(), 1);
    assert_eq!(dunning[0]["invoice_id"], "in_late");
    assert_eq!(dunning[0]["attempt_count"], 2);

    // The third attempt goes through: recovered, nothing at risk.
    app.stripe
        .update_subscription(&late.sub_id, |sub| sub["status"] = json!("active"));
    app.post_event(&fake_stripe::event(
        "evt_late_paid",
        "invoice.paid",
        invoice(3),
    ))
    .await;
    let r = crate::support::auth::admin(&app, "GET", "/billing/recovery", &admin).await;
    assert_eq!(r.body["mrr_at_risk"], 0);
    assert_eq!(r.body["recovered_last_30_days"], 2700);
    assert_eq!(r.body["in_dunning"], json!([]));
    let metrics = crate::support::auth::metrics_text(&app).await;
    assert!(
        metrics.contains("ironclad_billing_mrr{currency=\"usd\"} 5400"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ironclad_subscriptions{status=\"active\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failed_mid_period_invoice_is_dunned_though_its_period_was_paid() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    // The period is paid by its renewal invoice: paid through the period's end.
    let sub = app.stripe.subscription(&s.sub_id);
    let end = sub["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let renewal = fake_stripe::invoice(&sub, "in_cycle", 2700, end, 1);
    app.post_event(&fake_stripe::event("evt_cycle", "invoice.paid", renewal))
        .await;
    // Seats added mid-period: Stripe invoices the proration at once, its line ending where the
    // paid period ends; the card fails.
    let past_due = app.stripe.update_subscription(&s.sub_id, |sub| {
        sub["status"] = json!("past_due");
        sub["latest_invoice"] = json!("in_prorate");
    });
    app.post_event(&sub_event("evt_up", "updated", past_due.clone()))
        .await;
    let proration = |n| {
        let mut invoice = fake_stripe::invoice(&past_due, "in_prorate", 900, end, n);
        invoice["billing_reason"] = json!("subscription_update");
        invoice
    };
    app.post_event(&fake_stripe::event(
        "evt_failed",
        "invoice.payment_failed",
        proration(1),
    ))
    .await;
    assert_eq!(subjects(&app, "Your payment of 9.00 USD failed").await, 1);
    let admin = crate::support::auth::admin_token(&app).await;
    let r = crate::support::auth::admin(&app, "GET", "/billing/recovery", &admin).await;
    let dunning = r.body["in_dunning"].as_array().unwrap();
    assert_eq!(dunning.len(), 1, "{}", r.body);
    assert_eq!(dunning[0]["invoice_id"], "in_prorate");
    // Its SCA shows too.
    app.post_event(&fake_stripe::event(
        "evt_sca",
        "invoice.payment_action_required",
        proration(2),
    ))
    .await;
    assert_eq!(billing_status(&app, &s).await, "action_required");

    // A failure of the renewal invoice arriving late (it was paid) is still not chased.
    let late = fake_stripe::invoice(&past_due, "in_cycle", 2700, end, 1);
    app.post_event(&fake_stripe::event(
        "evt_cycle_failed_late",
        "invoice.payment_failed",
        late,
    ))
    .await;
    assert_eq!(subjects(&app, "Your payment of 27.00 USD failed").await, 0);
}
