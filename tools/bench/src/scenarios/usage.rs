//! Usage budgets: in-process `reserve` + `commit` from 64 tasks, on one org (every task on the
//! same counter row) and spread over 100 orgs, beside the same run's pgbench ceiling of the same
//! two statements (`ironclad::usage::ledger::STATEMENTS`). Target: ≥ 0.7× the ceiling. The full
//! `reserve` (with the budget's two reads) is shown beside it.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ironclad::{
    startup::{Config, Layers},
    usage::{UsageState, ledger, period::Budget},
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::pgbench::{find_pgbench, run_pgbench};
use crate::{env::BenchDb, load::median, report::Section};

const TASKS: usize = 64;
const RUN: Duration = Duration::from_secs(10);
const TARGET: f64 = 0.7;

/// Counters whose `reserved` is not what their reservations hold (the ledger must balance).
pub const UNBALANCED_COUNTERS: &str = "SELECT count(*) FROM usage_counters c \
     WHERE reserved <> (SELECT coalesce(sum(held), 0) FROM usage_reservations r \
     WHERE r.org_id = c.org_id AND r.meter = c.meter AND r.period_start = c.period_start)";

fn org(n: usize) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-7000-8000-{n:012}")).expect("a uuid")
}

/// One round's figures for one shape: pairs/s by `reserve_in`, by `reserve`, by pgbench.
type Round = (f64, f64, Option<f64>);

pub async fn run(db: &BenchDb, rounds: usize) -> anyhow::Result<Section> {
    // Each measurement of each round on orgs of its own (per round: 0–99 `reserve_in`, 100–199
    // `reserve`, 200–299 pgbench): a counter row updated tens of thousands of times carries dead
    // versions until vacuum, which slows whatever runs after it on the same row.
    db.db
        .execute_unprepared(&format!(
            "INSERT INTO orgs (id, name, slug) SELECT ('00000000-0000-7000-8000-' || lpad(n::text, 12, '0'))::uuid, \
                'bench ' || n, 'bench-' || n FROM generate_series(0, {}) AS n; \
             UPDATE usage_meters SET free_included = 1000000000000 WHERE key = 'ai_tokens';",
            300 * rounds - 1
        ))
        .await?;
    let shapes = [("hot (1 org)", 1usize), ("spread (100 orgs)", 100)];
    let pgbench = find_pgbench();
    let mut figures: Vec<Vec<Round>> = vec![Vec::new(); shapes.len()];
    for round in 0..rounds {
        let usage = usage_state(db).await?;
        let first = 300 * round;
        let mut budgets: Vec<Budget> = Vec::new();
        for n in first..first + 300 {
            budgets.push(usage.budget(org(n), None, "ai_tokens").await?);
        }
        let mut in_process_figures = Vec::new();
        for (_, spread) in shapes {
            let resolved = in_process(&usage, &budgets[..spread], false).await?;
            let full = in_process(&usage, &budgets[100..100 + spread], true).await?;
            in_process_figures.push((resolved, full));
        }
        // pgbench's 64 connections and the layer's 64 do not fit in max_connections together.
        usage.db.clone().close().await?;
        for (i, ((_, spread), (resolved, full))) in
            shapes.into_iter().zip(in_process_figures).enumerate()
        {
            let ceiling = match &pgbench {
                Some(pgbench) => Some(
                    run_pgbench(
                        pgbench,
                        db,
                        &script(spread, first + 200, &budgets[200]),
                        TASKS,
                    )?
                    .0,
                ),
                None => None,
            };
            figures[i].push((resolved, full, ceiling));
        }
    }
    let mut section = Section::new("Usage budgets: reserve + commit against pgbench's ceiling");
    section.line(format!(
        "{TASKS} tasks in one process, each looping `reserve` (1 token, a new key) then `commit` for {} s, through the layer's own pool of {TASKS} connections; pgbench runs the same two statements (`ironclad::usage::ledger::STATEMENTS`) with {TASKS} clients for 10 s, prepared. *Hot*: every task on one org's counter row; *spread*: over 100 orgs. `reserve_in` takes a resolved budget (the statements pgbench runs); `reserve` also resolves it (the org's standing and the meter's rules: two indexed reads). Median of {rounds} round(s), each on fresh counters; every round in the second table.",
        RUN.as_secs()
    ));
    let mut rows = Vec::new();
    let mut every = Vec::new();
    let mut ok = true;
    for ((name, _), rounds) in shapes.into_iter().zip(&figures) {
        let resolved = median(rounds.iter().map(|r| r.0).collect());
        let full = median(rounds.iter().map(|r| r.1).collect());
        let ceiling = rounds
            .iter()
            .map(|r| r.2)
            .collect::<Option<Vec<f64>>>()
            .map(median);
        let ratio = |x: f64| ceiling.map(|c| x / c.max(1.0));
        ok &= ratio(resolved).is_some_and(|r| r >= TARGET);
        let shown = |r: Option<f64>| r.map_or("—".into(), |r| format!("{r:.2}×"));
        rows.push(vec![
            name.to_owned(),
            format!("{resolved:.0}"),
            format!("{full:.0}"),
            ceiling.map_or("—".into(), |c| format!("{c:.0}")),
            shown(ratio(resolved)),
            shown(ratio(full)),
        ]);
        for (n, (a, b, c)) in rounds.iter().enumerate() {
            every.push(vec![
                name.to_owned(),
                (n + 1).to_string(),
                format!("{a:.0}"),
                format!("{b:.0}"),
                c.map_or("—".into(), |c| format!("{c:.0}")),
            ]);
        }
    }
    section.table(
        &[
            "counters",
            "reserve_in + commit /s",
            "reserve + commit /s",
            "pgbench ceiling /s",
            "reserve_in ÷ ceiling",
            "reserve ÷ ceiling",
        ],
        rows,
    );
    section.table(
        &[
            "counters",
            "round",
            "reserve_in + commit /s",
            "reserve + commit /s",
            "pgbench /s",
        ],
        every,
    );
    let overspent = db
        .scalar_i64(
            "SELECT count(*) FROM usage_counters WHERE lim IS NOT NULL AND used + reserved > lim",
        )
        .await?;
    let unbalanced = db.scalar_i64(UNBALANCED_COUNTERS).await?;
    if pgbench.is_none() {
        section.line(
            "pgbench not found (Debian: postgresql-client); no ceiling to compare with.".into(),
        );
    }
    section.verdict(
        &format!(
            "reserve_in + commit ≥ {TARGET}× pgbench's ceiling of the same SQL, hot and spread"
        ),
        ok,
    );
    section.verdict(
        &format!("no counter over its limit ({overspent}), every counter equal to its reservations ({unbalanced} not)"),
        overspent == 0 && unbalanced == 0,
    );
    Ok(section)
}

