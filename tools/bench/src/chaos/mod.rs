//! `just chaos`: kill things and check nothing is lost or hung. The inbox's experiments (the
//! server killed mid-storm, processors killed mid-batch) are in `inbox.rs`; usage budgets' (a
//! server killed holding reservations) in `usage.rs`; the duplicate storm over several web and
//! worker processes in `scale_out.rs`.
mod inbox;
mod scale_out;
mod usage;

pub use inbox::{kill_processors_mid_batch, kill_server_mid_storm};
pub use scale_out::duplicate_storm_across_processes;
use std::time::{Duration, Instant};
pub use usage::kill_server_mid_reservation;

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
    let queue = JobQueue::new(
        JobsConfig {
            concurrency: 1,
            heartbeat: Duration::from_secs(1),
            missed_heartbeats: 3,
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
            max_attempts: 5,
            only: Vec::new(),
        },
        db.db.clone(),
    );
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

/// Counts, per order, the licence emails the SMTP server received (by their deterministic
/// Message-ID `<order-<id>.license@…>`).
fn licence_emails(sink: &MailSink) -> std::collections::HashMap<String, usize> {
    let mut per_order = std::collections::HashMap::new();
    for mail in sink.messages() {
        if let Some(id) = mail
            .message_id
            .as_deref()
            .and_then(|m| m.strip_prefix("<order-"))
            && let Some((order, _)) = id.split_once(".license@")
        {
            *per_order.entry(order.to_owned()).or_insert(0) += 1;
        }
    }
    per_order
}

/// Waits until no Stripe event waits in the inbox and no job is pending or running (or `limit`
/// passes).
pub(crate) async fn drain(db: &BenchDb, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let open = db
            .scalar_i64(
                "SELECT (SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Killed')) \
                      + (SELECT count(*) FROM stripe_events WHERE status IN ('pending', 'processing'))",
            )
            .await?;
        if open == 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(false)
}

/// Two `ironclad worker` processes deliver licences for `orders` paid orders through a slow SMTP
/// server while one of them is killed with SIGKILL at random moments and restarted.
pub async fn kill_workers(orders: usize, kills: usize) -> anyhow::Result<Section> {
    let db = BenchDb::create().await?;
    // 20 ms per message: a licence delivery "takes a moment", so kills land mid-job.
    let sink = MailSink::start_with_latency(Duration::from_millis(20)).await?;
    let env = [
        ("JOBS_HEARTBEAT_MS", "500".to_owned()),
        ("JOBS_MISSED_HEARTBEATS", "4".to_owned()),
        ("JOBS_CONCURRENCY", "8".to_owned()),
        // A killed run's email lease (60 s) must be able to expire within the retries: the
        // default schedule (2 s base, 8 attempts) outlasts it; so does this faster one.
        ("JOBS_RETRY_BASE_MS", "1000".to_owned()),
        ("JOBS_MAX_ATTEMPTS", "10".to_owned()),
    ];
    let (ids, paid) = acknowledge(&db, &sink, &env, 5_000_000, orders, 16).await?;
    let (killed_mid_job, drained) = kill_and_replace_workers(
        &db,
        &sink,
        &env,
        kills,
        orders,
        // A pseudo-random pause (no rand crate needed): 300..1100 ms.
        (300, 800),
        "SELECT count(*) FROM apalis.jobs WHERE status IN ('Running', 'Queued')",
    )
    .await?;

    let n = orders as i64;
    let fulfilled = db
        .scalar_i64("SELECT count(*) FROM orders WHERE status = 'fulfilled' AND checkout_key LIKE 'bench-5%'")
        .await?;
    let licences = db.scalar_i64("SELECT count(*) FROM licenses").await?;
    let lines = db
        .scalar_i64("SELECT count(DISTINCT order_line_id) FROM licenses")
        .await?;
    let dead = db
        .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE status = 'Killed'")
        .await?;
    let reruns = db
        .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE attempts > 1")
        .await?;
    let per_order = licence_emails(&sink);
    let lost = ids.iter().filter(|id| !per_order.contains_key(*id)).count();
    let duplicate_emails: usize = per_order.values().map(|n| n - 1).sum();
    db.drop_database().await?;

    let mut section = Section::new("Chaos: workers killed with SIGKILL mid-delivery");
    section.line(format!(
        "{orders} orders paid by signed webhooks ({} errors), then two `ironclad worker` processes deliver their licences and receipts through an SMTP server that takes 20 ms per message. {kills} times, at 300–1100 ms intervals, one worker is killed with SIGKILL and a new one started; {killed_mid_job} kills hit while jobs were running. A dead worker's jobs are re-run once its heartbeats have been missing for 2 s.",
        paid.errors
    ));
    section.table(
        &[
            "orders",
            "fulfilled",
            "licences",
            "licensed lines",
            "licence emails",
            "duplicate emails (same Message-ID)",
            "lost",
            "jobs re-run",
            "dead jobs",
        ],
        vec![vec![
            n.to_string(),
            fulfilled.to_string(),
            licences.to_string(),
            lines.to_string(),
            per_order.len().to_string(),
            duplicate_emails.to_string(),
            lost.to_string(),
            reruns.to_string(),
            dead.to_string(),
        ]],
    );
    section.verdict(
        "lost = 0: every order fulfilled with exactly one licence and its licence email",
        drained && fulfilled == n && licences == n && lines == n && lost == 0 && dead == 0,
    );
    section.line(format!(
        "Duplicates: {duplicate_emails} (a kill between the SMTP handover and recording it can resend; the copy carries the same Message-ID)."
    ));
    Ok(section)
}

