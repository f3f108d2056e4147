//! The ingest keeps its priority in the one-box shape (`serve` with the processors in-process):
//! the webhook ack with processors running beside it, against the same run's ack-only, rounds
//! interleaved; and the ack during a storm that lands while a large backlog is being processed.
//! Every delivery here is sent by wrk.
use std::time::{Duration, Instant};

use ironclad::mail::MailSink;

use super::webhook::{completion_event, deliver_with_wrk, fresh_deliveries, pending_orders};
use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
    wrk::WrkResult,
};

const UNPROCESSED: &str = "SELECT (SELECT count(*) FROM stripe_events WHERE status = 'pending') \
    + (SELECT count(*) FROM stripe_events WHERE status = 'processing')";

/// The server shapes a round runs.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// `serve --no-workers`: nothing processes.
    AckOnly,
    /// `serve` with the processors only (`JOBS_ONLY=stripe_inbox`), yielding to the ingest.
    InProcess,
    /// The same with yielding off (`STRIPE_INBOX_YIELD_AT=0`): the landed code's behaviour.
    InProcessNoYield,
    /// `serve` with the processors and every job worker.
    InProcessWithJobs,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::AckOnly => "`serve --no-workers` (ack only)",
            Shape::InProcess => "`serve`, processors in-process, yielding",
            Shape::InProcessNoYield => "`serve`, processors in-process, not yielding",
            Shape::InProcessWithJobs => "`serve`, processors and job workers in-process, yielding",
        }
    }

    async fn start(self, db: &BenchDb, sink: &MailSink) -> anyhow::Result<Server> {
        let only = ("JOBS_ONLY", "stripe_inbox".to_owned());
        let (args, env): (&[&str], Vec<(&str, String)>) = match self {
            Shape::AckOnly => (&["serve", "--no-workers"], vec![]),
            Shape::InProcess => (&["serve"], vec![only]),
            Shape::InProcessNoYield => (
                &["serve"],
                vec![only, ("STRIPE_INBOX_YIELD_AT", "0".to_owned())],
            ),
            Shape::InProcessWithJobs => (&["serve"], vec![]),
        };
        Server::start(db, sink, args, &env).await
    }
}

// Whether anything is left, without counting: a count of a 100,000-event backlog every few
// milliseconds would cost Postgres more CPU than the processing it waits for.
const ANY_UNPROCESSED: &str = "SELECT (EXISTS (SELECT 1 FROM stripe_events WHERE status = 'pending') \
    OR EXISTS (SELECT 1 FROM stripe_events WHERE status = 'processing'))::int::int8";

