//! Database ceilings, measured by pgbench in the same run as the app: the inbox's ingest statement
//! (what one acknowledged delivery costs Postgres) and the processor's apply transaction (what one
//! applied event costs), with no HTTP, no Rust, no signature.
use std::process::Command;

use sea_orm::ConnectionTrait;

use crate::{env::BenchDb, report::Section};

/// The statement a delivery waits for, one row per statement (a batch of one): as the inbox
/// writes it. @PAYLOAD@ becomes the bench's event, so both store the same text.
const INGEST: &str = r#"\set n random(1, 1000000000)
INSERT INTO stripe_events (event_id, event_type, livemode, api_version, stripe_created, object_type, object_id, payload)
  VALUES ('evt_pgb_' || :client_id || '_' || :n, 'checkout.session.completed', false, '2025-10-29.clover', now(), 'checkout.session', 'cs_pgb_' || :n, '@PAYLOAD@')
  ON CONFLICT (event_id) DO NOTHING RETURNING event_id;
"#;

/// One event's share of the apply transaction (`processor.rs`): lock its order with the payment
/// intent check, the audit row and the order's move in one statement, both jobs in one insert.
/// The audit rows are `ignored` and the jobs keyed uniquely, so the script can repeat forever.
const APPLY_EVENT: &str = r#"SELECT id, status, EXISTS (SELECT 1 FROM orders other WHERE other.stripe_payment_intent_id = 'pi_pgb_@C@_@K@' AND other.id <> orders.id) AS taken FROM orders WHERE org_id = '@ORG@' AND checkout_key = 'pgbench-@C@-@K@' FOR UPDATE;
WITH audit AS (
  INSERT INTO order_events (order_id, source, stripe_event_id, event, from_status, outcome)
  SELECT id, 'stripe', 'evt_pga_@C@_@K@', 'checkout_completed', status, 'ignored' FROM orders WHERE org_id = '@ORG@' AND checkout_key = 'pgbench-@C@-@K@')
UPDATE orders SET stripe_payment_intent_id = COALESCE(stripe_payment_intent_id, 'pi_pgb_@C@_@K@') WHERE org_id = '@ORG@' AND checkout_key = 'pgbench-@C@-@K@';
INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key)
  VALUES ('pga_@C@_@K@_a_' || :n, 'billing_deliver_license', '\x7b7d', 'Pending', 0, 8, now() + interval '1 day', 0, ''::hstore, 'pga_@C@_@K@_a_' || :n),
         ('pga_@C@_@K@_b_' || :n, 'billing_send_receipt', '\x7b7d', 'Pending', 0, 8, now() + interval '1 day', 0, ''::hstore, 'pga_@C@_@K@_b_' || :n)
  ON CONFLICT (job_type, idempotency_key) DO NOTHING;
"#;

pub struct Ceiling {
    /// Rows (ingest) or events (apply) per second, by client count.
    pub rows: Vec<(usize, f64, String)>,
}

impl Ceiling {
    pub fn at(&self, clients: usize) -> f64 {
        self.rows
            .iter()
            .find(|(c, ..)| *c == clients)
            .map_or(0.0, |(_, rate, _)| *rate)
    }
}

/// pgbench's ceiling for the ingest statement at 16 and 64 clients (`None` without pgbench).
pub async fn ingest_ceiling(db: &BenchDb) -> anyhow::Result<Option<Ceiling>> {
    let Some(pgbench) = find_pgbench() else {
        return Ok(None);
    };
    // Pretty-printed: pgbench would read compact JSON's `:null` as a variable.
    let event = serde_json::to_string_pretty(&super::webhook::completion_event(
        0,
        "00000000-0000-7000-8000-000000000000",
    ))?;
    let script = INGEST.replace("@PAYLOAD@", &event);
    let mut rows = Vec::new();
    for clients in [16, 64] {
        let (tps, latency) = run_pgbench(&pgbench, db, &script, clients)?;
        rows.push((clients, tps, latency));
    }
    Ok(Some(Ceiling { rows }))
}

/// pgbench's ceiling for the apply transaction: `chunk` events per transaction (as the processor
/// applies them), `clients` transactions at once; events/s.
pub async fn apply_ceiling(
    db: &BenchDb,
    clients: usize,
    chunk: usize,
) -> anyhow::Result<Option<(f64, String)>> {
    ceiling(db, clients, chunk, false).await
}

/// The same with each transaction's `chunk` events first ingested (one multi-row insert of the
/// bench's event, committed, as the inbox's group commit writes them): end to end's ceiling, since
/// both halves share the same two cores.
pub async fn ingest_apply_ceiling(
    db: &BenchDb,
    clients: usize,
    chunk: usize,
) -> anyhow::Result<Option<(f64, String)>> {
    ceiling(db, clients, chunk, true).await
}

