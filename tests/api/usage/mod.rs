//! Usage budgets: reserves that never overspend whatever the concurrency (two servers at once),
//! retried keys counted once, commits past the estimate, expired reservations reclaimed by the
//! next reserve, members' caps, periods, the AI example over HTTP, and overage reported to Stripe
//! once — all against real Postgres, the fake Stripe and the fake LLM provider.
mod http;
mod property;
mod report;
mod reserve;

use chrono::{DateTime, Duration, Utc};
use ironclad::usage::{
    UsageState,
    period::{Budget, Overage, Period},
};
use sea_orm::{ConnectionTrait, FromQueryResult};
use uuid::Uuid;

use crate::support::TestApp;

pub fn usage(app: &TestApp) -> UsageState {
    app.layers.usage.clone()
}

/// A fresh org (no subscription: the free allowance) owned by a new user: (org, owner).
pub async fn free_org(app: &TestApp, email: &str) -> (Uuid, Uuid) {
    let (token, _) = crate::support::auth::signed_in(app, email).await;
    let user: Uuid = crate::support::auth::claims(&token)["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (app.personal_org(user).await, user)
}

/// Our copy says `org` has an active business subscription (customer `customer`), 3 days into
/// its month.
pub async fn on_business(app: &TestApp, org: Uuid, customer: &str) {
    app.sql(&format!(
        "INSERT INTO stripe_customers (org_id, stripe_customer_id) VALUES ('{org}', '{customer}'); \
         INSERT INTO subscriptions (id, org_id, stripe_subscription_id, stripe_customer_id, \
            plan_key, interval, stripe_price_id, status, status_since, quantity, \
            current_period_start, current_period_end, read_started_at) \
         VALUES (gen_random_uuid(), '{org}', 'sub_{customer}', '{customer}', 'business', 'month', \
            'price_demo_business_month', 'active', now(), 3, now() - interval '3 days', \
            now() + interval '27 days', now())"
    ))
    .await;
}

/// A hard budget of `limit` on `ai_tokens` for `org` in the period starting `start` (a day).
pub fn budget(org: Uuid, limit: i64, start: DateTime<Utc>) -> Budget {
    Budget {
        org_id: org,
        meter: "ai_tokens".into(),
        period: Period {
            start,
            end: start + Duration::days(1),
        },
        included: limit,
        overage: Overage::Hard,
        member_cap: None,
    }
}

/// The day `n` days from a fixed start (periods of the tests' own choosing).
pub fn day(n: i64) -> DateTime<Utc> {
    "2026-12-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::days(n)
}

/// The counter of `org`'s `ai_tokens` in the period starting `start`: (used, reserved).
pub async fn counter(app: &TestApp, org: Uuid, start: DateTime<Utc>) -> (i64, i64) {
    #[derive(FromQueryResult)]
    struct Row {
        used: i64,
        reserved: i64,
    }
    Row::find_by_statement(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT used, reserved FROM usage_counters \
         WHERE org_id = $1 AND meter = 'ai_tokens' AND period_start = $2",
        [org.into(), start.into()],
    ))
    .one(&app.db)
    .await
    .unwrap()
    .map_or((0, 0), |r| (r.used, r.reserved))
}

/// What the open reservations of the period hold (the counter's `reserved` must equal it).
pub async fn held(app: &TestApp, org: Uuid, start: DateTime<Utc>) -> i64 {
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT coalesce(sum(held), 0)::bigint AS held FROM usage_reservations \
             WHERE org_id = $1 AND meter = 'ai_tokens' AND period_start = $2",
            [org.into(), start.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "held").unwrap()
}

/// Ages every open reservation of `org` past its TTL (as if their processes died long ago).
pub async fn expire_all(app: &TestApp, org: Uuid) {
    app.sql(&format!(
        "UPDATE usage_reservations SET expires_at = now() - interval '1 second' \
         WHERE org_id = '{org}' AND state = 'open'"
    ))
    .await;
}
