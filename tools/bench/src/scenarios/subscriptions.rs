//! Recurring billing under load, end to end through the inbox:
//!
//! - **Renewal storm**: `invoice.paid` for N subscriptions (one each, distinct), then the same
//!   invoices again under new event ids (Stripe resending), timed until the inbox is empty; every
//!   subscription paid through its new period, exactly one receipt per invoice.
//! - **Rate-limited reads**: `customer.subscription.updated` events for subscriptions the fake
//!   Stripe changed meanwhile, with the fake answering 429 above 100 requests/s and the app paced
//!   above that (so it meets the 429s): none lost, none applied twice, every copy equal to Stripe's.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use ironclad::mail::MailSink;
use serde_json::json;

use super::webhook::webhook_request;
use crate::{
    env::{BenchDb, Server, WEBHOOK_SECRET, fake_stripe},
    load,
    report::Section,
};

const UNPROCESSED: &str = "SELECT (SELECT count(*) FROM stripe_events WHERE status = 'pending') \
    + (SELECT count(*) FROM stripe_events WHERE status = 'processing')";
const MONTH: i64 = 30 * 24 * 3600;

fn signed(event: &serde_json::Value) -> (Bytes, String) {
    let payload = event.to_string();
    let header = fake_stripe::signature_header(
        payload.as_bytes(),
        WEBHOOK_SECRET,
        chrono::Utc::now().timestamp(),
    );
    (Bytes::from(payload), header)
}

/// `count` orgs, each with a Stripe customer and an active starter subscription whose period
/// ends now (`sub_bench_{n}`), in our copy and at the fake.
async fn subscriptions(db: &BenchDb, first: usize, count: usize, now: i64) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    let last = first + count - 1;
    db.db
        .execute_unprepared(&format!(
            "INSERT INTO orgs (id, name, slug)
               SELECT ('00000000-0000-7000-9000-' || lpad(n::text, 12, '0'))::uuid, 'Org ' || n,
                      'bench-org-' || n FROM generate_series({first}, {last}) AS n;
             INSERT INTO org_billing (org_id, billing_email)
               SELECT ('00000000-0000-7000-9000-' || lpad(n::text, 12, '0'))::uuid,
                      'billing-' || n || '@example.com' FROM generate_series({first}, {last}) AS n;
             INSERT INTO stripe_customers (org_id, stripe_customer_id)
               SELECT ('00000000-0000-7000-9000-' || lpad(n::text, 12, '0'))::uuid, 'cus_bench_' || n
               FROM generate_series({first}, {last}) AS n;
             INSERT INTO subscriptions (id, org_id, stripe_subscription_id, stripe_customer_id,
                 plan_key, interval, stripe_price_id, status, status_since, quantity,
                 current_period_start, current_period_end, latest_invoice_id, read_started_at)
               SELECT gen_random_uuid(), ('00000000-0000-7000-9000-' || lpad(n::text, 12, '0'))::uuid,
                      'sub_bench_' || n, 'cus_bench_' || n, 'starter', 'month',
                      'price_demo_starter_month', 'active', now(), 3,
                      to_timestamp({start}), to_timestamp({now}), 'in_bench_' || n, now()
               FROM generate_series({first}, {last}) AS n;",
            start = now - MONTH,
        ))
        .await?;
    let stripe = fake_stripe().await;
    for n in first..=last {
        stripe.insert_subscription(json!({
            "id": format!("sub_bench_{n}"), "object": "subscription", "created": now - MONTH,
            "livemode": false, "customer": format!("cus_bench_{n}"), "status": "active",
            "items": {"object": "list", "data": [{
                "id": format!("si_bench_{n}"), "object": "subscription_item",
                "price": {"id": "price_demo_starter_month", "object": "price",
                          "recurring": {"interval": "month"}},
                "quantity": 3, "current_period_start": now - MONTH, "current_period_end": now,
            }]},
            "quantity": 3, "cancel_at_period_end": false, "cancel_at": null,
            "canceled_at": null, "ended_at": null, "trial_end": null,
            "latest_invoice": format!("in_bench_{n}"), "metadata": {},
        }));
    }
    Ok(())
}

