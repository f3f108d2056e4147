//! What a Stripe subscription or invoice says, read leniently from its JSON (only the fields we
//! keep) into types that parse. Pure, unit-tested without Stripe.
//!
//! Recent API versions moved `current_period_start`/`current_period_end` from the subscription to
//! its items (dj-stripe issue 2196); both places are read, the items first. A status we do not
//! know is an error, never a guess: the event is retried and, if it stays unknown, kept for review.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A subscription's status, as Stripe sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
}

impl SubscriptionStatus {
    pub const ALL: [Self; 8] = [
        Self::Incomplete,
        Self::IncompleteExpired,
        Self::Trialing,
        Self::Active,
        Self::PastDue,
        Self::Canceled,
        Self::Unpaid,
        Self::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Ended for good: a new subscription is needed.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Canceled | Self::IncompleteExpired)
    }
}

/// Our copy's fields, as read from a subscription object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFacts {
    pub id: String,
    pub customer: String,
    pub status: SubscriptionStatus,
    /// The first item's price (our plans have one item, charged per seat).
    pub price_id: Option<String>,
    pub quantity: i32,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub latest_invoice: Option<String>,
    /// `metadata.org_id`, set at checkout: how a subscription is matched to its org when its
    /// customer is not (yet) known to us.
    pub org_hint: Option<Uuid>,
}

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    #[error("the object has no {0}")]
    Missing(&'static str),
    #[error("unknown subscription status {0:?}")]
    UnknownStatus(String),
}

impl SubscriptionFacts {
    pub fn read(object: &Value) -> Result<Self, FactsError> {
        let id = object["id"].as_str().ok_or(FactsError::Missing("id"))?;
        let customer = expandable_id(&object["customer"]).ok_or(FactsError::Missing("customer"))?;
        let raw_status = object["status"]
            .as_str()
            .ok_or(FactsError::Missing("status"))?;
        let status = SubscriptionStatus::parse(raw_status)
            .ok_or_else(|| FactsError::UnknownStatus(raw_status.to_owned()))?;
        let item = &object["items"]["data"][0];
        let period = |field: &str| time(&item[field]).or_else(|| time(&object[field]));
        let quantity = item["quantity"]
            .as_i64()
            .or_else(|| object["quantity"].as_i64())
            .unwrap_or(1);
        Ok(Self {
            id: id.to_owned(),
            customer,
            status,
            price_id: expandable_id(&item["price"])
                .or_else(|| expandable_id(&object["plan"]))
                .filter(|p| !p.is_empty()),
            quantity: i32::try_from(quantity.max(0)).unwrap_or(i32::MAX),
            period_start: period("current_period_start"),
            period_end: period("current_period_end"),
            cancel_at_period_end: object["cancel_at_period_end"].as_bool().unwrap_or(false),
            cancel_at: time(&object["cancel_at"]),
            canceled_at: time(&object["canceled_at"]),
            ended_at: time(&object["ended_at"]),
            trial_end: time(&object["trial_end"]),
            latest_invoice: expandable_id(&object["latest_invoice"]),
            org_hint: object["metadata"]["org_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok()),
        })
    }
}

/// What an invoice event carries that our copy keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFacts {
    pub id: String,
    /// The subscription it bills (`parent.subscription_details.subscription` in recent API
    /// versions, `subscription` before).
    pub subscription: Option<String>,
    pub customer: Option<String>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    /// Payment attempts so far (dunning counts from it).
    pub attempt_count: i32,
    pub next_payment_attempt: Option<DateTime<Utc>>,
    pub hosted_invoice_url: Option<String>,
    /// The end of the latest period its subscription lines cover.
    pub period_end: Option<DateTime<Utc>>,
}

