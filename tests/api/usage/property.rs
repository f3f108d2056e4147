//! A property test over random interleavings of reserve (alone and in concurrent bursts, new keys
//! and retried ones), commit (under and over the estimate), release, expiry and a period change:
//! after every step, per period, the counter's `reserved` equals what the reservations hold, its
//! `used` what was committed, and used + reserved never passes the limit plus the commits'
//! excesses over what they held.
use std::sync::atomic::{AtomicI64, Ordering};

use futures_util::future::join_all;
use ironclad::usage::{Reservation, UsageError};
use proptest::{prelude::*, test_runner::TestRunner};
use sea_orm::FromQueryResult;
use uuid::Uuid;

use super::{budget, counter, day, free_org, usage};
use crate::support::TestApp;

const LIMIT: i64 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    /// Reserve in period 0 or 1; `retry` reuses an earlier key instead of a new one.
    Reserve {
        amount: i64,
        period: i64,
        retry: Option<usize>,
    },
    /// `n` reserves at once.
    Burst {
        n: usize,
        amount: i64,
        period: i64,
    },
    Commit {
        which: usize,
        actual: i64,
    },
    Release {
        which: usize,
    },
    Expire {
        which: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..=300, 0i64..2, proptest::option::weighted(0.2, any::<usize>()))
            .prop_map(|(amount, period, retry)| Op::Reserve { amount, period, retry }),
        1 => (2usize..8, 1i64..=200, 0i64..2).prop_map(|(n, amount, period)| Op::Burst { n, amount, period }),
        3 => (any::<usize>(), 0i64..=400).prop_map(|(which, actual)| Op::Commit { which, actual }),
        1 => any::<usize>().prop_map(|which| Op::Release { which }),
        1 => any::<usize>().prop_map(|which| Op::Expire { which }),
    ]
}

#[derive(FromQueryResult)]
struct Ledger {
    held: i64,
    committed: i64,
    excess: i64,
    bad_holds: i64,
}

async fn check_period(
    app: &TestApp,
    org: Uuid,
    start: chrono::DateTime<chrono::Utc>,
) -> Result<(), TestCaseError> {
    let (used, reserved) = counter(app, org, start).await;
    let ledger = Ledger::find_by_statement(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT coalesce(sum(held), 0)::bigint AS held, \
            coalesce(sum(actual) FILTER (WHERE state = 'committed'), 0)::bigint AS committed, \
            coalesce(sum(greatest(actual - freed, 0)) FILTER (WHERE state = 'committed'), 0)::bigint \
                AS excess, \
            count(*) FILTER (WHERE (state = 'open') <> (held = amount) OR held > amount) AS bad_holds \
         FROM usage_reservations WHERE org_id = $1 AND meter = 'ai_tokens' AND period_start = $2",
        [org.into(), start.into()],
    ))
    .one(&app.db)
    .await
    .unwrap()
    .unwrap();
    prop_assert_eq!(
        reserved,
        ledger.held,
        "reserved equals what the reservations hold"
    );
    prop_assert_eq!(used, ledger.committed, "used equals what was committed");
    prop_assert!(
        used + reserved <= LIMIT + ledger.excess,
        "within the limit plus excesses"
    );
    prop_assert_eq!(ledger.bad_holds, 0);
    Ok(())
}

/// Keeps a granted reservation; a refusal (the limit, a spent key) is an answer, not a failure.
fn keep(
    r: Result<Reservation, UsageError>,
    held: &mut Vec<Option<Reservation>>,
) -> Result<(), TestCaseError> {
    match r {
        Ok(r) => {
            held.push(Some(r));
            Ok(())
        }
        Err(UsageError::LimitReached(_) | UsageError::Settled(_)) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("reserve failed: {e}"))),
    }
}

/// A retried key hands out the same reservation twice: the second settle finds it settled.
fn settled(r: Result<(), UsageError>) -> Result<(), TestCaseError> {
    match r {
        Ok(()) | Err(UsageError::Settled(_)) => Ok(()),
        Err(e) => Err(TestCaseError::fail(e.to_string())),
    }
}

async fn run(app: &TestApp, org: Uuid, case: i64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let state = usage(app);
    let periods = [day(10 + 2 * case), day(11 + 2 * case)];
    let mut keys: Vec<(String, i64)> = Vec::new();
    let mut held: Vec<Option<Reservation>> = Vec::new();
    for op in ops {
        match op {
            Op::Reserve {
                amount,
                period,
                retry,
            } => {
                let (key, period) = match retry.filter(|_| !keys.is_empty()) {
                    Some(i) => keys[i % keys.len()].clone(),
                    None => (format!("c{case}-k{}", keys.len()), period),
                };
                keys.push((key.clone(), period));
                let b = budget(org, LIMIT, periods[period as usize]);
                keep(state.reserve_in(&b, None, amount, &key).await, &mut held)?;
            }
            Op::Burst { n, amount, period } => {
                let b = budget(org, LIMIT, periods[period as usize]);
                let first = keys.len();
                keys.extend((0..n).map(|i| (format!("c{case}-k{}", first + i), period)));
                let all = join_all((0..n).map(|i| {
                    let (state, b, key) = (state.clone(), b.clone(), keys[first + i].0.clone());
                    async move { state.reserve_in(&b, None, amount, &key).await }
                }))
                .await;
                for r in all {
                    keep(r, &mut held)?;
                }
            }
            Op::Commit { which, actual } if !held.is_empty() => {
                let i = which % held.len();
                if let Some(r) = held[i].take() {
                    settled(r.commit(actual).await)?;
                }
            }
            Op::Release { which } if !held.is_empty() => {
                let i = which % held.len();
                if let Some(r) = held[i].take() {
                    settled(r.release().await)?;
                }
            }
            Op::Expire { which } if !held.is_empty() => {
                if let Some(r) = &held[which % held.len()] {
                    app.sql(&format!(
                        "UPDATE usage_reservations SET expires_at = now() - interval '1 second' WHERE id = '{}'",
                        r.id()
                    ))
                    .await;
                }
            }
            _ => {}
        }
        for start in periods {
            check_period(app, org, start).await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_interleaving_keeps_the_ledger_balanced_and_within_the_limit() {
    let app = TestApp::spawn().await;
    let (org, _) = free_org(&app, "property@usage.example").await;
    let cases = AtomicI64::new(0);
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 24,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&proptest::collection::vec(op(), 1..30), |ops| {
                let case = cases.fetch_add(1, Ordering::Relaxed);
                handle.block_on(run(&app, org, case, ops))
            })
            .unwrap();
    });
}
