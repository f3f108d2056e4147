//! Chaos across machines' worth of processes: the duplicate storm over 2 web (`serve
//! --no-workers`) and 2 worker (`ironclad worker`) processes on one Postgres, as README "Scaling
//! out" describes. Copies of one event reach both web processes at about the same time; either
//! worker may process it and run its jobs. Effectively-once must hold across processes, not only
//! across tasks of one.
use std::{sync::Arc, time::Duration};

use ironclad::mail::MailSink;

use super::{drain, licence_emails};
use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
    scenarios::webhook::{pending_orders, signed_completion, webhook_request},
};

const COPIES: usize = 4;

pub async fn duplicate_storm_across_processes(orders: usize) -> anyhow::Result<Section> {
    let db = BenchDb::create().await?;
    let sink = MailSink::start().await?;
    let env: [(&str, String); 0] = [];
    let ids = pending_orders(&db, 9_000_000, orders).await?;
    let deliveries: Arc<Vec<_>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| signed_completion(9_000_000 + i, id))
            .collect(),
    );
    let web = [
        Server::start(&db, &sink, &["serve", "--no-workers"], &env).await?,
        Server::start(&db, &sink, &["serve", "--no-workers"], &env).await?,
    ];
    let workers = [
        Server::start(&db, &sink, &["worker"], &env).await?,
        Server::start(&db, &sink, &["worker"], &env).await?,
    ];
    // Request i carries event i % orders and connection c goes to web process c % 2: the copies
    // of one event are in flight on both processes at once.
    let make: load::MakeRequest =
        Arc::new(move |i| webhook_request(&deliveries[i % deliveries.len()]));
    let addrs = [web[0].addr, web[1].addr];
    let storm = load::run_spread(&addrs, 64, orders * COPIES, make, |s| s == 200).await?;
    let drained = drain(&db, Duration::from_secs(300)).await?;
    let n = orders as i64;
    let stored = db.scalar_i64("SELECT count(*) FROM stripe_events").await?;
    let applied = db
        .scalar_i64(
            "SELECT count(*) FROM stripe_events WHERE status = 'processed' AND outcome = 'applied'",
        )
        .await?;
    let transitions = db
        .scalar_i64(
            "SELECT count(*) FROM order_events WHERE to_status = 'paid' AND outcome = 'applied'",
        )
        .await?;
    let licences = db.scalar_i64("SELECT count(*) FROM licenses").await?;
    let receipts = db
        .scalar_i64("SELECT count(*) FROM orders WHERE receipt_sent_at IS NOT NULL")
        .await?;
    // The emails are the last step: wait until each order's licence email has arrived.
    let mut emails = licence_emails(&sink);
    for _ in 0..100 {
        if emails.len() as i64 >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        emails = licence_emails(&sink);
    }
    let twice = emails.values().filter(|&&count| count > 1).count();
    for server in web.into_iter().chain(workers) {
        server.stop().await?;
    }
    db.drop_database().await?;

    let mut section = Section::new("Chaos: duplicate storm over 2 web + 2 worker processes");
    section.line(format!(
        "{orders} `checkout.session.completed` events, each delivered {COPIES} times over 64 connections spread across two `serve --no-workers` processes (copies of one event in flight on both at once); two `ironclad worker` processes apply the inbox and run the licence, receipt and email jobs, all on one Postgres."
    ));
    section.table(
        &[
            "deliveries",
            "answered 200",
            "events stored",
            "applied",
            "`paid` transitions",
            "licences",
            "receipts",
            "licence emails",
            "orders emailed twice",
        ],
        vec![vec![
            (orders * COPIES).to_string(),
            (storm.requests - storm.errors).to_string(),
            stored.to_string(),
            applied.to_string(),
            transitions.to_string(),
            licences.to_string(),
            receipts.to_string(),
            emails.values().sum::<usize>().to_string(),
            twice.to_string(),
        ]],
    );
    section.verdict(
        "every event stored and applied once across processes: one transition, licence, receipt and licence email per order",
        drained
            && storm.errors == 0
            && stored == n
            && applied == n
            && transitions == n
            && licences == n
            && receipts == n
            && emails.len() as i64 == n
            && twice == 0,
    );
    Ok(section)
}
