//! The reconciliation sweep for subscriptions: a live copy whose period ended more than an hour
//! ago means events we never got (dj-stripe issue 1010): the renewal's, or the cancellation's;
//! it is read again from Stripe. Whether the ended period was paid says nothing about the next
//! one, so a paid copy is read too (an outage longer than Stripe's retries left normally paid
//! subscriptions 402 forever). A copy read within the hour waits, so one that Stripe still shows
//! with the old period costs one read an hour. Runs in the billing layer's periodic sweep (`reconcile.rs`, one per
//! interval whatever the number of processes); `ironclad stripe sync-events` covers outages.
use sea_orm::{FromQueryResult, TransactionTrait};

use super::{copy::LIVE, events::refresh};
use crate::{
    billing::{app::BillingState, error::BillingError},
    db::stmt,
};

/// At most this many subscriptions per sweep (the longest overdue first).
pub const SWEEP_LIMIT: i64 = 100;

/// Re-reads overdue subscriptions; returns how many it read.
pub async fn sweep(app: &BillingState) -> Result<usize, BillingError> {
    #[derive(FromQueryResult)]
    struct Overdue {
        stripe_subscription_id: String,
    }
    let overdue = Overdue::find_by_statement(stmt(
        &format!(
            "SELECT s.stripe_subscription_id FROM subscriptions s \
             WHERE {LIVE} AND s.current_period_end < now() - interval '1 hour' \
               AND s.read_started_at < now() - interval '1 hour' \
             ORDER BY s.current_period_end LIMIT $1"
        ),
        [SWEEP_LIMIT.into()],
    ))
    .all(&app.db)
    .await?;
    for sub in &overdue {
        let txn = app.db.begin().await?;
        refresh(app, &txn, &sub.stripe_subscription_id)
            .await
            .map_err(BillingError::Internal)?;
        txn.commit().await?;
    }
    Ok(overdue.len())
}
