//! A Stripe event as the inbox sees it, whatever it is about: the envelope every type shares,
//! what became of it (`stripe_events.outcome`), and the webhook's answer to Stripe. The rooms that
//! apply events (orders, subscriptions) read the envelope and answer with an outcome.
//!
//! The envelope is parsed leniently (only the fields we use, as JSON): Stripe adds fields and enum
//! values in new API versions, and a strict parser would turn that into 400s and lost events.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The parts of a Stripe event every type shares.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    pub livemode: bool,
    #[serde(default)]
    pub api_version: Option<String>,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// What became of an event (`stripe_events.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// The order moved.
    Applied,
    /// A duplicate or stale event for the order: recorded, nothing changed.
    Ignored,
    /// Contradicts what we know about the order: recorded for review, nothing changed.
    Rejected,
    /// A type we do not act on: recorded.
    UnhandledType,
    /// Names no order of ours: recorded for review.
    UnknownOrder,
    /// A subscription or invoice whose customer is no org of ours: recorded for review.
    UnknownCustomer,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::UnhandledType => "unhandled_type",
            Self::UnknownOrder => "unknown_order",
            Self::UnknownCustomer => "unknown_customer",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Applied,
            Self::Ignored,
            Self::Rejected,
            Self::UnhandledType,
            Self::UnknownOrder,
            Self::UnknownCustomer,
        ]
        .into_iter()
        .find(|o| o.as_str() == value)
    }

    /// Outcomes an operator may replay: the event did nothing, and might now (the order exists, the
    /// type is handled, the contradiction was fixed). Applied and ignored events are final.
    pub fn is_replayable(self) -> bool {
        matches!(
            self,
            Self::UnknownOrder | Self::UnknownCustomer | Self::UnhandledType | Self::Rejected
        )
    }
}

/// The webhook's answer. Stripe only looks at the status; the body helps whoever reads the
/// delivery log in the Stripe dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"event_id": "evt_1QxYz2AbCdEfGh", "status": "received"}))]
pub struct WebhookAck {
    pub event_id: String,
    pub status: Delivery,
}

/// What the inbox made of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The first delivery of this event: stored, and processed shortly.
    Received,
    /// Already stored (a retry, or a copy delivered at the same time): nothing more to do.
    Duplicate,
}

/// Parses a stored event's body into the envelope the decision reads.
pub fn parse(payload: &str) -> Result<Envelope, serde_json::Error> {
    serde_json::from_str(payload)
}
