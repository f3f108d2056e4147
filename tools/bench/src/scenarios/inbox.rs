//! The inbox end to end: deliveries (sent by wrk) acknowledged while processors apply them, timed
//! from the first delivery until every order is paid with its jobs queued; the same run's pgbench
//! ceilings of the processor's apply transaction and of ingest plus apply; and the processing lag
//! at a steady 1,000 events/s.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use ironclad::mail::MailSink;

use super::{
    pgbench,
    webhook::{
        deliver_with_wrk, fresh_deliveries, pending_orders, signed_completion, webhook_request,
    },
};
use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
};

// Each count matches a partial index: sampling it does not scan the processed events (a scan per
// sample would cost Postgres more CPU than the processing it watches).
const UNPROCESSED: &str = "SELECT (SELECT count(*) FROM stripe_events WHERE status = 'pending') \
    + (SELECT count(*) FROM stripe_events WHERE status = 'processing')";

/// What one end-to-end run measured.
struct Run {
    label: &'static str,
    events: usize,
    ack: Duration,
    total: Duration,
    peak_backlog: i64,
    /// Events stored and not yet applied when the last delivery was answered.
    backlog_at_ack: i64,
    errors: usize,
    complete: bool,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.total.as_secs_f64()
    }

    /// Events applied per second after the last answer: the processors alone.
    fn drain_rate(&self) -> f64 {
        self.backlog_at_ack as f64 / (self.total - self.ack).as_secs_f64().max(0.001)
    }
}

/// How the processors run in a measurement: in the one `serve`, or in `worker` processes; with
/// the job workers beside them, or only the processors (`JOBS_ONLY=stripe_inbox`: the jobs are
/// queued and left, as the old in-request path's benchmark left them).
enum Topology {
    InProcess { jobs: bool },
    Workers(usize),
}

