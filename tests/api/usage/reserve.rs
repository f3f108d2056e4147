//! The ledger under concurrency, retries, overruns, expiry, caps and period changes.
use std::sync::Arc;

use futures_util::future::join_all;
use ironclad::usage::{UsageError, error::Scope};

use super::{budget, counter, day, expire_all, free_org, held, usage};
use crate::support::TestApp;

#[tokio::test]
async fn two_hundred_reserves_over_two_servers_grant_exactly_a_hundred() {
    let app = TestApp::spawn().await;
    let other = app.another_instance(&[]).await;
    let (org, _) = free_org(&app, "hot@usage.example").await;
    // 9,000 of 10,000 used already: 1,000 remain, room for 100 reserves of 10.
    let b = budget(org, 10_000, day(0));
    let first = usage(&app)
        .reserve_in(&b, None, 9_000, "warm-up")
        .await
        .unwrap();
    first.commit(9_000).await.unwrap();

    let (a, z) = (Arc::new(usage(&app)), Arc::new(other.layers.usage.clone()));
    let tries = (0..200).map(|i| {
        let state = if i % 2 == 0 { a.clone() } else { z.clone() };
        let b = b.clone();
        tokio::spawn(async move { state.reserve_in(&b, None, 10, &format!("r{i}")).await })
    });
    let results: Vec<_> = join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let granted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(UsageError::LimitReached(l)) if l.scope == Scope::Org && l.limit == 10_000))
        .count();
    assert_eq!((granted, refused), (100, 100));
    assert_eq!(counter(&app, org, day(0)).await, (9_000, 1_000));
    assert_eq!(held(&app, org, day(0)).await, 1_000);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM usage_reservations WHERE org_id = '{org}' AND state = 'open'"
        ))
        .await,
        100
    );
}

#[tokio::test]
async fn a_retried_key_counts_once_even_when_the_retries_race() {
    let app = TestApp::spawn().await;
    let (org, _) = free_org(&app, "retry@usage.example").await;
    let b = budget(org, 1_000, day(0));
    let state = Arc::new(usage(&app));
    let tries = (0..10).map(|_| {
        let (state, b) = (state.clone(), b.clone());
        tokio::spawn(async move { state.reserve_in(&b, None, 300, "the-one").await })
    });
    let ids: Vec<_> = join_all(tries)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("the key's reservation").id())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one reservation: {ids:?}"
    );
    assert_eq!(counter(&app, org, day(0)).await, (0, 300));

    // Committed, the key is spent: a retry changes nothing and says so.
    let again = state.reserve_in(&b, None, 300, "the-one").await.unwrap();
    again.commit(250).await.unwrap();
    let after = state.reserve_in(&b, None, 300, "the-one").await;
    assert!(matches!(after, Err(UsageError::Settled(s)) if s == "committed"));
    assert_eq!(counter(&app, org, day(0)).await, (250, 0));
}

#[tokio::test]
async fn a_commit_charges_what_was_used_and_an_overrun_stops_the_next_reserve() {
    let app = TestApp::spawn().await;
    let (org, _) = free_org(&app, "overrun@usage.example").await;
    let b = budget(org, 1_000, day(0));
    let state = usage(&app);
    // Used less than reserved: the rest is free again.
    let r = state.reserve_in(&b, None, 400, "a").await.unwrap();
    r.commit(100).await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (100, 0));
    // Used more than reserved (an LLM's estimate is a guess): charged, past the limit by that
    // excess only.
    let r = state.reserve_in(&b, None, 900, "b").await.unwrap();
    r.commit(950).await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (1_050, 0));
    let refused = state.reserve_in(&b, None, 1, "c").await;
    match refused {
        Err(UsageError::LimitReached(l)) => {
            assert_eq!((l.limit, l.used, l.resets_at), (1_000, 1_050, b.period.end));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A failed unit of work gives its amount back.
    let mut roomy = b.clone();
    roomy.included = 2_000;
    let r = state.reserve_in(&roomy, None, 500, "d").await.unwrap();
    r.release().await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (1_050, 0));
}

#[tokio::test]
async fn a_dead_processs_reservation_stops_counting_at_its_ttl_and_nothing_counts_twice() {
    let app = TestApp::spawn().await;
    let (org, _) = free_org(&app, "ttl@usage.example").await;
    let b = budget(org, 1_000, day(0));
    let state = usage(&app);
    // A process reserves everything and dies (the reservation is never settled).
    let dead = state.reserve_in(&b, None, 1_000, "dead").await.unwrap();
    assert!(matches!(
        state.reserve_in(&b, None, 10, "blocked").await,
        Err(UsageError::LimitReached(_))
    ));
    expire_all(&app, org).await;
    // The next reserve itself reclaims it: no sweep.
    let next = state.reserve_in(&b, None, 600, "next").await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (0, 600));
    assert_eq!(held(&app, org, day(0)).await, 600);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM usage_reservations WHERE org_id = '{org}' AND state = 'expired'"
        ))
        .await,
        1
    );
    // The "dead" process was only slow: its late commit is charged, its reservation not freed
    // twice.
    dead.commit(200).await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (200, 600));
    next.commit(600).await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (800, 0));
}

