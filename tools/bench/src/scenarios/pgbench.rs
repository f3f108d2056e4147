//! The database ceiling for webhook ingest: pgbench running the SQL one webhook runs (lock the order,
//! insert the event, audit and update the order, insert two jobs, commit) with no HTTP, no Rust, no
//! signature.
use std::process::Command;

use crate::{env::BenchDb, report::Section};

// The statements of `webhook::process` for a `checkout.session.completed`, in its order: lock the
// order, record the event (the duplicate gate), the audit row and the order's move in one statement
// (changing an indexed column, as recording the payment intent does), both jobs in one insert.
// @PAYLOAD@ becomes the ingest scenario's event, so both store the same jsonb.
const SCRIPT: &str = r#"\set n random(1, 100000000)
BEGIN;
SELECT id, status FROM orders WHERE user_id = '00000000-0000-7000-8000-0000000000ab' AND checkout_key = 'pgbench-' || :client_id FOR UPDATE;
INSERT INTO stripe_events (event_id, event_type, livemode, stripe_created, payload, outcome)
  VALUES ('evt_pgb_' || :client_id || '_' || :n || '_' || txid_current(), 'checkout.session.completed', false, now(), '@PAYLOAD@', 'applied')
  ON CONFLICT (event_id) DO NOTHING;
WITH audit AS (
  INSERT INTO order_events (order_id, source, stripe_event_id, event, from_status, outcome)
  SELECT id, 'stripe', 'evt_pgb_' || :client_id || '_' || :n || '_' || txid_current(), 'checkout_completed', status, 'ignored'
  FROM orders WHERE user_id = '00000000-0000-7000-8000-0000000000ab' AND checkout_key = 'pgbench-' || :client_id)
UPDATE orders SET stripe_payment_intent_id = 'pi_pgb_' || :client_id || '_' || :n || '_' || txid_current()
  WHERE user_id = '00000000-0000-7000-8000-0000000000ab' AND checkout_key = 'pgbench-' || :client_id;
INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key)
  VALUES ('pgb' || :client_id || '_' || :n || '_a_' || txid_current(), 'deliver_license', '\x7b7d', 'Pending', 0, 8, now() + interval '1 day', 0, ''::hstore, NULL),
         ('pgb' || :client_id || '_' || :n || '_b_' || txid_current(), 'send_receipt', '\x7b7d', 'Pending', 0, 8, now() + interval '1 day', 0, ''::hstore, NULL)
  ON CONFLICT (job_type, idempotency_key) DO NOTHING;
COMMIT;
"#;

pub async fn run(db: &BenchDb, ingest_rate: Option<f64>) -> anyhow::Result<Section> {
    let mut section = Section::new("pgbench ceiling for one webhook's SQL");
    let Some(pgbench) = find_pgbench() else {
        section.line(
            "pgbench not found (Debian: postgresql-client / postgresql); skipped.".to_owned(),
        );
        return Ok(section);
    };
    // Each pgbench client locks its own order, as distinct webhooks lock distinct orders.
    use sea_orm::ConnectionTrait;
    db.db
        .execute_unprepared(
            "INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-7000-8000-0000000000ab', 'pgbench@example.com', 'x') ON CONFLICT DO NOTHING;
             INSERT INTO orders (id, user_id, checkout_key, currency, amount_total)
               SELECT gen_random_uuid(), '00000000-0000-7000-8000-0000000000ab', 'pgbench-' || c, 'usd', 4900
               FROM generate_series(0, 63) AS c;",
        )
        .await?;
    let script = std::env::temp_dir().join(format!("ironclad-pgbench-{}.sql", std::process::id()));
    // Pretty-printed: pgbench would read compact JSON's `:null` as a variable.
    let event = serde_json::to_string_pretty(&super::webhook::completion_event(
        0,
        "00000000-0000-7000-8000-000000000000",
    ))?;
    std::fs::write(&script, SCRIPT.replace("@PAYLOAD@", &event))?;
    let mut rows = Vec::new();
    let mut tps_64 = 0.0;
    for clients in [16, 64] {
        let output = Command::new(&pgbench)
            .args([
                "-n",
                // As the app runs its SQL: prepared once per connection, then bound and executed.
                "-M",
                "prepared",
                "-T",
                "10",
                "-j",
                "2",
                "-c",
                &clients.to_string(),
                "-f",
            ])
            .arg(&script)
            .arg(&db.url)
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(
            output.status.success(),
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
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
        if clients == 64 {
            tps_64 = tps;
        }
        rows.push(vec![clients.to_string(), format!("{tps:.0}"), latency]);
    }
    let _ = std::fs::remove_file(&script);
    section.line(
        "Each transaction: lock the order (one per client), insert the event, the audit row and the order update in one statement, both jobs in one insert, commit: the SQL of one webhook without HTTP, signature or Rust, run by pgbench for 10 s with prepared statements (as the app runs them).".to_owned(),
    );
    section.table(&["clients", "tps", "latency avg ms"], rows);
    if let Some(rate) = ingest_rate {
        section.line(format!(
            "Webhook ingest at 64 connections reached {rate:.0} events/s = **{:.0}%** of this ceiling ({tps_64:.0} tps).",
            100.0 * rate / tps_64.max(1.0)
        ));
    }
    Ok(section)
}

fn find_pgbench() -> Option<std::path::PathBuf> {
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