/// The usage layer as the app builds it, on the bench database, with a pool of `TASKS`.
async fn usage_state(db: &BenchDb) -> anyhow::Result<UsageState> {
    let url = db.url.clone();
    let tasks = TASKS.to_string();
    let config = Config::from_lookup(|key| {
        match key {
            "APP_ENV" => Some("test"),
            "DATABASE_URL" => Some(url.as_str()),
            "DATABASE_MAX_CONNECTIONS" => Some(tasks.as_str()),
            "SMTP_URL" => Some("sink"),
            "TEMPLATES_DIR" => Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates")),
            _ => None,
        }
        .map(str::to_owned)
    })?;
    let (layers, _sink) = Layers::build(config).await?;
    Ok(layers.usage)
}

/// Reserve + commit pairs per second from `TASKS` tasks, round-robin over `budgets`.
async fn in_process(usage: &UsageState, budgets: &[Budget], resolve: bool) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let run_id = Uuid::new_v4().simple().to_string();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (usage, budgets, done, stop, run_id) = (
                usage.clone(),
                budgets.to_vec(),
                done.clone(),
                stop.clone(),
                run_id.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let budget = &budgets[(t + i) % budgets.len()];
                    let key = format!("{run_id}-{t}-{i}");
                    let held = if resolve {
                        usage
                            .reserve(budget.org_id, None, "ai_tokens", 1, &key)
                            .await
                    } else {
                        usage.reserve_in(budget, None, 1, &key).await
                    }?;
                    held.commit(1).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The reserve and commit statements as a pgbench transaction (autocommit each, as the app runs
/// them), on org `first_org` or one of the `spread` orgs from it, in `budget`'s period.
fn script(spread: usize, first_org: usize, budget: &Budget) -> String {
    let [reserve, commit, _] = ledger::STATEMENTS;
    let org =
        format!("('00000000-0000-7000-8000-' || lpad(({first_org} + :o)::text, 12, '0'))::uuid");
    let reserve = reserve
        .replace("$10", "NULL::uuid")
        .replace("$11", "300::float8")
        .replace("$1", &org)
        .replace("$2", "'ai_tokens'")
        .replace(
            "$3",
            &format!("'{}'::timestamptz", budget.period.start.to_rfc3339()),
        )
        .replace(
            "$4",
            &format!("'{}'::timestamptz", budget.period.end.to_rfc3339()),
        )
        .replace(
            "$5",
            &format!("{}::bigint", budget.limit().unwrap_or(i64::MAX)),
        )
        .replace("$6", &format!("{}::bigint", budget.included))
        .replace("$7", "1::bigint")
        .replace("$8", "gen_random_uuid()")
        .replace("$9", "('pgb-' || :client_id || '-' || :k)");
    let commit = commit
        .replace("$1", ":granted_id::uuid")
        .replace("$2", "1::bigint");
    format!(
        "\\set o random(0, {})\n\\set k random(1, 1000000000000)\n{} \\gset\n{};\n",
        spread - 1,
        one_line(&reserve),
        one_line(&commit)
    )
}

/// pgbench reads a statement per line (up to `;` or a meta-command).
fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}