#[tokio::test]
async fn a_members_cap_limits_their_share_and_no_one_elses() {
    let app = TestApp::spawn().await;
    let (org, owner) = free_org(&app, "caps@usage.example").await;
    let mut capped = budget(org, 1_000, day(0));
    capped.member_cap = Some(100);
    let state = usage(&app);
    let r = state
        .reserve_in(&capped, Some(owner), 60, "m1")
        .await
        .unwrap();
    r.commit(70).await.unwrap();
    let open = state
        .reserve_in(&capped, Some(owner), 30, "m2")
        .await
        .unwrap();
    match state.reserve_in(&capped, Some(owner), 1, "m3").await {
        Err(UsageError::LimitReached(l)) => {
            assert_eq!((l.scope, l.limit, l.used), (Scope::Member, 100, 100));
        }
        other => panic!("expected the member's cap, got {other:?}"),
    }
    // The org's limit is untouched by the refusal; others (and API keys) share what is left.
    let uncapped = budget(org, 1_000, day(0));
    let key = state.reserve_in(&uncapped, None, 800, "key").await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (70, 830));
    // Released, the member's share frees up again.
    open.release().await.unwrap();
    let again = state
        .reserve_in(&capped, Some(owner), 30, "m4")
        .await
        .unwrap();
    again.commit(30).await.unwrap();
    key.release().await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (100, 0));
}

#[tokio::test]
async fn a_new_period_is_a_new_counter_and_a_late_commit_counts_in_its_own() {
    let app = TestApp::spawn().await;
    let (org, _) = free_org(&app, "period@usage.example").await;
    let state = usage(&app);
    let old = state
        .reserve_in(&budget(org, 100, day(0)), None, 100, "old")
        .await
        .unwrap();
    // The next day starts empty, with no reset job.
    let new = state
        .reserve_in(&budget(org, 100, day(1)), None, 100, "new")
        .await
        .unwrap();
    old.commit(90).await.unwrap();
    new.commit(10).await.unwrap();
    assert_eq!(counter(&app, org, day(0)).await, (90, 0));
    assert_eq!(counter(&app, org, day(1)).await, (10, 0));
}

#[tokio::test]
async fn the_budget_follows_the_plan_while_it_grants_and_the_free_allowance_otherwise() {
    let app = TestApp::spawn().await;
    let (org, owner) = free_org(&app, "plan@usage.example").await;
    let state = usage(&app);
    let free = state.budget(org, Some(owner), "ai_tokens").await.unwrap();
    assert_eq!((free.included, free.limit()), (10_000, Some(10_000)));
    // A business subscription: its period, 2,000,000 included, metered past it.
    super::on_business(&app, org, "cus_plan").await;
    let paid = state.budget(org, Some(owner), "ai_tokens").await.unwrap();
    assert_eq!((paid.included, paid.limit()), (2_000_000, None));
    assert!(paid.period.end > chrono::Utc::now() + chrono::Duration::days(26));
    // Past due beyond the grace: back to the free allowance.
    app.sql("UPDATE subscriptions SET status = 'unpaid'").await;
    let lapsed = state.budget(org, Some(owner), "ai_tokens").await.unwrap();
    assert_eq!(lapsed.limit(), Some(10_000));
    assert!(matches!(
        state.budget(org, None, "gpu_minutes").await,
        Err(UsageError::UnknownMeter(_))
    ));
}

#[tokio::test]
async fn housekeeping_drops_settled_reservations_of_long_ended_periods_and_keeps_the_counters() {
    let app = TestApp::spawn().await;
    let (org, _) = free_org(&app, "prune@usage.example").await;
    let state = usage(&app);
    let old = chrono::Utc::now() - chrono::Duration::days(60);
    let settled = state
        .reserve_in(&budget(org, 100, old), None, 10, "old-settled")
        .await
        .unwrap();
    settled.commit(10).await.unwrap();
    let _still_open = state
        .reserve_in(&budget(org, 100, old), None, 10, "old-open")
        .await
        .unwrap();
    let recent = state
        .reserve_in(&budget(org, 100, day(0)), None, 10, "recent")
        .await
        .unwrap();
    recent.commit(10).await.unwrap();

    let deleted = app.layers.housekeeping().run().await.unwrap();
    assert!(deleted.contains(&("usage_reservations", 1)), "{deleted:?}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM usage_reservations WHERE org_id = '{org}'"
        ))
        .await,
        2,
        "the open one and the recent period's stay"
    );
    assert_eq!(
        counter(&app, org, old).await,
        (10, 10),
        "the counter is the record"
    );
}
