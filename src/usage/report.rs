//! Reporting metered overage to Stripe as billing meter events, on a timer in the workers.
//!
//! Two steps, each safe to run in any number of processes at once and again after a crash:
//! 1. **Plan** (one statement): for every metered counter whose overage (used beyond included)
//!    passed what the ledger covers, insert a report for the difference, `(from_total, through]`.
//!    `from_total` is unique per counter, so two planners cannot cover the same units twice.
//! 2. **Send** the reports not sent yet, each with its deterministic `identifier` (Stripe drops a
//!    repeat seen within about a day), then mark them sent. A crash in between sends the same
//!    identifier again; our ledger, not Stripe's dedupe window, is what says what was reported.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use stripe::StripeRequest;
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;

use super::UsageState;
use crate::{billing::BillingError, db::stmt};

const PLAN: &str = "\
INSERT INTO usage_meter_reports
    (identifier, org_id, meter, period_start, stripe_customer_id, event_name, from_total, through)
SELECT format('ironclad-usage-%s-%s-%s-%s', c.org_id, c.meter,
        extract(epoch FROM c.period_start)::bigint, coalesce(r.through, 0)),
    c.org_id, c.meter, c.period_start, sc.stripe_customer_id, m.stripe_event_name,
    coalesce(r.through, 0), c.used - c.included
FROM usage_counters c
JOIN usage_meters m ON m.key = c.meter AND m.stripe_event_name IS NOT NULL
JOIN stripe_customers sc ON sc.org_id = c.org_id
LEFT JOIN LATERAL (SELECT max(through) AS through FROM usage_meter_reports r
    WHERE r.org_id = c.org_id AND r.meter = c.meter AND r.period_start = c.period_start) r ON true
WHERE c.metered AND c.period_end > now() - interval '30 days'
  AND c.used - c.included > coalesce(r.through, 0)
ON CONFLICT DO NOTHING";

#[derive(Debug, FromQueryResult)]
struct Pending {
    identifier: String,
    stripe_customer_id: String,
    event_name: String,
    value: i64,
    at: DateTime<Utc>,
}

/// Plans and sends what is due; returns the reports sent.
pub async fn report_overage(state: &UsageState) -> Result<usize, ReportError> {
    state.db.execute_raw(stmt(PLAN, [])).await?;
    // Timestamped inside the counter's period, so Stripe bills it on that period's invoice.
    let pending = Pending::find_by_statement(stmt(
        "SELECT r.identifier, r.stripe_customer_id, r.event_name, r.through - r.from_total AS value, \
            least(r.created_at, c.period_end - interval '1 second') AS at \
         FROM usage_meter_reports r JOIN usage_counters c USING (org_id, meter, period_start) \
         WHERE r.reported_at IS NULL ORDER BY r.created_at LIMIT 500",
        [],
    ))
    .all(&state.db)
    .await?;
    let mut sent = 0;
    for report in pending {
        let event = CreateBillingMeterEvent::new(
            report.event_name.clone(),
            [
                (
                    "stripe_customer_id".to_owned(),
                    report.stripe_customer_id.clone(),
                ),
                ("value".to_owned(), report.value.to_string()),
            ],
        )
        .identifier(report.identifier.clone())
        .timestamp(report.at.timestamp());
        state.stripe.json(|| event.build(), None).await?;
        state
            .db
            .execute_raw(stmt(
                "UPDATE usage_meter_reports SET reported_at = now() WHERE identifier = $1",
                [report.identifier.into()],
            ))
            .await?;
        sent += 1;
    }
    Ok(sent)
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Database(#[from] DbErr),
    #[error(transparent)]
    Stripe(#[from] BillingError),
}
