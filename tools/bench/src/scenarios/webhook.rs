//! Stripe webhook ingest: distinct signed `checkout.session.completed` events for distinct pending
//! orders; and the duplicate storm: every event delivered 10 times at once across two servers.
use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use ironclad::{billing::signature, mail::MailSink};
use serde_json::json;

use crate::{
    env::{BenchDb, Server},
    load::{self, LoadResult},
    report::Section,
};

use crate::env::WEBHOOK_SECRET as SECRET;

/// Creates `count` pending orders (one Pro licence each) numbered from `first`, with sessions
/// `cs_bench_<n>`, as checkout would have left them. Returns their ids, in order.
pub async fn pending_orders(
    db: &BenchDb,
    first: usize,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    use sea_orm::ConnectionTrait;
    let last = first + count - 1;
    db.db
        .execute_unprepared(&format!(
            "INSERT INTO users (id, email, password_hash)
               VALUES ('00000000-0000-7000-8000-00000000b3c4', 'bench@example.com', 'x')
               ON CONFLICT DO NOTHING;
             INSERT INTO orders (id, user_id, checkout_key, currency, amount_total, stripe_checkout_session_id)
               SELECT gen_random_uuid(), '00000000-0000-7000-8000-00000000b3c4', 'bench-' || n, 'usd', 4900, 'cs_bench_' || n
               FROM generate_series({first}, {last}) AS n;
             INSERT INTO order_lines (id, order_id, product_id, product_name, unit_amount, quantity, seats)
               SELECT gen_random_uuid(), o.id, '0193a4c0-0000-7000-8000-000000000001', 'Ironclad Pro', 4900, 1, 1
               FROM orders o WHERE o.stripe_checkout_session_id IN
                 (SELECT 'cs_bench_' || n FROM generate_series({first}, {last}) AS n);"
        ))
        .await?;
    let rows = db
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT o.id::text FROM generate_series({first}, {last}) AS n
                 JOIN orders o ON o.stripe_checkout_session_id = 'cs_bench_' || n ORDER BY n"
            ),
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?)
}

/// The signed delivery of the completion event of order `n` (body and Stripe-Signature header).
pub fn signed_completion(n: usize, order_id: &str) -> (Bytes, String) {
    let payload = json!({
        "id": format!("evt_bench_{n}"),
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "type": "checkout.session.completed",
        "data": {"object": {
            "id": format!("cs_bench_{n}"),
            "object": "checkout.session",
            "client_reference_id": order_id,
            "metadata": {"order_id": order_id},
            "amount_total": 4900,
            "currency": "usd",
            "mode": "payment",
            "status": "complete",
            "payment_status": "paid",
            "payment_intent": format!("pi_bench_{n}"),
        }},
    })
    .to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let v1 = signature::sign(payload.as_bytes(), SECRET.as_bytes(), timestamp);
    (Bytes::from(payload), format!("t={timestamp},v1={v1}"))
}

pub fn webhook_request(delivery: &(Bytes, String)) -> hyper::Request<Full<Bytes>> {
    load::request("POST", "/api/v1/webhooks/stripe")
        .header("content-type", "application/json")
        .header("stripe-signature", &delivery.1)
        .body(Full::new(delivery.0.clone()))
        .unwrap()
}

/// Distinct events for distinct orders at 16 and 64 connections, one server, workers off (the
/// queued jobs are counted, not run).
pub async fn ingest(db: &BenchDb, events_per_round: usize) -> anyhow::Result<(Section, f64)> {
    let sink = MailSink::start().await?;
    let server = Server::start(db, &sink, &["serve", "--no-workers"], &[]).await?;
    let mut rows = Vec::new();
    let mut first = 0;
    let mut at_64 = Vec::<LoadResult>::new();
    let rounds = std::iter::once(16).chain(std::iter::repeat_n(64, load::ROUNDS));
    for connections in rounds {
        let ids = pending_orders(db, first, events_per_round).await?;
        let deliveries: Arc<Vec<(Bytes, String)>> = Arc::new(
            ids.iter()
                .enumerate()
                .map(|(i, id)| signed_completion(first + i, id))
                .collect(),
        );
        let make: load::MakeRequest = {
            let deliveries = deliveries.clone();
            Arc::new(move |i| webhook_request(&deliveries[i]))
        };
        let result = load::run(server.addr, connections, events_per_round, make, |s| {
            s == 200
        })
        .await?;
        rows.push(result.row(connections));
        if connections == 64 {
            at_64.push(result);
        }
        first += events_per_round;
    }
    server.stop().await?;
    let total = first as i64;
    let paid = db
        .scalar_i64("SELECT count(*) FROM orders WHERE status = 'paid'")
        .await?;
    let jobs = db.scalar_i64("SELECT count(*) FROM apalis.jobs").await?;
    let throughput_64 = load::median(at_64.iter().map(LoadResult::throughput).collect());
    let p99_64 = load::median(at_64.iter().map(|r| r.percentile_ms(0.99)).collect());
    let errors: usize = at_64.iter().map(|r| r.errors).sum();

    let mut section = Section::new("Webhook ingest");
    section.line(format!(
        "{events_per_round} distinct, correctly signed `checkout.session.completed` events for distinct pending orders per row; one `ironclad serve --no-workers` process (the follow-up jobs are queued, not run). Each event: signature check, then one transaction of four statements: lock the order, insert the event (the duplicate gate), audit row and order update, both jobs in one insert. Server settings are the production defaults (pool of 10 connections)."
    ));
    section.table(load::HEADER, rows);
    section.line(format!(
        "{} rounds at 64 connections; the verdicts take the median of their throughputs and of their p99s. Afterwards: {paid} of {total} orders `paid`, {jobs} jobs queued (2 per order expected).",
        load::ROUNDS
    ));
    section.verdict(
        &format!("≥ 1,500 events/s at 64 connections (median {throughput_64:.0})"),
        throughput_64 >= 1500.0,
    );
    section.verdict(
        &format!("p99 < 50 ms at 64 connections (median {p99_64:.1} ms)"),
        p99_64 < 50.0,
    );
    section.verdict(
        "every order paid, every job queued, no errors",
        paid == total && jobs == 2 * total && errors == 0,
    );
    Ok((section, throughput_64))
}

