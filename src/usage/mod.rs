//! Usage budgets: metered usage per organisation, reserved atomically, billed through Stripe
//! meters.
//!
//! The front door, for product code: [`UsageState::reserve`] → [`Reservation`], then
//! [`Reservation::commit`] or [`Reservation::release`]. For the composition root: [`UsageState`],
//! [`UsageConfig`], [`routes`], [`register_jobs`], [`UsageMetrics`], [`housekeeping_step`]. It
//! reads billing's copy of the org's subscription (`billing::subscriptions::copy`) for the plan
//! and period, and uses billing's [`StripeApi`] to report overage.
//!
//! - `period.rs`: pure — the period a meter counts in, the budget and its limit.
//! - `budget.rs`: resolves an org's budget for a meter (plan or free allowance, member cap).
//! - `ledger.rs`: reserve, commit, release — each one statement on the counter row.
//! - `reservation.rs`: the API product code calls, and members' caps on it.
//! - `report.rs`: committed overage to Stripe billing meter events, once.
//! - `caps.rs`, `views.rs`, `routes.rs`: the HTTP side.
pub mod budget;
pub mod caps;
pub mod config;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod period;
pub mod report;
pub mod reservation;
pub mod routes;
pub mod seed;
pub mod views;

pub use config::UsageConfig;
pub use error::UsageError;
pub use metrics::UsageMetrics;
pub use reservation::Reservation;
pub use routes::routes;

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;

use crate::{
    billing::StripeApi,
    housekeeping,
    jobs::{Workers, periodic::every_interval},
};

/// What the usage layer's handlers, product code and reporter use. Cheap to clone.
#[derive(Clone)]
pub struct UsageState {
    pub db: DatabaseConnection,
    pub config: Arc<UsageConfig>,
    /// How long a past-due subscription still grants its plan (billing's setting).
    pub grace: chrono::Duration,
    pub stripe: StripeApi,
    pub metrics: UsageMetrics,
}

/// The overage reporter, a service in the workers: every `USAGE_REPORT_INTERVAL_SECS`.
pub fn register_jobs(workers: &mut Workers, state: &UsageState) {
    let (run_state, drain_state) = (state.clone(), state.clone());
    let every = state.config.report_interval;
    workers.service(
        "usage-reporter",
        move |shutdown| {
            Box::pin(async move {
                every_interval(every, shutdown, || async {
                    if let Err(error) = report::report_overage(&run_state).await {
                        tracing::warn!(%error, "reporting usage to Stripe failed; retried next time");
                    }
                })
                .await;
            })
        },
        move || {
            let state = drain_state.clone();
            Box::pin(async move {
                report::report_overage(&state)
                    .await
                    .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))
            })
        },
    );
}

/// Settled reservations are kept this long after their period ends (Stripe takes meter events
/// up to 35 days old; a dispute about a period is settled from them).
const KEEP_RESERVATIONS: Duration = Duration::from_secs(35 * 86_400);

/// Deletes settled reservations of periods that ended over [`KEEP_RESERVATIONS`] ago (the counters
/// stay: they are the record of what was used).
pub fn housekeeping_step() -> housekeeping::Step {
    let keep = KEEP_RESERVATIONS;
    housekeeping::step(move |db| async move {
        let deleted = sea_orm::ConnectionTrait::execute_raw(
            &db,
            crate::db::stmt(
                "DELETE FROM usage_reservations r USING usage_counters c \
                 WHERE c.org_id = r.org_id AND c.meter = r.meter \
                   AND c.period_start = r.period_start AND r.state <> 'open' \
                   AND c.period_end < now() - make_interval(secs => $1)",
                [keep.as_secs_f64().into()],
            ),
        )
        .await?
        .rows_affected();
        Ok(vec![("usage_reservations", deleted)])
    })
}
