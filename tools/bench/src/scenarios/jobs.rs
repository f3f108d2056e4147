//! Job throughput: N email jobs through one server's workers into an SMTP server, reporting jobs/s,
//! end-to-end latency (enqueue commit → message received) and the age of the oldest due job over time.
use std::time::{Duration, Instant};

use ironclad::{
    config::JobsConfig,
    jobs::{JobOptions, JobQueue},
    mail::{MailSink, SendEmail},
};
use sea_orm::TransactionTrait;

use crate::{
    env::{BenchDb, Server},
    report::Section,
};

pub async fn run(db: &BenchDb, jobs: usize) -> anyhow::Result<Section> {
    let sink = MailSink::start().await?;
    let queue = JobQueue::new(
        JobsConfig {
            concurrency: 1,
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 6,
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            max_attempts: 5,
            only: Vec::new(),
        },
        db.db.clone(),
    );

    // Enqueue everything first (one transaction), then start the workers: a pure drain.
    let enqueue_started = Instant::now();
    let txn = db.db.begin().await?;
    for i in 0..jobs {
        let email = SendEmail {
            to: format!("user{i}@example.com"),
            template: "welcome".into(),
            context: serde_json::json!({"name": format!("User {i}"), "app_url": "https://app.example.com"}),
            message_key: Some(format!("bench.{i}")),
        };
        queue.push(&txn, &email, JobOptions::default()).await?;
    }
    txn.commit().await?;
    let enqueue_elapsed = enqueue_started.elapsed();

    let started = Instant::now();
    let committed_at = chrono::Utc::now();
    let server = Server::start(
        db,
        &sink,
        &["worker"],
        &[
            ("JOBS_CONCURRENCY", "32".into()),
            ("DATABASE_MAX_CONNECTIONS", "40".into()),
        ],
    )
    .await?;

    let mut samples = Vec::new();
    let deadline = started + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let delivered = sink.messages().len();
        let oldest = db
            .scalar_f64(
                "SELECT extract(epoch FROM now() - min(run_at))::float8 FROM apalis.jobs \
                 WHERE status IN ('Pending', 'Failed') AND run_at <= now()",
            )
            .await?;
        samples.push((started.elapsed().as_secs_f64(), oldest, delivered));
        if delivered >= jobs || Instant::now() > deadline {
            break;
        }
    }
    let messages = sink.wait_for(jobs, Duration::from_secs(5)).await;
    let elapsed = messages
        .iter()
        .map(|m| m.received_at)
        .max()
        .map(|last| (last - committed_at).to_std().unwrap_or_default())
        .unwrap_or(started.elapsed());
    server.stop().await?;

    let done = db
        .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE status = 'Done'")
        .await?;
    let mut latencies: Vec<f64> = messages
        .iter()
        .map(|m| (m.received_at - committed_at).num_milliseconds() as f64)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let mut duplicates = messages.len() as i64 - jobs as i64;
    duplicates = duplicates.max(0);

    let mut section = Section::new("Job throughput (email jobs → SMTP)");
    section.line(format!(
        "{jobs} `SendEmail` jobs enqueued in one transaction ({:.1} s, {:.0} enqueues/s), then drained by one `ironclad worker` process (JOBS_CONCURRENCY=32) into an SMTP server on loopback.",
        enqueue_elapsed.as_secs_f64(),
        jobs as f64 / enqueue_elapsed.as_secs_f64()
    ));
    section.table(
        &[
            "jobs",
            "delivered",
            "done rows",
            "duplicates",
            "elapsed s",
            "jobs/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        ],
        vec![vec![
            jobs.to_string(),
            messages.len().to_string(),
            done.to_string(),
            duplicates.to_string(),
            format!("{:.1}", elapsed.as_secs_f64()),
            format!("{:.0}", messages.len() as f64 / elapsed.as_secs_f64()),
            format!("{:.0}", pct(0.50)),
            format!("{:.0}", pct(0.95)),
            format!("{:.0}", pct(0.99)),
        ]],
    );
    section.line("Latency is end to end per job: from the enqueue commit to the message arriving at the SMTP server (all jobs were due at once, so it is dominated by queueing).".to_owned());
    section.line("Oldest due job's age while draining:".to_owned());
    let step = (samples.len() / 12).max(1);
    section.table(
        &["t s", "oldest pending age s", "delivered"],
        samples
            .iter()
            .step_by(step)
            .chain(samples.last())
            .map(|(t, age, n)| vec![format!("{t:.1}"), format!("{age:.1}"), n.to_string()])
            .collect(),
    );
    section.verdict(
        "every job delivered exactly once",
        messages.len() == jobs && done as usize == jobs,
    );
    Ok(section)
}