async fn drain(db: &BenchDb, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while db.scalar_i64(UNPROCESSED).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub async fn run(db: &BenchDb, renewals: usize, updates: usize) -> anyhow::Result<Section> {
    let mut section = Section::new("Subscriptions: renewal storm and rate-limited reads");
    let now = chrono::Utc::now().timestamp();

    // The renewal storm.
    subscriptions(db, 1, renewals, now).await?;
    let paid = |n: usize, event: &str| {
        let invoice = fake_stripe::invoice(
            &json!({"id": format!("sub_bench_{n}"), "customer": format!("cus_bench_{n}")}),
            &format!("in_bench_{n}"),
            2700,
            now + MONTH,
            1,
        );
        signed(&fake_stripe::event(event, "invoice.paid", invoice))
    };
    let first_time: Arc<Vec<_>> = Arc::new(
        (1..=renewals)
            .map(|n| paid(n, &format!("evt_renewal_{n}")))
            .collect(),
    );
    let resent: Arc<Vec<_>> = Arc::new(
        (1..=renewals / 10)
            .map(|n| paid(n, &format!("evt_renewal_again_{n}")))
            .collect(),
    );
    let sink = MailSink::start().await?;
    let env = [("JOBS_ONLY", "stripe_inbox".to_owned())];
    let server = Server::start(db, &sink, &["serve"], &env).await?;
    let started = Instant::now();
    let make: load::MakeRequest = {
        let d = first_time.clone();
        Arc::new(move |i| webhook_request(&d[i]))
    };
    let storm = load::run(server.addr, 64, renewals, make, |s| s == 200).await?;
    let make: load::MakeRequest = {
        let d = resent.clone();
        Arc::new(move |i| webhook_request(&d[i]))
    };
    let again = load::run(server.addr, 64, resent.len(), make, |s| s == 200).await?;
    drain(db, Duration::from_secs(300)).await?;
    let total = started.elapsed();
    server.stop().await?;
    let events = renewals + resent.len();
    let rate = events as f64 / total.as_secs_f64();
    let paid_through = db
        .scalar_i64(&format!(
            "SELECT count(*) FROM subscriptions WHERE stripe_subscription_id LIKE 'sub_bench_%' \
             AND paid_through = to_timestamp({})",
            now + MONTH
        ))
        .await?;
    let receipts = db
        .scalar_i64(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = 'email' \
             AND convert_from(job, 'UTF8')::jsonb ->> 'template' = 'billing_notice'",
        )
        .await?;
    let distinct = db
        .scalar_i64(
            "SELECT count(DISTINCT convert_from(job, 'UTF8')::jsonb ->> 'message_key') \
             FROM apalis.jobs WHERE job_type = 'email' \
             AND convert_from(job, 'UTF8')::jsonb ->> 'template' = 'billing_notice'",
        )
        .await?;
    section.line(format!(
        "{renewals} signed `invoice.paid` events for {renewals} subscriptions (each the renewal invoice of its own org), then {} of them again under new event ids, over 64 connections to one `serve` (processor in-process, jobs queued and left: `JOBS_ONLY=stripe_inbox`). Timed from the first delivery until the inbox is empty.",
        resent.len()
    ));
    section.table(
        &[
            "events",
            "total s",
            "events/s end to end",
            "paid through the new period",
            "receipts queued",
            "distinct receipts",
            "errors",
        ],
        vec![vec![
            events.to_string(),
            format!("{:.2}", total.as_secs_f64()),
            format!("{rate:.0}"),
            paid_through.to_string(),
            receipts.to_string(),
            distinct.to_string(),
            (storm.errors + again.errors).to_string(),
        ]],
    );
    section.verdict(
        &format!("renewal storm ≥ 1,000 events/s end to end ({rate:.0})"),
        rate >= 1000.0,
    );
    section.verdict(
        "every subscription paid through, one receipt per invoice (0 duplicates), no errors",
        paid_through == renewals as i64
            && receipts == renewals as i64
            && distinct == receipts
            && storm.errors + again.errors == 0,
    );

    // Rate-limited reads: the fake changes each subscription, then answers 429 above 100/s.
    let subs = (updates / 10).max(1);
    let first = renewals + 1;
    subscriptions(db, first, subs, now).await?;
    let stripe = fake_stripe().await;
    let limited_before = stripe.rate_limited();
    let deliveries: Arc<Vec<_>> = Arc::new(
        (0..updates)
            .map(|i| {
                let n = first + i % subs;
                let sub = stripe.update_subscription(&format!("sub_bench_{n}"), |sub| {
                    sub["items"]["data"][0]["quantity"] = json!(3 + i / subs);
                });
                signed(&fake_stripe::event(
                    &format!("evt_update_{i}"),
                    "customer.subscription.updated",
                    sub,
                ))
            })
            .collect(),
    );
    stripe.rate_limit(Some(100));
    let env = [("STRIPE_MAX_REQUESTS_PER_SEC", "150".to_owned())];
    let server = Server::start(db, &sink, &["serve", "--no-workers"], &env).await?;
    let worker = Server::start(
        db,
        &sink,
        &["worker"],
        &[("JOBS_ONLY", "stripe_inbox".to_owned())],
    )
    .await?;
    let started = Instant::now();
    let make: load::MakeRequest = {
        let d = deliveries.clone();
        Arc::new(move |i| webhook_request(&d[i]))
    };
    let sent = load::run(server.addr, 16, updates, make, |s| s == 200).await?;
    drain(db, Duration::from_secs(600)).await?;
    let took = started.elapsed();
    stripe.rate_limit(None);
    worker.stop().await?;
    server.stop().await?;
    let limited = stripe.rate_limited() - limited_before;
    let applied = db
        .scalar_i64(
            "SELECT count(*) FROM stripe_events WHERE event_id LIKE 'evt_update_%' \
             AND status = 'processed' AND outcome IN ('applied', 'ignored')",
        )
        .await?;
    let final_quantity = 3 + (updates - 1) / subs;
    let equal = db
        .scalar_i64(&format!(
            "SELECT count(*) FROM subscriptions WHERE stripe_subscription_id IN \
             (SELECT 'sub_bench_' || n FROM generate_series({first}, {}) AS n) \
             AND quantity = {final_quantity}",
            first + subs - 1
        ))
        .await?;
    let mismatched = (first..first + subs)
        .filter(|n| {
            let sub = stripe.subscription(&format!("sub_bench_{n}"));
            sub["items"]["data"][0]["quantity"] != json!(final_quantity)
        })
        .count();
    section.line(format!(
        "{updates} signed `customer.subscription.updated` events ({} per subscription, {subs} subscriptions the fake changed before each), one `serve --no-workers` and one `worker`; each event reads its subscription from the fake, which answers **429 above 100 requests/s**, while the app is paced at 150/s (`STRIPE_MAX_REQUESTS_PER_SEC`) so it meets the limit. Events of one subscription apply one at a time (the inbox's one-per-object rule and the read lock).",
        updates / subs
    ));
    section.table(
        &[
            "events",
            "s",
            "429s answered",
            "processed once",
            "copies equal to Stripe",
            "errors",
        ],
        vec![vec![
            updates.to_string(),
            format!("{:.1}", took.as_secs_f64()),
            limited.to_string(),
            applied.to_string(),
            format!("{equal} / {subs}"),
            sent.errors.to_string(),
        ]],
    );
    section.verdict(
        "none lost, none applied twice, every copy equal to the fake's state",
        applied == updates as i64 && equal == subs as i64 && mismatched == 0 && sent.errors == 0,
    );
    section.verdict(
        &format!("the fake really answered 429 ({limited} times) and the pacer rode it out"),
        limited > 0,
    );
    Ok(section)
}