/// Every event delivered 10 times concurrently, split across two servers sharing the database;
/// workers on, so licences and emails are produced too. Counts duplicates afterwards.
pub async fn duplicate_storm(db: &BenchDb, orders: usize) -> anyhow::Result<Section> {
    const COPIES: usize = 10;
    let sink = MailSink::start().await?;
    let ids = pending_orders(db, 1_000_000, orders).await?;
    let env: [(&str, String); 0] = [];
    let a = Server::start(db, &sink, &["serve"], &env).await?;
    let b = Server::start(db, &sink, &["serve"], &env).await?;
    let deliveries: Arc<Vec<(Bytes, String)>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| signed_completion(1_000_000 + i, id))
            .collect(),
    );
    // Request i carries event i / COPIES: the copies of one event are in flight together, on both servers.
    let make: load::MakeRequest = {
        let deliveries = deliveries.clone();
        Arc::new(move |i| webhook_request(&deliveries[i / COPIES]))
    };
    let result =
        load::run_spread(&[a.addr, b.addr], 64, orders * COPIES, make, |s| s == 200).await?;

    // Let the workers finish every licence and email.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while std::time::Instant::now() < deadline
        && db
            .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Killed')")
            .await?
            > 0
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    a.stop().await?;
    b.stop().await?;

    let scope = "order_id IN (SELECT id FROM orders WHERE checkout_key LIKE 'bench-1%' AND length(checkout_key) = 13)";
    let paid_transitions = db
        .scalar_i64(&format!("SELECT count(*) FROM order_events WHERE to_status = 'paid' AND outcome = 'applied' AND {scope}"))
        .await
        .unwrap_or(-1);
    let fulfilled = db
        .scalar_i64("SELECT count(*) FROM orders WHERE status = 'fulfilled' AND checkout_key LIKE 'bench-1%' AND length(checkout_key) = 13")
        .await?;
    let licences = db
        .scalar_i64(&format!("SELECT count(*) FROM licenses WHERE {scope}"))
        .await?;
    let jobs = db.scalar_i64("SELECT count(*) FROM apalis.jobs").await?;
    let distinct_jobs = db
        .scalar_i64("SELECT count(DISTINCT (job_type, idempotency_key)) FROM apalis.jobs")
        .await?;
    let mails = sink.messages();
    let mut ids: Vec<_> = mails.iter().filter_map(|m| m.message_id.clone()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    let duplicate_mails = before - ids.len();
    let n = orders as i64;

    let mut section = Section::new("Duplicate storm");
    section.line(format!(
        "{orders} events, each delivered {COPIES} times concurrently ({} deliveries over 64 connections), alternating between two `ironclad serve` processes on different ports sharing the database; workers on. Counted in the database afterwards.",
        orders * COPIES
    ));
    section.table(load::HEADER, vec![result.row(64)]);
    section.table(
        &[
            "orders",
            "`paid` transitions",
            "dup transitions",
            "licences",
            "dup licences",
            "jobs",
            "dup jobs",
            "emails",
            "dup emails",
            "fulfilled",
        ],
        vec![vec![
            n.to_string(),
            paid_transitions.to_string(),
            (paid_transitions - n).max(0).to_string(),
            licences.to_string(),
            (licences - n).max(0).to_string(),
            jobs.to_string(),
            (jobs - distinct_jobs).to_string(),
            mails.len().to_string(),
            duplicate_mails.to_string(),
            fulfilled.to_string(),
        ]],
    );
    section.verdict(
        "0 duplicate transitions, licences, jobs and emails; every order fulfilled; no errors",
        paid_transitions == n
            && licences == n
            && jobs == distinct_jobs
            && duplicate_mails == 0
            && fulfilled == n
            && result.errors == 0,
    );
    Ok(section)
}
