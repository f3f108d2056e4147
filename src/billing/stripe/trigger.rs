//! `ironclad stripe trigger <type> [--order ID]`: signs one Stripe event and sends it to a running
//! app's webhook endpoint, like the Stripe CLI's `stripe trigger`. With `--order`, the event is
//! about that order (its session, PaymentIntent, amount and currency, read from the database), so
//! the app moves it as Stripe's event would. Any other type is sent about a made-up object: the
//! app keeps it and answers 200, as it does for every type it does not act on.
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use super::signature;
use crate::billing::orders::{HANDLED_TYPES, OrderRow};

/// What an event about an order needs of it (read with `orders::find`, the orders room's).
#[derive(Debug, Clone)]
pub struct OrderFacts {
    pub id: Uuid,
    pub stripe_checkout_session_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub amount_total: i64,
    pub currency: String,
}

impl From<&OrderRow> for OrderFacts {
    fn from(order: &OrderRow) -> Self {
        Self {
            id: order.id,
            stripe_checkout_session_id: order.stripe_checkout_session_id.clone(),
            stripe_payment_intent_id: order.stripe_payment_intent_id.clone(),
            amount_total: order.amount_total,
            currency: order.currency.clone(),
        }
    }
}

impl OrderFacts {
    fn session_id(&self) -> String {
        let made_up = || format!("cs_trigger_{}", self.id.simple());
        self.stripe_checkout_session_id
            .clone()
            .unwrap_or_else(made_up)
    }

