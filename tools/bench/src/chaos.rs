//! `just chaos`: kill things and check nothing is lost or hung.
use std::time::{Duration, Instant};

use ironclad::{
    config::JobsConfig,
    jobs::{JobOptions, JobQueue},
    mail::{MailSink, SendEmail},
};

use crate::{
    env::{BenchDb, Server},
    load,
    local_pg::LocalPostgres,
    report::Section,
};

/// Postgres stops under the app (every connection dropped) and comes back. While it is down the
/// app must answer, quickly and with 503/5xx, not hang or crash; afterwards it must recover by
/// itself: readiness, HTTP reads and the job workers.
pub async fn postgres_restart(down_for: Duration) -> anyhow::Result<Section> {
    let pg = LocalPostgres::create()?;
    let db = BenchDb::create_on(&pg.url("postgres")).await?;
    let sink = MailSink::start().await?;
    let mut server = Server::start(
        &db,
        &sink,
        &["serve"],
        &[
            ("DATABASE_ACQUIRE_TIMEOUT_SECS", "2".into()),
            ("JOBS_HEARTBEAT_MS", "500".into()),
        ],
    )
    .await?;
    let probe_timeout = Duration::from_secs(10);
    let addr = server.addr;
    let probe = |path: &'static str| load::probe(addr, path, probe_timeout);

    let before = probe("/readyz").await?;
    pg.stop()?;
    let stopped = Instant::now();
    let (mut down_statuses, mut hung, mut slowest) = (Vec::new(), 0, Duration::ZERO);
    while stopped.elapsed() < down_for {
        for path in ["/readyz", "/metrics"] {
            let sent = Instant::now();
            match probe(path).await? {
                Some(status) => down_statuses.push((path, status)),
                None => hung += 1,
            }
            slowest = slowest.max(sent.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let survived_outage = server.is_running();
    pg.start()?;
    let restarted = Instant::now();
    let mut recovered_after = None;
    while restarted.elapsed() < Duration::from_secs(60) {
        if probe("/readyz").await? == Some(200) && probe("/metrics").await? == Some(200) {
            recovered_after = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The job workers must be back too: a job enqueued now gets delivered.
    let queue = JobQueue::new(JobsConfig {
        concurrency: 1,
        heartbeat: Duration::from_secs(1),
        missed_heartbeats: 3,
        poll_interval: Duration::from_secs(1),
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(2),
        max_attempts: 5,
    });
    let email = SendEmail {
        to: "after-restart@example.com".into(),
        template: "welcome".into(),
        context: serde_json::json!({"name": "R", "app_url": "u"}),
        message_key: None,
    };
    let mut enqueued = false;
    for _ in 0..20 {
        if queue
            .push(&db.db, &email, JobOptions::default())
            .await
            .is_ok()
        {
            enqueued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let job_started = Instant::now();
    let delivered = enqueued && !sink.wait_for(1, Duration::from_secs(45)).await.is_empty();
    let job_recovery = job_started.elapsed();
    server.stop().await?;
    drop(db);
    drop(pg);

    let readyz_503 = down_statuses
        .iter()
        .filter(|(p, s)| *p == "/readyz" && *s == 503)
        .count();
    let readyz_total = down_statuses
        .iter()
        .filter(|(p, _)| *p == "/readyz")
        .count();
    let reads_5xx = down_statuses
        .iter()
        .filter(|(p, s)| *p == "/metrics" && *s >= 500)
        .count();
    let reads_total = down_statuses.len() - readyz_total;

    let mut section = Section::new("Chaos: Postgres restarted under the app");
    section.line(format!(
        "A throwaway cluster is stopped (`pg_ctl stop -m fast`) for {} s while `/readyz` and a database-backed read (`/metrics`) are probed every 200 ms with a {} s client timeout, then started again.",
        down_for.as_secs(),
        probe_timeout.as_secs()
    ));
    section.table(
        &[
            "before",
            "readyz 503 while down",
            "DB reads 5xx while down",
            "hung requests",
            "slowest answer while down",
            "recovered after restart",
            "job delivered after restart",
        ],
        vec![vec![
            format!("{before:?}"),
            format!("{readyz_503}/{readyz_total}"),
            format!("{reads_5xx}/{reads_total}"),
            hung.to_string(),
            format!("{:.1} s", slowest.as_secs_f64()),
            recovered_after.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())),
            if delivered {
                format!("yes, {:.1} s", job_recovery.as_secs_f64())
            } else {
                "no".into()
            },
        ]],
    );
    section.verdict(
        "the app kept running while the database was down",
        survived_outage,
    );
    section.verdict(
        "while down: /readyz answered 503 and DB-backed reads answered 5xx, none hung",
        readyz_total > 0 && readyz_503 == readyz_total && reads_5xx == reads_total && hung == 0,
    );
    section.verdict(
        "recovered by itself (readiness and reads)",
        recovered_after.is_some(),
    );
    section.verdict("job workers recovered by themselves", delivered);
    Ok(section)
}
