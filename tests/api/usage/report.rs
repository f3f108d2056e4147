//! Metered overage reported to Stripe as billing meter events: once, whatever the re-runs, the
//! concurrent reporters and a crash between sending and recording.
use ironclad::usage::report::report_overage;
use serde_json::Value;

use super::usage;
use crate::support::billing::BillingApp;

/// `org` on the business plan (metered `ai_tokens`), with 100 tokens included.
async fn on_business(app: &BillingApp, org: uuid::Uuid) {
    app.sql(
        "UPDATE plan_meters SET included = 100 WHERE plan_key = 'business' AND meter = 'ai_tokens'",
    )
    .await;
    super::on_business(app, org, "cus_metered").await;
}

/// What Stripe was told in all: the sum of the meter events' values, and how many events.
fn reported(app: &BillingApp) -> (i64, usize) {
    let events = app.stripe.meter_events();
    let total = events
        .iter()
        .map(|e: &Value| {
            e["payload"]["value"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert!(
        events
            .iter()
            .all(|e| e["payload"]["stripe_customer_id"] == "cus_metered"
                && e["event_name"] == "ironclad_ai_tokens")
    );
    (total, events.len())
}

async fn charge(app: &BillingApp, org: uuid::Uuid, key: &str, tokens: i64) {
    let state = usage(app);
    let r = state
        .reserve(org, None, "ai_tokens", tokens, key)
        .await
        .unwrap();
    r.commit(tokens).await.unwrap();
}

#[tokio::test]
async fn overage_is_reported_once_and_the_totals_equal_our_ledger() {
    let app = BillingApp::spawn_without_workers().await;
    let (org, _) = super::free_org(&app, "metered@usage.example").await;
    on_business(&app, org).await;
    // Within the included 100: nothing to report. Past it: metered, never refused.
    charge(&app, org, "a", 90).await;
    assert_eq!(report_overage(&usage(&app)).await.unwrap(), 0);
    charge(&app, org, "b", 60).await;
    app.run_jobs_until_idle().await;
    assert_eq!(reported(&app), (50, 1));
    // Run again: nothing new.
    assert_eq!(report_overage(&usage(&app)).await.unwrap(), 0);
    assert_eq!(reported(&app), (50, 1));

    // More use, then two reporters at once (two processes' timers): the difference once.
    charge(&app, org, "c", 30).await;
    let (one, two) = (usage(&app), usage(&app));
    let (x, y) = tokio::join!(report_overage(&one), report_overage(&two));
    x.unwrap();
    y.unwrap();
    assert_eq!(reported(&app), (80, 2));

    // A crash after Stripe took an event but before we recorded it: the re-run sends the same
    // identifier, which Stripe keeps once.
    app.sql("UPDATE usage_meter_reports SET reported_at = NULL")
        .await;
    assert_eq!(report_overage(&usage(&app)).await.unwrap(), 2);
    assert_eq!(reported(&app), (80, 2));
    let ledger = app
        .count("SELECT coalesce(sum(through - from_total), 0)::bigint FROM usage_meter_reports WHERE reported_at IS NOT NULL")
        .await;
    let (used, included) = (
        app.count(&format!(
            "SELECT used FROM usage_counters WHERE org_id = '{org}'"
        ))
        .await,
        100,
    );
    assert_eq!((ledger, used - included), (80, 80));
}
