//! Our copy stays equal to Stripe's subscription whatever the order of delivery: `updated` before
//! `created`, `deleted` before `updated`, duplicates, events of one subscription processed at once,
//! a read that started earlier than the stored one, and Stripe answering 429.
use chrono::{Duration, Utc};
use ironclad::billing::{
    stripe::Processor,
    subscriptions::{
        copy::{self, Stored},
        facts::SubscriptionFacts,
    },
};
use sea_orm::TransactionTrait;
use serde_json::json;

use super::{copy_of, stripe_state, sub_event, subscribed};
use crate::{
    orgs::{join, person},
    support::billing::BillingApp,
};

#[tokio::test]
async fn updated_before_created_and_stale_payloads_leave_the_copy_equal_to_stripe() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "trialing").await;
    assert_eq!(copy_of(&app, &s.sub_id).await.0, "trialing");
    let created = app.stripe.subscription(&s.sub_id);
    // The trial converts and two seats are added; Stripe's events carry each object as it was.
    let updated = app.stripe.update_subscription(&s.sub_id, |sub| {
        sub["status"] = json!("active");
        sub["items"]["data"][0]["quantity"] = json!(5);
    });
    // `updated` arrives first, then the older `created`, then `updated` again (a retry).
    let update = sub_event("evt_updated", "updated", updated);
    for event in [
        &update,
        &sub_event("evt_created", "created", created),
        &update,
    ] {
        assert_eq!(app.post_event(event).await.status(), 200);
    }
    assert_eq!(
        copy_of(&app, &s.sub_id).await,
        stripe_state(&app, &s.sub_id)
    );
    assert_eq!(copy_of(&app, &s.sub_id).await.1, 5);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM subscriptions WHERE stripe_subscription_id = '{}'",
            s.sub_id
        ))
        .await,
        1,
        "one row per Stripe subscription"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE outcome = 'applied'")
            .await,
        3,
        "checkout, updated, created (the retry is a duplicate)"
    );
}

#[tokio::test]
async fn deleted_before_updated_ends_the_copy_and_says_so_once() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let active = app.stripe.subscription(&s.sub_id);
    let ended = app.stripe.update_subscription(&s.sub_id, |sub| {
        sub["status"] = json!("canceled");
        sub["ended_at"] = json!(Utc::now().timestamp());
    });
    app.post_event(&sub_event("evt_deleted", "deleted", ended))
        .await;
    app.post_event(&sub_event("evt_late_update", "updated", active))
        .await;
    assert_eq!(copy_of(&app, &s.sub_id).await.0, "canceled");
    assert_eq!(
        copy_of(&app, &s.sub_id).await,
        stripe_state(&app, &s.sub_id)
    );
    app.jobs_idle().await;
    let ended_mail = app
        .sink
        .messages()
        .into_iter()
        .filter(|m| m.subject.as_deref() == Some("Your subscription has ended"))
        .count();
    assert_eq!(ended_mail, 1);
    // Seats are lifted with the subscription: the org is back to no limit.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orgs WHERE id = '{}' AND seat_limit IS NULL",
            s.org
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn events_of_one_subscription_processed_at_once_by_two_processors_agree_with_stripe() {
    let app = BillingApp::spawn_without_workers().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let past_due = app.stripe.update_subscription(&s.sub_id, |sub| {
        sub["status"] = json!("past_due");
        sub["items"]["data"][0]["quantity"] = json!(4);
    });
    let invoice = fake_stripe::invoice(&past_due, "in_race", 3600, Utc::now().timestamp(), 1);
    // Different Stripe objects (the subscription, its invoice): they may be claimed together.
    for event in [
        sub_event("evt_u1", "updated", past_due.clone()),
        fake_stripe::event("evt_failed", "invoice.payment_failed", invoice),
        fake_stripe::event("evt_action", "invoice.payment_action_required", {
            fake_stripe::invoice(&past_due, "in_race_2", 3600, Utc::now().timestamp(), 1)
        }),
    ] {
        assert_eq!(app.deliver(&event).await.status(), 200);
    }
    let one = Processor::new(app.layers.billing.clone());
    let two = Processor::new(app.layers.billing.clone());
    let (a, b) = tokio::join!(one.drain(), two.drain());
    assert_eq!(a.unwrap() + b.unwrap(), 3);
    app.process_inbox().await;
    assert_eq!(
        copy_of(&app, &s.sub_id).await,
        stripe_state(&app, &s.sub_id)
    );
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE outcome = 'applied'")
            .await,
        4
    );
}