pub(crate) async fn send_one(
    addr: std::net::SocketAddr,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> anyhow::Result<u16> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender.send_request(request).await?.status().as_u16())
}

/// Delivers `orders` signed completions for new pending orders (ids from `first`) to a
/// `serve --no-workers` over `connections`, which stores them and answers; then stops it.
/// Returns the orders' ids and the deliveries' outcome.
pub(super) async fn acknowledge(
    db: &BenchDb,
    sink: &MailSink,
    env: &[(&str, String)],
    first: usize,
    orders: usize,
    connections: usize,
) -> anyhow::Result<(Vec<String>, load::LoadResult)> {
    use crate::scenarios::webhook::{pending_orders, signed_completion, webhook_request};
    use std::sync::Arc;
    let ids = pending_orders(db, first, orders).await?;
    let http = Server::start(db, sink, &["serve", "--no-workers"], env).await?;
    let deliveries: Arc<Vec<_>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| signed_completion(first + i, id))
            .collect(),
    );
    let make: load::MakeRequest = Arc::new(move |i| webhook_request(&deliveries[i]));
    let acked = load::run(http.addr, connections, orders, make, |s| s == 200).await?;
    http.stop().await?;
    Ok((ids, acked))
}

/// Two `ironclad worker` processes; `kills` times, after a pseudo-random pause of
/// `base + (…) % span` ms, one is killed with SIGKILL and a new one started. Counts the kills that
/// hit while `busy` (a count) was above zero; then waits for the work to drain and stops them.
/// Returns (kills that hit busy workers, drained in time).
pub(super) async fn kill_and_replace_workers(
    db: &BenchDb,
    sink: &MailSink,
    env: &[(&str, String)],
    kills: usize,
    seed: usize,
    (base, span): (u64, u64),
    busy: &str,
) -> anyhow::Result<(usize, bool)> {
    let mut workers = vec![
        Server::start(db, sink, &["worker"], env).await?,
        Server::start(db, sink, &["worker"], env).await?,
    ];
    let mut hit_busy = 0;
    for k in 0..kills {
        let pause = base + (k as u64 * 7919 + seed as u64) % span;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if db.scalar_i64(busy).await? > 0 {
            hit_busy += 1;
        }
        let victim = workers.remove(k % 2);
        victim.kill().await?;
        workers.insert(k % 2, Server::start(db, sink, &["worker"], env).await?);
    }
    let drained = drain(db, Duration::from_secs(300)).await?;
    for worker in workers {
        worker.stop().await?;
    }
    Ok((hit_busy, drained))
}
