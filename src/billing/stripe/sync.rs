//! Catching up after an outage (`ironclad stripe sync-events --since <time>`): Stripe's Events API
//! (`GET /v1/events`, which keeps 30 days) read page by page, newest first, and every event fed to
//! the inbox exactly as a delivery would be. Events already there are duplicates and change
//! nothing, so a sync can be run again, or overlap the webhook, safely.
use chrono::{DateTime, Utc};
use serde::Serialize;
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::inbox::{Received, Stored};
use crate::billing::{app::BillingState, error::BillingError};

/// A page as the Events API returns it; each event kept as its JSON text.
#[derive(miniserde::Deserialize)]
struct EventPage {
    data: Vec<miniserde::json::Value>,
    has_more: bool,
}

#[derive(Serialize)]
struct ListEvents<'a> {
    created: Created,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

#[derive(Serialize)]
struct Created {
    gte: i64,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Events Stripe listed since the given time.
    pub listed: usize,
    /// Of those, the ones the inbox did not have: they are processed like any delivery.
    pub new: usize,
    pub pages: usize,
}

/// Feeds every event Stripe created since `since` into the inbox.
#[tracing::instrument(level = "info", skip_all)]
pub async fn sync_events(
    app: &BillingState,
    since: DateTime<Utc>,
) -> Result<SyncReport, BillingError> {
    let mut report = SyncReport::default();
    let mut cursor: Option<String> = None;
    loop {
        let query = ListEvents {
            created: Created {
                gte: since.timestamp(),
            },
            limit: 100,
            starting_after: cursor.as_deref(),
        };
        let page: EventPage = app
            .stripe
            .send(|| RequestBuilder::new(StripeMethod::Get, "/events").query(&query))
            .await?;
        report.pages += 1;
        let mut stored = Vec::with_capacity(page.data.len());
        for event in &page.data {
            let text = miniserde::json::to_string(event);
            let received = Received::parse(text.as_bytes())?;
            cursor = Some(received.id.clone());
            stored.push(app.inbox.store(received));
        }
        // One page goes to the inbox at once: its writers commit it in a batch or two.
        for result in futures_util::future::join_all(stored).await {
            report.listed += 1;
            if result? == Stored::New {
                report.new += 1;
            }
        }
        if !page.has_more || page.data.is_empty() {
            return Ok(report);
        }
    }
}

/// `--since`: an RFC 3339 time (`2026-12-01T00:00:00Z`) or an age before `now` (`90m`, `12h`,
/// `3d`). Stripe keeps events for 30 days; asking for more lists what it still has.
pub fn parse_since(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    let (amount, unit) = value.split_at(value.len().saturating_sub(1));
    let amount: i64 = amount.parse().map_err(|_| {
        format!("{value:?} is neither an RFC 3339 time nor an age such as 12h or 3d")
    })?;
    let age = match unit {
        "m" => chrono::Duration::minutes(amount),
        "h" => chrono::Duration::hours(amount),
        "d" => chrono::Duration::days(amount),
        _ => return Err(format!("{value:?}: the age's unit must be m, h or d")),
    };
    Ok(now - age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_an_age() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| parse_since(s, now).unwrap().to_rfc3339();
        assert_eq!(at("2026-12-01T00:00:00Z"), "2026-12-01T00:00:00+00:00");
        assert_eq!(at("2026-12-01T01:00:00+01:00"), "2026-12-01T00:00:00+00:00");
        assert_eq!(at("90m"), "2026-12-02T10:30:00+00:00");
        assert_eq!(at("12h"), "2026-12-02T00:00:00+00:00");
        assert_eq!(at("3d"), "2026-11-29T12:00:00+00:00");
        for bad in ["", "h", "12", "12w", "yesterday", "2026-12-01"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