async fn drained(db: &BenchDb, within: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + within;
    while db.scalar_i64(ANY_UNPROCESSED).await? > 0 {
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(true)
}

pub async fn run(db: &BenchDb, events: usize, backlog: usize) -> anyhow::Result<Section> {
    let sink = MailSink::start().await?;
    let shapes = [Shape::AckOnly, Shape::InProcess, Shape::InProcessNoYield];
    let mut results: Vec<(Shape, WrkResult)> = Vec::new();
    let mut first = 10_000_000;
    let mut complete = true;
    for round in 0..=load::ROUNDS {
        // Three interleaved rounds of the compared shapes, then one with the job workers on.
        let this_round: &[Shape] = if round < load::ROUNDS {
            &shapes
        } else {
            &[Shape::InProcessWithJobs]
        };
        for &shape in this_round {
            let server = shape.start(db, &sink).await?;
            let deliveries = fresh_deliveries(db, first, events).await?;
            first += events;
            results.push((shape, deliver_with_wrk(server.addr, 64, &deliveries).await?));
            if shape == Shape::AckOnly {
                // Its events are left pending: applied now, so every row starts with an empty inbox.
                server.stop().await?;
                let cleaner = Shape::InProcess.start(db, &sink).await?;
                complete &= drained(db, Duration::from_secs(300)).await?;
                cleaner.stop().await?;
            } else {
                complete &= drained(db, Duration::from_secs(300)).await?;
                server.stop().await?;
            }
        }
    }
    let median = |shape: Shape, of: fn(&WrkResult) -> f64| {
        load::median(
            results
                .iter()
                .filter(|(s, _)| *s == shape)
                .map(|(_, r)| of(r))
                .collect(),
        )
    };
    let ack_only = median(Shape::AckOnly, WrkResult::throughput);
    let yielding = median(Shape::InProcess, WrkResult::throughput);
    let not_yielding = median(Shape::InProcessNoYield, WrkResult::throughput);
    let with_jobs = median(Shape::InProcessWithJobs, WrkResult::throughput);

    let storm = backlog_storm(db, &sink, first, backlog, events).await?;

    let mut section = Section::new("Ingest keeps its priority (one box, processors in-process)");
    section.line(format!(
        "{events} fresh signed `checkout.session.completed` events per row, sent once each by wrk over 64 connections to one server of the shape named; {} rounds of the three compared shapes, interleaved, then one with the job workers on too. Processing rows are followed by waiting until the inbox is empty. Yielding: while the webhook stores ≥ `STRIPE_INBOX_YIELD_AT` (2,000) deliveries a second (over 100 ms), the processors run `STRIPE_INBOX_YIELD_LANES` (1) lane, claim only what it takes and apply at most `STRIPE_INBOX_YIELD_DUTY_PCT` (50) % of the time.",
        load::ROUNDS
    ));
    let mut rows = Vec::new();
    for (shape, result) in &results {
        let mut row = vec![shape.label().to_owned()];
        row.extend(result.row(64));
        rows.push(row);
    }
    let mut header = vec!["server"];
    header.extend(load::HEADER);
    section.table(&header, rows);
    section.table(
        &["shape", "median ack events/s", "÷ ack only"],
        [
            (Shape::AckOnly, ack_only),
            (Shape::InProcess, yielding),
            (Shape::InProcessNoYield, not_yielding),
            (Shape::InProcessWithJobs, with_jobs),
        ]
        .iter()
        .map(|(shape, rate)| {
            vec![
                shape.label().to_owned(),
                format!("{rate:.0}"),
                format!("{:.2}", rate / ack_only.max(1.0)),
            ]
        })
        .collect(),
    );
    section.verdict(
        &format!(
            "in-process ack (processors on, yielding) ≥ 0.7 × the same run's ack-only ({:.2} ×; not yielding: {:.2} ×)",
            yielding / ack_only.max(1.0),
            not_yielding / ack_only.max(1.0)
        ),
        yielding >= 0.7 * ack_only,
    );
    section.line(format!(
        "**A storm over a backlog.** {backlog} events stored pending (inserted directly, for {backlog} pending orders), then one `serve` (processors in-process, `JOBS_ONLY=stripe_inbox`) starts applying them; 1 s later wrk sends {events} new events once each over 256 connections. Backlog left when the storm began: {}; when it ended: {}. The whole inbox was empty {:.1} s after the server started ({:.0} events/s).",
        storm.backlog_at_start,
        storm.backlog_at_end,
        storm.drained_after.as_secs_f64(),
        (backlog + events) as f64 / storm.drained_after.as_secs_f64().max(0.001)
    ));
    section.table(
        &header,
        vec![{
            let mut row = vec!["`serve`, 100,000-event backlog being applied".to_owned()];
            row.extend(storm.ack.row(256));
            row
        }],
    );
    section.verdict(
        &format!(
            "while the backlog is processed: ack p99 < 100 ms and max < 2 s at 256 connections, no errors (p99 {:.1} ms, max {:.0} ms, {} errors)",
            storm.ack.p99_ms, storm.ack.max_ms, storm.ack.errors
        ),
        storm.ack.p99_ms < 100.0 && storm.ack.max_ms < 2000.0 && storm.ack.errors == 0,
    );
    section.verdict(
        "every round and the backlog fully applied",
        complete && storm.complete,
    );
    Ok(section)
}

struct Storm {
    ack: WrkResult,
    backlog_at_start: i64,
    backlog_at_end: i64,
    drained_after: Duration,
    complete: bool,
}

/// `backlog` events stored pending, a processing `serve` started, then a storm of `events`.
async fn backlog_storm(
    db: &BenchDb,
    sink: &MailSink,
    first: usize,
    backlog: usize,
    events: usize,
) -> anyhow::Result<Storm> {
    store_backlog(db, first, backlog).await?;
    let server = Shape::InProcess.start(db, sink).await?;
    let started = Instant::now();
    let deliveries = fresh_deliveries(db, first + backlog, events).await?;
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
    let backlog_at_start = db.scalar_i64(UNPROCESSED).await?;
    let ack = deliver_with_wrk(server.addr, 256, &deliveries).await?;
    let backlog_at_end = db.scalar_i64(UNPROCESSED).await?;
    let complete = drained(db, Duration::from_secs(600)).await?;
    let drained_after = started.elapsed();
    server.stop().await?;
    Ok(Storm {
        ack,
        backlog_at_start,
        backlog_at_end,
        drained_after,
        complete,
    })
}

/// Pending orders numbered from `first` and one stored, unprocessed completion event for each, as
/// the ack would have left them (the same payload, written by one statement).
async fn store_backlog(db: &BenchDb, first: usize, count: usize) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    pending_orders(db, first, count).await?;
    // The bench's event for order "@ORDER@", number 0, with the number made a placeholder.
    let template = completion_event(0, "@ORDER@")
        .to_string()
        .replace("_bench_0\"", "_bench_@N@\"")
        .replace("customer-0@", "customer-@N@@")
        .replace('\'', "''");
    let last = first + count - 1;
    db.db
        .execute_unprepared(&format!(
            "INSERT INTO stripe_events (event_id, event_type, livemode, api_version, stripe_created, \
                 object_type, object_id, payload)
             SELECT 'evt_bench_' || n, 'checkout.session.completed', false, '2025-10-29.clover', now(),
                 'checkout.session', 'cs_bench_' || n,
                 replace(replace('{template}', '@N@', n::text), '@ORDER@', o.id::text)
             FROM generate_series({first}, {last}) AS n
             JOIN orders o ON o.stripe_checkout_session_id = 'cs_bench_' || n"
        ))
        .await?;
    Ok(())
}