impl InvoiceFacts {
    pub fn read(object: &Value) -> Result<Self, FactsError> {
        let id = object["id"].as_str().ok_or(FactsError::Missing("id"))?;
        let subscription = expandable_id(&object["parent"]["subscription_details"]["subscription"])
            .or_else(|| expandable_id(&object["subscription"]));
        let period_end = object["lines"]["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|line| time(&line["period"]["end"]))
            .max();
        Ok(Self {
            id: id.to_owned(),
            subscription,
            customer: expandable_id(&object["customer"]),
            amount_due: object["amount_due"].as_i64().unwrap_or(0),
            amount_paid: object["amount_paid"].as_i64().unwrap_or(0),
            currency: object["currency"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            attempt_count: object["attempt_count"]
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0),
            next_payment_attempt: time(&object["next_payment_attempt"]),
            hosted_invoice_url: object["hosted_invoice_url"].as_str().map(str::to_owned),
            period_end,
        })
    }
}

/// Unix seconds, as Stripe sends times.
fn time(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(value.as_i64()?, 0)
}

/// An id Stripe may send as `"sub_123"` or, expanded, as `{"id": "sub_123", ...}`.
pub fn expandable_id(value: &Value) -> Option<String> {
    value
        .as_str()
        .or_else(|| value["id"].as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ORG: &str = "0193a4c0-2222-7000-8000-000000000001";

    fn subscription(items_have_periods: bool) -> Value {
        let mut item = json!({"id": "si_1", "price": {"id": "price_demo_starter_month"},
                              "quantity": 3});
        let mut sub = json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "trialing",
            "items": {"object": "list", "data": [item.clone()]},
            "cancel_at_period_end": true, "cancel_at": 1_767_000_000, "canceled_at": null,
            "ended_at": null, "trial_end": 1_766_000_000, "latest_invoice": {"id": "in_1"},
            "metadata": {"org_id": ORG}
        });
        if items_have_periods {
            item["current_period_start"] = json!(1_764_000_000);
            item["current_period_end"] = json!(1_766_592_000);
            sub["items"]["data"][0] = item;
        } else {
            sub["current_period_start"] = json!(1_764_000_000);
            sub["current_period_end"] = json!(1_766_592_000);
        }
        sub
    }

    #[test]
    fn periods_are_read_from_the_items_or_from_the_subscription() {
        for on_items in [true, false] {
            let facts = SubscriptionFacts::read(&subscription(on_items)).unwrap();
            assert_eq!(facts.period_start.unwrap().timestamp(), 1_764_000_000);
            assert_eq!(facts.period_end.unwrap().timestamp(), 1_766_592_000);
            assert_eq!(facts.status, SubscriptionStatus::Trialing);
            assert_eq!(facts.price_id.as_deref(), Some("price_demo_starter_month"));
            assert_eq!(facts.quantity, 3);
            assert!(facts.cancel_at_period_end);
            assert_eq!(facts.latest_invoice.as_deref(), Some("in_1"));
            assert_eq!(facts.org_hint, Some(ORG.parse().unwrap()));
            assert_eq!(facts.trial_end.unwrap().timestamp(), 1_766_000_000);
            assert_eq!(facts.canceled_at, None);
        }
    }

    #[test]
    fn every_status_stripe_sends_parses_and_an_unknown_one_is_an_error() {
        for status in SubscriptionStatus::ALL {
            let mut sub = subscription(true);
            sub["status"] = json!(status.as_str());
            assert_eq!(SubscriptionFacts::read(&sub).unwrap().status, status);
        }
        let mut sub = subscription(true);
        sub["status"] = json!("hibernating");
        assert_eq!(
            SubscriptionFacts::read(&sub),
            Err(FactsError::UnknownStatus("hibernating".into()))
        );
        assert_eq!(
            SubscriptionFacts::read(&json!({"id": "sub_1", "status": "active"})),
            Err(FactsError::Missing("customer"))
        );
    }

    #[test]
    fn terminal_statuses_are_canceled_and_incomplete_expired() {
        let terminal: Vec<_> = SubscriptionStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                SubscriptionStatus::IncompleteExpired,
                SubscriptionStatus::Canceled
            ]
        );
    }

    #[test]
    fn an_invoice_names_its_subscription_in_either_api_shape() {
        let recent = json!({"id": "in_1", "customer": "cus_1", "amount_due": 2700,
            "amount_paid": 2700, "currency": "USD", "attempt_count": 1,
            "parent": {"subscription_details": {"subscription": "sub_1"}},
            "lines": {"data": [{"period": {"start": 1, "end": 1_766_592_000}},
                               {"period": {"start": 1, "end": 1_766_000_000}}]}});
        let facts = InvoiceFacts::read(&recent).unwrap();
        assert_eq!(facts.subscription.as_deref(), Some("sub_1"));
        assert_eq!(facts.period_end.unwrap().timestamp(), 1_766_592_000);
        assert_eq!(facts.currency, "usd");
        assert_eq!(facts.attempt_count, 1);
        let legacy = json!({"id": "in_2", "subscription": "sub_2", "next_payment_attempt": 5});
        let facts = InvoiceFacts::read(&legacy).unwrap();
        assert_eq!(facts.subscription.as_deref(), Some("sub_2"));
        assert_eq!(facts.next_payment_attempt.unwrap().timestamp(), 5);
        assert_eq!(facts.period_end, None);
    }
}