async fn ceiling(
    db: &BenchDb,
    clients: usize,
    chunk: usize,
    ingest: bool,
) -> anyhow::Result<Option<(f64, String)>> {
    let Some(pgbench) = find_pgbench() else {
        return Ok(None);
    };
    db.db
        .execute_unprepared(&format!(
            "INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-7000-8000-0000000000ab', 'pgbench@example.com', 'x') ON CONFLICT DO NOTHING;
             INSERT INTO orders (id, org_id, placed_by, checkout_key, currency, amount_total)
               SELECT gen_random_uuid(), g.id, g.personal_for, 'pgbench-' || c || '-' || k, 'usd', 4900
               FROM orgs g, generate_series(1, {clients}) AS c, generate_series(1, {chunk}) AS k
               WHERE g.personal_for = '00000000-0000-7000-8000-0000000000ab'
               ON CONFLICT DO NOTHING;
             INSERT INTO stripe_events (event_id, event_type, livemode, stripe_created, payload, status, outcome, processed_at)
               SELECT 'evt_pga_' || c || '_' || k, 'checkout.session.completed', false, now(), '{{}}', 'processed', 'ignored', now()
               FROM generate_series(1, {clients}) AS c, generate_series(1, {chunk}) AS k
               ON CONFLICT DO NOTHING;"
        ))
        .await?;
    let org: String = db
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT id::text FROM orgs WHERE personal_for = '00000000-0000-7000-8000-0000000000ab'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the pgbench account has no personal org"))?
        .try_get_by_index(0)?;
    // pgbench's client_id counts from 0; each client takes its own orders, as lanes take distinct ones.
    let mut script = String::from("\\set n random(1, 1000000000)\n\\set c :client_id + 1\n");
    if ingest {
        // Pretty-printed: pgbench would read compact JSON's `:null` as a variable.
        let payload = serde_json::to_string_pretty(&super::webhook::completion_event(
            0,
            "00000000-0000-7000-8000-000000000000",
        ))?;
        let rows: Vec<String> = (1..=chunk)
            .map(|k| {
                format!(
                    "('evt_pgi_' || :c || '_' || :n || '_{k}', 'checkout.session.completed', false, \
                     '2025-10-29.clover', now(), 'checkout.session', 'cs_pgi_' || :n || '_{k}', '{payload}')"
                )
            })
            .collect();
        script.push_str(&format!(
            "INSERT INTO stripe_events (event_id, event_type, livemode, api_version, stripe_created, \
             object_type, object_id, payload) VALUES {} ON CONFLICT (event_id) DO NOTHING RETURNING event_id;\n",
            rows.join(", ")
        ));
    }
    script.push_str("BEGIN;\n");
    for k in 1..=chunk {
        script.push_str(
            &APPLY_EVENT
                .replace("@C@", "' || :c || '")
                .replace("@K@", &k.to_string())
                .replace("@ORG@", &org),
        );
    }
    let marks: Vec<String> = (1..=chunk)
        .map(|k| format!("('evt_pga_' || :c || '_{k}', 'ignored')"))
        .collect();
    script.push_str(&format!(
        "UPDATE stripe_events e SET status = 'processed', outcome = v.outcome, processed_at = now() \
         FROM (VALUES {}) AS v(event_id, outcome) WHERE e.event_id = v.event_id;\nCOMMIT;\n",
        marks.join(", ")
    ));
    let (tps, latency) = run_pgbench(&pgbench, db, &script, clients)?;
    Ok(Some((tps * chunk as f64, latency)))
}

/// The `pgbench` section: the ingest ceiling, and the ack rate as a fraction of it.
pub async fn run(db: &BenchDb, ack_rate: Option<f64>) -> anyhow::Result<Section> {
    let mut section = Section::new("pgbench ceiling of the inbox's ingest statement");
    let Some(ceiling) = ingest_ceiling(db).await? else {
        section.line("pgbench not found (Debian: postgresql-client / postgresql); skipped.".into());
        return Ok(section);
    };
    section.line(
        "One single-row `INSERT INTO stripe_events … ON CONFLICT (event_id) DO NOTHING RETURNING event_id` per transaction (the inbox's statement for a batch of one), the bench's 2.9 KB event as payload, run by pgbench for 10 s with prepared statements (as the app runs them).".to_owned(),
    );
    section.table(
        &["clients", "rows/s", "latency avg ms"],
        ceiling
            .rows
            .iter()
            .map(|(c, rate, latency)| vec![c.to_string(), format!("{rate:.0}"), latency.clone()])
            .collect(),
    );
    if let Some(rate) = ack_rate {
        section.line(format!(
            "The webhook ack at 64 connections reached {rate:.0} events/s = **{:.0}%** of this ceiling ({:.0} rows/s): group commit writes up to 128 events per statement and commit, so the ack can pass a one-row-per-commit ceiling.",
            100.0 * rate / ceiling.at(64).max(1.0),
            ceiling.at(64)
        ));
    }
    Ok(section)
}

pub fn run_pgbench(
    pgbench: &std::path::Path,
    db: &BenchDb,
    script: &str,
    clients: usize,
) -> anyhow::Result<(f64, String)> {
    let path = std::env::temp_dir().join(format!(
        "ironclad-pgbench-{}-{clients}.sql",
        std::process::id()
    ));
    std::fs::write(&path, script)?;
    let output = Command::new(pgbench)
        .args(["-n", "-M", "prepared", "-T", "10", "-j", "2", "-c"])
        .arg(clients.to_string())
        .arg("-f")
        .arg(&path)
        .arg(&db.url)
        .output()?;
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        text
    );
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let latency = text
        .lines()
        .find(|l| l.starts_with("latency average"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or("?")
        .to_owned();
    Ok((tps, latency))
}

pub fn find_pgbench() -> Option<std::path::PathBuf> {
    if let Ok(output) = Command::new("pgbench").arg("--version").output()
        && output.status.success()
    {
        return Some("pgbench".into());
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}