    fn payment_intent(&self) -> String {
        let made_up = || format!("pi_trigger_{}", self.id.simple());
        self.stripe_payment_intent_id
            .clone()
            .unwrap_or_else(made_up)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TriggerError {
    #[error("{0} is about an order: pass --order ID")]
    NeedsOrder(String),
    #[error("{0:?} is not a Stripe event type (such as checkout.session.completed)")]
    NotAType(String),
}

/// The event Stripe would send of `event_type`, about `order` when given.
pub fn event(event_type: &str, order: Option<&OrderFacts>) -> Result<Value, TriggerError> {
    let well_formed = event_type.split('.').count() >= 2
        && event_type.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
    if !well_formed {
        return Err(TriggerError::NotAType(event_type.to_owned()));
    }
    let object = match (HANDLED_TYPES.contains(&event_type), order) {
        (true, Some(order)) => about_order(event_type, order),
        (true, None) => return Err(TriggerError::NeedsOrder(event_type.to_owned())),
        (false, _) => {
            let kind = event_type
                .rsplit_once('.')
                .map_or(event_type, |(kind, _)| kind);
            json!({"id": format!("{}_trigger_{}", prefix(kind), Uuid::now_v7().simple()), "object": kind})
        }
    };
    Ok(json!({
        "id": format!("evt_trigger_{}", Uuid::now_v7().simple()),
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": event_type,
        "data": {"object": object},
    }))
}

/// The object of an order event, as Stripe's would be.
fn about_order(event_type: &str, order: &OrderFacts) -> Value {
    let metadata = json!({"order_id": order.id.to_string()});
    let (amount, currency, intent) = (order.amount_total, &order.currency, order.payment_intent());
    match event_type {
        "payment_intent.payment_failed" => json!({
            "id": intent, "object": "payment_intent", "status": "requires_payment_method",
            "amount": amount, "currency": currency, "metadata": metadata,
            "last_payment_error": {"type": "card_error", "code": "card_declined",
                                   "message": "Your card was declined."},
        }),
        "charge.refunded" => json!({
            "id": format!("ch_trigger_{}", order.id.simple()), "object": "charge",
            "amount": amount, "amount_refunded": amount, "refunded": true, "currency": currency,
            "payment_intent": intent, "metadata": metadata,
        }),
        "charge.dispute.created" => json!({
            "id": format!("dp_trigger_{}", order.id.simple()), "object": "dispute",
            "amount": amount, "charge": format!("ch_trigger_{}", order.id.simple()),
            "payment_intent": intent, "reason": "fraudulent", "status": "needs_response",
            "currency": currency, "metadata": {},
        }),
        // The checkout.session.* events.
        session_event => {
            let (status, payment_status) = match session_event {
                "checkout.session.expired" => ("expired", "unpaid"),
                "checkout.session.async_payment_failed" => ("complete", "unpaid"),
                _ => ("complete", "paid"),
            };
            json!({
                "id": order.session_id(), "object": "checkout.session", "mode": "payment",
                "status": status, "payment_status": payment_status,
                "amount_total": amount, "currency": currency,
                "client_reference_id": order.id.to_string(), "metadata": metadata,
                "payment_intent": (status == "complete").then_some(intent),
            })
        }
    }
}

/// Stripe's id prefix for an object kind (`charge` → `ch`); the kind itself otherwise.
fn prefix(kind: &str) -> &str {
    match kind {
        "charge" => "ch",
        "customer" => "cus",
        "invoice" => "in",
        "payment_intent" => "pi",
        "checkout.session" => "cs",
        "customer.subscription" => "sub",
        other => other,
    }
}

/// What the endpoint answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// POSTs `event` to `url`, signed with `secret` as Stripe signs.
pub async fn send(url: &str, secret: &[u8], event: &Value) -> anyhow::Result<Answer> {
    let payload = event.to_string();
    let header = signature::sign(payload.as_bytes(), secret, Utc::now().timestamp());
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(payload)
        .send()
        .await?;
    let status = answer.status().as_u16();
    Ok(Answer {
        status,
        body: answer.text().await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::{
        orders::{self, Interpretation, OrderEvent},
        stripe::Envelope,
    };

    fn order() -> OrderFacts {
        OrderFacts {
            id: Uuid::from_u128(7),
            stripe_checkout_session_id: Some("cs_test_0001".into()),
            stripe_payment_intent_id: None,
            amount_total: 4900,
            currency: "usd".into(),
        }
    }

    fn interpreted(event_type: &str) -> Interpretation {
        let event = event(event_type, Some(&order())).unwrap();
        let envelope: Envelope = serde_json::from_value(event).unwrap();
        orders::interpret(&envelope).expect("an event billing acts on")
    }

    #[test]
    fn every_order_event_is_about_the_order_as_billing_reads_it() {
        for event_type in HANDLED_TYPES {
            let found = interpreted(event_type);
            let session = found.session.as_ref().map(|s| s.id.as_str());
            let linked = found.order_id == Some(order().id)
                || found.payment_intent.as_deref() == Some(order().payment_intent().as_str());
            assert!(
                linked,
                "{event_type} names neither the order nor its payment"
            );
            if event_type.starts_with("checkout.session.") {
                assert_eq!(session, Some("cs_test_0001"), "{event_type}");
            }
        }
        assert_eq!(
            interpreted("checkout.session.completed").event,
            OrderEvent::CheckoutCompleted { paid: true }
        );
        assert_eq!(
            interpreted("charge.refunded").event,
            OrderEvent::Refunded { full: true }
        );
    }

    #[test]
    fn order_events_need_an_order_and_types_must_look_like_types() {
        assert_eq!(
            event("charge.refunded", None),
            Err(TriggerError::NeedsOrder("charge.refunded".into()))
        );
        for bad in [
            "refund",
            "Charge.Refunded",
            "charge..refunded",
            "charge.refunded;",
        ] {
            assert_eq!(
                event(bad, None),
                Err(TriggerError::NotAType(bad.into())),
                "{bad}"
            );
        }
        let other = event("customer.created", None).unwrap();
        assert_eq!(other["data"]["object"]["object"], "customer");
        assert!(
            other["data"]["object"]["id"]
                .as_str()
                .unwrap()
                .starts_with("cus_trigger_")
        );
    }
}