pub async fn run(db: &BenchDb, events: usize) -> anyhow::Result<Section> {
    let mut runs = Vec::new();
    let mut done = 0;
    for (n, (label, topology)) in [
        (
            "1 × `serve`, processor and job workers in-process (not a verdict)",
            Topology::InProcess { jobs: true },
        ),
        (
            "1 × `serve`, processor in-process",
            Topology::InProcess { jobs: false },
        ),
        (
            "`serve --no-workers` + 2 × `worker` (processors)",
            Topology::Workers(2),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let first = 2_000_000 + n * 1_000_000;
        runs.push(end_to_end(db, label, &topology, first, events, done).await?);
        done += events;
    }
    let lag_p99 = steady_lag(db, 5_000_000, 1_000, Duration::from_secs(10)).await?;
    // The ceilings: 16 apply transactions at once (two processors' 8 lanes), 16 events each; and
    // the same with each transaction's events ingested first.
    let ceiling = pgbench::apply_ceiling(db, 16, 16).await?;
    let both_ceiling = pgbench::ingest_apply_ceiling(db, 16, 16).await?;

    let mut section = Section::new("Inbox end to end");
    section.line(format!(
        "{events} distinct signed `checkout.session.completed` events for distinct pending orders, delivered once each by wrk over 64 connections while the processors run (production defaults: 8 lanes, 16 events per apply transaction). The first run has the job workers in-process too, running every licence and receipt meanwhile (for information); the verdicts take the other two, processors only (`JOBS_ONLY=stripe_inbox`: the follow-up jobs are queued and left, as the old in-request path's benchmark left them). Timed from the first delivery until every order is `paid` (or already `fulfilled`) with both its jobs queued. Backlog: events stored and not yet applied, sampled every 20 ms."
    ));
    section.table(
        &[
            "processors",
            "ack phase s",
            "total s",
            "events/s end to end",
            "peak backlog",
            "backlog at last ack",
            "drain after last ack s",
            "drain events/s",
            "errors",
        ],
        runs.iter()
            .map(|r| {
                vec![
                    r.label.to_owned(),
                    format!("{:.2}", r.ack.as_secs_f64()),
                    format!("{:.2}", r.total.as_secs_f64()),
                    format!("{:.0}", r.rate()),
                    r.peak_backlog.to_string(),
                    r.backlog_at_ack.to_string(),
                    format!("{:.2}", (r.total - r.ack).as_secs_f64()),
                    format!("{:.0}", r.drain_rate()),
                    r.errors.to_string(),
                ]
            })
            .collect(),
    );
    // The verdicts compare like with like: processors only, jobs queued (the first run adds the
    // job workers' load, for information).
    let slowest = runs[1..]
        .iter()
        .map(Run::rate)
        .fold(f64::INFINITY, f64::min);
    section.verdict(
        &format!("≥ 2,000 events/s end to end in every topology (slowest {slowest:.0})"),
        slowest >= 2000.0,
    );
    let slowest_drain = runs[1..]
        .iter()
        .map(Run::drain_rate)
        .fold(f64::INFINITY, f64::min);
    match (ceiling, both_ceiling) {
        (Some((ceiling, latency)), Some((both, both_latency))) => {
            section.line(format!(
                "pgbench ceilings in this run, 16 clients, 16 events per transaction. Apply: lock each order with the payment-intent check, audit + move in one statement, both jobs in one insert; one marking update; commit: **{ceiling:.0} events/s** (latency avg {latency} ms per transaction). Ingest + apply: the same, each transaction's 16 events first stored by one multi-row insert of the bench's event: **{both:.0} events/s** ({both_latency} ms)."
            ));
            section.verdict(
                &format!(
                    "drain after the last ack ≥ 0.6 × the apply ceiling (slowest {slowest_drain:.0} events/s, {:.2} ×)",
                    slowest_drain / ceiling.max(1.0)
                ),
                slowest_drain >= 0.6 * ceiling,
            );
            section.verdict(
                &format!(
                    "end to end ≥ 0.6 × the ingest + apply ceiling (slowest {slowest:.0} events/s, {:.2} ×)",
                    slowest / both.max(1.0)
                ),
                slowest >= 0.6 * both,
            );
        }
        _ => section.line("pgbench not found: no ceiling measured.".into()),
    }
    section.line(
        "Steady load: one `serve` with everything in-process (processor and job workers), 1,000 events/s for 10 s (50 events every 50 ms); lag = `processed_at − received_at` of each event, from the database.".into(),
    );
    section.verdict(
        &format!(
            "processing lag p99 < 1 s at 1,000 events/s ({:.0} ms)",
            lag_p99 * 1000.0
        ),
        lag_p99 < 1.0,
    );
    section.verdict(
        "every run complete: every order paid, every job queued, no errors",
        runs.iter().all(|r| r.complete && r.errors == 0),
    );
    Ok(section)
}

async fn end_to_end(
    db: &BenchDb,
    label: &'static str,
    topology: &Topology,
    first: usize,
    events: usize,
    done_before: usize,
) -> anyhow::Result<Run> {
    let deliveries = fresh_deliveries(db, first, events).await?;
    let sink = MailSink::start().await?;
    let processors_only = [("JOBS_ONLY", "stripe_inbox".to_owned())];
    let env: &[(&str, String)] = match topology {
        Topology::InProcess { jobs: true } => &[],
        _ => &processors_only,
    };
    let mut processes = Vec::new();
    let http = match topology {
        Topology::InProcess { .. } => Server::start(db, &sink, &["serve"], env).await?,
        Topology::Workers(n) => {
            for _ in 0..*n {
                processes.push(Server::start(db, &sink, &["worker"], env).await?);
            }
            Server::start(db, &sink, &["serve", "--no-workers"], env).await?
        }
    };
    let peak = Arc::new(AtomicI64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (url, peak, sampling) = (db.url.clone(), peak.clone(), sampling.clone());
        tokio::spawn(async move {
            use sea_orm::ConnectionTrait;
            let Ok(db) = sea_orm::Database::connect(&url).await else {
                return;
            };
            let query = sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, UNPROCESSED);
            while sampling.load(Ordering::Relaxed) {
                if let Ok(Some(row)) = db.query_one_raw(query.clone()).await
                    && let Ok(backlog) = row.try_get_by_index::<i64>(0)
                {
                    peak.fetch_max(backlog, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let result = deliver_with_wrk(http.addr, 64, &deliveries).await?;
    let ack = started.elapsed();
    let backlog_at_ack = db.scalar_i64(UNPROCESSED).await?;
    let expected = (done_before + events) as i64;
    let deadline = Instant::now() + Duration::from_secs(300);
    // An event is marked processed in the transaction that moved its order and queued its jobs:
    // the inbox empty means every order paid with its jobs queued (checked below, once).
    while db.scalar_i64(UNPROCESSED).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = started.elapsed();
    let paid = db
        .scalar_i64("SELECT count(*) FROM orders WHERE status IN ('paid', 'fulfilled')")
        .await?;
    let jobs = db
        .scalar_i64(
            "SELECT count(*) FROM apalis.jobs \
             WHERE job_type IN ('billing_deliver_license', 'billing_send_receipt')",
        )
        .await?;
    let complete = paid == expected && jobs == 2 * expected;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    http.stop().await?;
    for process in processes {
        process.stop().await?;
    }
    Ok(Run {
        label,
        events,
        ack,
        total,
        peak_backlog: peak.load(Ordering::Relaxed),
        backlog_at_ack,
        errors: result.errors as usize,
        complete,
    })
}

/// The p99 processing lag (seconds) at a steady `rate` of events per second for `duration`.
async fn steady_lag(
    db: &BenchDb,
    first: usize,
    rate: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    const TICK: Duration = Duration::from_millis(50);
    let per_tick = rate * TICK.as_millis() as usize / 1000;
    let ticks = (duration.as_millis() / TICK.as_millis()) as usize;
    let events = per_tick * ticks;
    let ids = pending_orders(db, first, events).await?;
    let deliveries: Arc<Vec<(Bytes, String)>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| signed_completion(first + i, id))
            .collect(),
    );
    let sink = MailSink::start().await?;
    let env: [(&str, String); 0] = [];
    let server = Server::start(db, &sink, &["serve"], &env).await?;
    let mut clock = tokio::time::interval(TICK);
    let mut sent = Vec::new();
    for tick in 0..ticks {
        clock.tick().await;
        let deliveries = deliveries.clone();
        let offset = tick * per_tick;
        let make: load::MakeRequest = Arc::new(move |i| webhook_request(&deliveries[offset + i]));
        let addr = server.addr;
        sent.push(tokio::spawn(async move {
            load::run(addr, 8, per_tick, make, |s| s == 200).await
        }));
    }
    for batch in sent {
        batch.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.scalar_i64(UNPROCESSED).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await?;
    let digit = first.to_string().chars().next().unwrap_or('4');
    db.scalar_f64(&format!(
        "SELECT coalesce(percentile_cont(0.99) WITHIN GROUP \
             (ORDER BY extract(epoch FROM processed_at - received_at)), 1e9)::float8 \
         FROM stripe_events WHERE event_id LIKE 'evt_bench_{digit}%'"
    ))
    .await
}
