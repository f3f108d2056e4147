//! The Stripe integration: talking to Stripe, and the inbox that turns its webhook deliveries into
//! events applied exactly once. What an event *means* belongs to the rooms that own the objects
//! (`orders/`, `subscriptions/`); this room stores, claims, retries and replays events, and the
//! processor hands each to the room it is about, through that room's front door.
//!
//! - `stripe_api.rs`: the Stripe calls (async-stripe), pointed at `STRIPE_API_BASE`, all paced by
//!   one limiter (`pacing.rs`) that backs off on 429.
//! - `signature.rs`: Stripe's signing scheme (pure). `event.rs`: the envelope every event shares,
//!   what became of an event, and the webhook's answer.
//! - `inbox.rs`: the webhook's one durable write, group-committed (the inbox's front half).
//! - `processor/`: claims and applies stored events, retries, dead events (its back half).
//! - `sync.rs`: catching up from Stripe's Events API; `replay.rs` and `review.rs`: the operator's
//!   replay of an event and the list of events to look at.
//! - `trigger.rs`: `ironclad stripe trigger`, a signed event sent to a running app (the dev loop).
pub mod event;
pub mod inbox;
pub mod pacing;
pub mod processor;
pub mod replay;
pub mod review;
pub mod signature;
pub mod stripe_api;
pub mod sync;
pub mod trigger;

pub use event::{Delivery, Envelope, EventOutcome, WebhookAck};
pub use inbox::{Inbox, Received, Stored};
pub use processor::Processor;
pub use signature::SignatureError;
pub use stripe_api::{ClosedSession, SessionLine, SessionRequest, StripeApi};
