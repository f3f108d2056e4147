//! Chaos for the Stripe events inbox: the ack path killed mid-storm, processors killed mid-batch.
use std::time::Duration;

use ironclad::mail::MailSink;

use super::{acknowledge, drain, kill_and_replace_workers, send_one};
use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
};

// The jobs applying an event queues (a licence and a receipt per paid order); the emails those
// jobs queue in turn are counted by the workers' chaos run.
const FOLLOW_UPS: &str = "SELECT count(*) FROM apalis.jobs \
    WHERE job_type IN ('billing_deliver_license', 'billing_send_receipt')";

/// The server is killed with SIGKILL in the middle of a webhook storm and restarted; the client
/// retries every delivery that did not get a 200, as Stripe does. Every event ends applied once.
pub async fn kill_server_mid_storm(orders: usize) -> anyhow::Result<Section> {
    use crate::scenarios::webhook::{pending_orders, signed_completion, webhook_request};
    use std::sync::Arc;
    let db = BenchDb::create().await?;
    let sink = MailSink::start().await?;
    let env: [(&str, String); 0] = [];
    let ids = pending_orders(&db, 7_000_000, orders).await?;
    let deliveries: Arc<Vec<_>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| signed_completion(7_000_000 + i, id))
            .collect(),
    );
    let server = Server::start(&db, &sink, &["serve", "--no-workers"], &env).await?;
    let addr = server.addr;
    let storm = {
        let deliveries = deliveries.clone();
        tokio::spawn(async move {
            let make: load::MakeRequest =
                Arc::new(move |i| webhook_request(&deliveries[i % deliveries.len()]));
            // Every event 3 times, in order, over 32 connections.
            load::run(addr, 32, orders * 3, make, |s| s == 200).await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill().await?;
    let first_pass = storm.await??;
    // Stripe retries whatever did not get a 200: we redeliver every event until each got one.
    let server = Server::start(&db, &sink, &["serve", "--no-workers"], &env).await?;
    let mut unacknowledged: Vec<usize> = (0..orders).collect();
    let mut rounds = 0;
    while !unacknowledged.is_empty() && rounds < 10 {
        rounds += 1;
        let mut still = Vec::new();
        for i in unacknowledged {
            let request = webhook_request(&deliveries[i]);
            let status = send_one(server.addr, request).await.unwrap_or(0);
            if status != 200 {
                still.push(i);
            }
        }
        unacknowledged = still;
    }
    server.stop().await?;
    // Everything acknowledged is in the inbox; a worker's processor applies it.
    let worker = Server::start(&db, &sink, &["worker"], &env).await?;
    let drained = drain(&db, Duration::from_secs(300)).await?;
    worker.stop().await?;
    let n = orders as i64;
    let applied = db
        .scalar_i64(
            "SELECT count(*) FROM order_events WHERE to_status = 'paid' AND outcome = 'applied'",
        )
        .await?;
    let paid = db
        .scalar_i64("SELECT count(*) FROM orders WHERE status IN ('paid', 'fulfilled')")
        .await?;
    let events = db
        .scalar_i64("SELECT count(*) FROM stripe_events WHERE status = 'processed'")
        .await?;
    let jobs = db.scalar_i64(FOLLOW_UPS).await?;
    db.drop_database().await?;

    let failed_first = first_pass.errors;
    let mut section = Section::new("Chaos: server killed mid-webhook-storm");
    section.line(format!(
        "{orders} events, each sent 3 times over 32 connections to `serve --no-workers` (the ack path: store only); the server is killed with SIGKILL 400 ms in, restarted, and every event redelivered until it gets a 200 (as Stripe retries non-2xx). Then an `ironclad worker` processes the inbox."
    ));
    section.table(
        &[
            "events",
            "deliveries failed by the kill",
            "redelivery rounds",
            "events processed",
            "`paid` transitions",
            "orders paid or fulfilled",
            "jobs queued",
        ],
        vec![vec![
            n.to_string(),
            failed_first.to_string(),
            rounds.to_string(),
            events.to_string(),
            applied.to_string(),
            paid.to_string(),
            jobs.to_string(),
        ]],
    );
    section.verdict(
        "every event applied exactly once after the retries (one transition, two jobs per order)",
        drained && applied == n && paid == n && events == n && jobs == 2 * n,
    );
    Ok(section)
}

/// Acknowledged events are processed by `ironclad worker` processes that are killed with SIGKILL
/// mid-batch, again and again, and restarted. Every event must end applied exactly once: a killed
/// processor's claims expire and are taken over; its uncommitted work rolled back with it.
pub async fn kill_processors_mid_batch(orders: usize, kills: usize) -> anyhow::Result<Section> {
    let db = BenchDb::create().await?;
    let sink = MailSink::start().await?;
    let env = [
        // Small apply chunks and few lanes: processing takes long enough for kills to land
        // mid-batch; a short claim TTL lets the survivors take a dead processor's claims over.
        ("STRIPE_INBOX_CLAIM_TTL_SECS", "5".to_owned()),
        ("STRIPE_INBOX_LANES", "2".to_owned()),
        ("STRIPE_INBOX_APPLY_BATCH", "4".to_owned()),
        ("JOBS_HEARTBEAT_MS", "500".to_owned()),
        ("JOBS_MISSED_HEARTBEATS", "4".to_owned()),
    ];
    let (_, acked) = acknowledge(&db, &sink, &env, 8_000_000, orders, 32).await?;
    let (killed_mid_batch, drained) = kill_and_replace_workers(
        &db,
        &sink,
        &env,
        kills,
        orders,
        (150, 400),
        "SELECT count(*) FROM stripe_events WHERE status = 'processing'",
    )
    .await?;
    let n = orders as i64;
    let processed = db
        .scalar_i64(
            "SELECT count(*) FROM stripe_events WHERE status = 'processed' AND outcome = 'applied'",
        )
        .await?;
    let taken_over = db
        .scalar_i64("SELECT count(*) FROM stripe_events WHERE attempts > 1")
        .await?;
    let transitions = db
        .scalar_i64(
            "SELECT count(*) FROM order_events WHERE to_status = 'paid' AND outcome = 'applied'",
        )
        .await?;
    let jobs = db.scalar_i64(FOLLOW_UPS).await?;
    let distinct_jobs = db
        .scalar_i64("SELECT count(DISTINCT (job_type, idempotency_key)) FROM apalis.jobs WHERE job_type IN ('billing_deliver_license', 'billing_send_receipt')")
        .await?;
    let licences = db.scalar_i64("SELECT count(*) FROM licenses").await?;
    db.drop_database().await?;

    let mut section = Section::new("Chaos: inbox processors killed with SIGKILL mid-batch");
    section.line(format!(
        "{orders} signed events acknowledged by `serve --no-workers` ({} errors), then processed by two `ironclad worker` processes (2 lanes, chunks of 4, claims held 5 s). {kills} times, at 150–550 ms intervals, one is killed with SIGKILL and a new one started; {killed_mid_batch} kills hit while events were claimed.",
        acked.errors
    ));
    section.table(
        &[
            "events",
            "applied",
            "taken over after a kill",
            "`paid` transitions",
            "jobs",
            "duplicate jobs",
            "licences",
        ],
        vec![vec![
            n.to_string(),
            processed.to_string(),
            taken_over.to_string(),
            transitions.to_string(),
            jobs.to_string(),
            (jobs - distinct_jobs).to_string(),
            licences.to_string(),
        ]],
    );
    section.verdict(
        "every acknowledged event applied exactly once (one transition, two jobs, one licence per order)",
        drained
            && acked.errors == 0
            && processed == n
            && transitions == n
            && jobs == 2 * n
            && jobs == distinct_jobs
            && licences == n,
    );
    Ok(section)
}
