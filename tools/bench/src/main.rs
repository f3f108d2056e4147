//! `just bench`: measures a release build of Ironclad on this machine and writes BENCHMARKS.md.
//!
//! Usage: see [`USAGE`]. DATABASE_URL names the Postgres server to use (a fresh database is created
//! per run and dropped afterwards).
// `json!` expands recursively, and the bench's Stripe event spells out every field of a session.
#![recursion_limit = "256"]

mod chaos;
mod env;
mod load;
mod local_pg;
mod report;
mod scenarios;
mod wrk;

use env::BenchDb;
use report::{Machine, Section};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // sqlx's rustls (for Postgres TLS) cannot pick between the ring and aws-lc-rs providers alone.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(problem) = check_args(&args) {
        if problem.is_empty() {
            println!("{USAGE}");
            return Ok(());
        }
        eprintln!("{problem}\n\n{USAGE}");
        std::process::exit(2);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();
    let out = args
        .windows(2)
        .find(|w| w[0] == "--out")
        .map(|w| w[1].clone())
        .unwrap_or_else(|| "BENCHMARKS.md".into());
    let wanted = |name: &str| only.is_empty() || only.contains(&name);
    let scale = |full: usize| if quick { full / 10 } else { full };

    if args.first().is_some_and(|a| a == "chaos") {
        return run_chaos(quick, &only).await;
    }
    // The third-party client every HTTP scenario is measured with, beside ours.
    wrk::ensure_installed()?;

    let mut sections: Vec<Section> = Vec::new();
    let mut machine = None;
    // Each scenario gets a fresh database, dropped afterwards.
    macro_rules! scenario {
        ($name:literal, |$db:ident| $body:expr) => {
            if wanted($name) {
                let $db = BenchDb::create().await?;
                machine.get_or_insert(Machine::detect(&$db).await);
                for section in $body {
                    println!("{}", section.render());
                    sections.push(section);
                }
                $db.drop_database().await?;
            }
        };
    }
    let mut ingest_rate = None;
    scenario!("baseline", |db| [scenarios::baseline::run(
        &db,
        scale(50_000)
    )
    .await?]);
    scenario!("webhook", |db| {
        let (section, rate) = scenarios::webhook::ingest(&db, scale(10_000)).await?;
        ingest_rate = Some(rate);
        [section]
    });
    scenario!("e2e", |db| [
        scenarios::inbox::run(&db, scale(10_000)).await?
    ]);
    scenario!("priority", |db| [scenarios::priority::run(
        &db,
        scale(10_000),
        scale(100_000)
    )
    .await?]);
    scenario!("storm", |db| [scenarios::webhook::duplicate_storm(
        &db,
        scale(2_000)
    )
    .await?]);
    scenario!("pgbench", |db| [
        scenarios::pgbench::run(&db, ingest_rate).await?
    ]);
    scenario!("auth", |db| scenarios::auth::run(
        &db,
        scale(1_000),
        scale(50_000)
    )
    .await?);
    scenario!("orgs", |db| [
        scenarios::orgs::run(&db, scale(50_000)).await?
    ]);
    scenario!("jobs", |db| [
        scenarios::jobs::run(&db, scale(10_000)).await?
    ]);
    scenario!("subscriptions", |db| [scenarios::subscriptions::run(
        &db,
        scale(10_000),
        scale(2_000)
    )
    .await?]);
    scenario!("usage", |db| [scenarios::usage::run(
        &db,
        if quick { 1 } else { load::ROUNDS }
    )
    .await?]);

    let Some(machine) = machine else {
        anyhow::bail!("no scenario selected");
    };
    let command = format!(
        "just bench{}",
        if args.is_empty() {
            String::new()
        } else {
            format!(" {}", args.join(" "))
        }
    );
    std::fs::write(&out, report::document(&command, &machine, &sections))?;
    println!("wrote {out}");
    let failed: Vec<_> = sections.iter().filter(|s| !s.passed).collect();
    if !failed.is_empty() {
        anyhow::bail!("{} scenario(s) failed their targets", failed.len());
    }
    Ok(())
}

const USAGE: &str = "Usage: ironclad-bench [--quick] [--only NAME]... [--out FILE]
       ironclad-bench chaos [--quick] [--only NAME]...
Chaos experiments: workers, storm-kill, processors, postgres, reservations, scale-out.
Scenarios: baseline, webhook (the ack), e2e (the inbox end to end), priority (the ack beside the processors, and over a backlog), storm, pgbench, auth, orgs (the org guard), jobs, subscriptions (renewal storm, rate-limited reads), usage (reserve + commit beside pgbench).";
const SCENARIOS: [&str; 11] = [
    "baseline",
    "webhook",
    "e2e",
    "priority",
    "storm",
    "pgbench",
    "auth",
    "orgs",
    "jobs",
    "subscriptions",
    "usage",
];

/// A typo must not start a ten-minute run that ignores it. `Err("")` asks for the usage only.
fn check_args(args: &[String]) -> Result<(), String> {
    let mut rest = args.iter().map(String::as_str);
    let mut position = 0;
    while let Some(arg) = rest.next() {
        match arg {
            "-h" | "--help" => return Err(String::new()),
            "--quick" => {}
            "chaos" if position == 0 => {}
            "--only" => match rest.next() {
                Some(name) if SCENARIOS.contains(&name) || EXPERIMENTS.contains(&name) => {}
                other => return Err(format!("--only needs a scenario name, got {other:?}")),
            },
            "--out" => {
                rest.next().ok_or("--out needs a file name")?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
        position += 1;
    }
    Ok(())
}

const EXPERIMENTS: [&str; 6] = [
    "workers",
    "storm-kill",
    "processors",
    "postgres",
    "reservations",
    "scale-out",
];

/// `ironclad-bench chaos [--quick] [--only NAME]`: prints each experiment and fails if any
/// promise broke.
async fn run_chaos(quick: bool, only: &[&str]) -> anyhow::Result<()> {
    let down_for = std::time::Duration::from_secs(if quick { 3 } else { 10 });
    let scale = |full: usize| if quick { full / 5 } else { full };
    let kills = if quick { 4 } else { 8 };
    let wanted = |name: &str| only.is_empty() || only.contains(&name);
    let mut sections = Vec::new();
    if wanted("workers") {
        sections.push(chaos::kill_workers(scale(1_000), kills).await?);
    }
    if wanted("storm-kill") {
        sections.push(chaos::kill_server_mid_storm(scale(2_000)).await?);
    }
    if wanted("processors") {
        sections.push(chaos::kill_processors_mid_batch(scale(2_000), kills).await?);
    }
    if wanted("postgres") {
        sections.push(chaos::postgres_restart(down_for).await?);
    }
    if wanted("reservations") {
        sections.push(chaos::kill_server_mid_reservation(scale(50)).await?);
    }
    if wanted("scale-out") {
        sections.push(chaos::duplicate_storm_across_processes(scale(1_000)).await?);
    }
    for section in &sections {
        println!("{}", section.render());
    }
    let failed = sections.iter().filter(|s| !s.passed).count();
    anyhow::ensure!(failed == 0, "{failed} chaos experiment(s) failed");
    println!("chaos: all experiments passed");
    Ok(())
}