#[tokio::test]
async fn a_read_that_started_before_the_stored_one_is_dropped() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let org: uuid::Uuid = s.org.parse().unwrap();
    let mut old = SubscriptionFacts::read(&app.stripe.subscription(&s.sub_id)).unwrap();
    old.quantity = 9;
    let txn = app.db.begin().await.unwrap();
    copy::lock_org(&txn, org).await.unwrap();
    // The copy was stored from a read that started just now; this one started a minute ago.
    let stored = copy::store(&txn, org, &old, Utc::now() - Duration::minutes(1))
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(stored, Stored::Stale);
    assert_eq!(copy_of(&app, &s.sub_id).await.1, 3);
}

#[tokio::test]
async fn seats_follow_the_quantity_and_fewer_seats_than_members_remove_no_one() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let seats =
        |org: &str| format!("SELECT coalesce(seat_limit, 0)::bigint FROM orgs WHERE id = '{org}'");
    assert_eq!(app.count(&seats(&s.org)).await, 3);
    for email in ["bea@example.com", "cat@example.com"] {
        let p = person(&app, email).await;
        join(&app, &s.org, &p, "member").await;
    }
    // Seats lowered in the Stripe portal, below the three members.
    let fewer = app.stripe.update_subscription(&s.sub_id, |sub| {
        sub["items"]["data"][0]["quantity"] = json!(2);
    });
    app.post_event(&sub_event("evt_fewer", "updated", fewer))
        .await;
    assert_eq!(app.count(&seats(&s.org)).await, 2);
    assert_eq!(
        app.count(&format!(
            "SELECT member_count::bigint FROM orgs WHERE id = '{}'",
            s.org
        ))
        .await,
        3,
        "nobody removed"
    );
    let status = crate::orgs::call(
        &app,
        &s.owner,
        "GET",
        &format!("/orgs/{}/billing/subscription", s.org),
        None,
    )
    .await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["billing_status"], "over_seat_limit");
    let invite = crate::orgs::call(
        &app,
        &s.owner,
        "POST",
        &format!("/orgs/{}/invitations", s.org),
        Some(json!({"email": "dan@example.com", "role": "member"})),
    )
    .await;
    assert_eq!(invite.status, 402, "{}", invite.body);
}

#[tokio::test]
async fn a_subscription_of_no_org_of_ours_is_kept_for_review() {
    let app = BillingApp::spawn().await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    let foreign = app.stripe.update_subscription(&s.sub_id, |sub| {
        sub["customer"] = json!("cus_someone_else");
        sub["metadata"] = json!({});
    });
    app.post_event(&sub_event("evt_foreign", "updated", foreign))
        .await;
    assert_eq!(app.outcome_of("evt_foreign").await, "unknown_customer");
}

#[tokio::test]
async fn stripe_answering_429_slows_the_reads_down_and_loses_nothing() {
    let app = BillingApp::spawn_with(&[("STRIPE_MAX_REQUESTS_PER_SEC", "50")]).await;
    let s = subscribed(&app, "acme", "starter", "active").await;
    app.stripe.rate_limit(Some(5));
    for n in 0..20 {
        let now = app.stripe.update_subscription(&s.sub_id, |sub| {
            sub["items"]["data"][0]["quantity"] = json!(3 + n);
        });
        app.deliver(&sub_event(&format!("evt_rl_{n}"), "updated", now))
            .await;
    }
    app.process_inbox().await;
    app.stripe.rate_limit(None);
    assert!(app.stripe.rate_limited() > 0, "the fake refused some reads");
    assert_eq!(
        app.count("SELECT count(*) FROM stripe_events WHERE event_id LIKE 'evt_rl_%' AND outcome = 'applied'")
            .await,
        20,
        "every event applied once, none dead"
    );
    assert_eq!(
        copy_of(&app, &s.sub_id).await,
        stripe_state(&app, &s.sub_id)
    );
    assert_eq!(copy_of(&app, &s.sub_id).await.1, 22);
}
