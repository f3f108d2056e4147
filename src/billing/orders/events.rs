//! Stripe events as orders understand them: which [`OrderEvent`] an event (its envelope comes from
//! the Stripe room) means for which order. Pure, so the mapping is unit-tested without HTTP or a
//! database.
use serde_json::Value;
use uuid::Uuid;

use super::state::OrderEvent;
use crate::billing::stripe::Envelope;

/// What an event says about one of our orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpretation {
    pub event: OrderEvent,
    /// Our order id, from the object's `metadata.order_id` or the session's `client_reference_id`.
    pub order_id: Option<Uuid>,
    /// The PaymentIntent involved: links charge and dispute events (which carry no order id) back to
    /// the order whose session created it.
    pub payment_intent: Option<String>,
    /// For Checkout Session events: the session, its total and currency (checked against the order).
    pub session: Option<SessionFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    pub id: String,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
}

/// The types we act on. Anything else is stored and answered 200 (Stripe only sends what the
/// endpoint subscribes to; an extra one is not an error).
pub const HANDLED_TYPES: [&str; 7] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.dispute.created",
];

/// `None` for an event type we do not handle.
pub fn interpret(envelope: &Envelope) -> Option<Interpretation> {
    interpret_object(&envelope.event_type, &envelope.data.object)
}

/// What a Checkout Session fetched from Stripe says, as the event a webhook would have carried:
/// `complete` → `checkout.session.completed`, `expired` → `checkout.session.expired`. `None` while
/// the session is still open (the customer may yet pay). Reconciliation uses this, so an order whose
/// webhook never came moves exactly as the webhook would have moved it.
pub fn interpret_session(session: &Value) -> Option<Interpretation> {
    let event_type = match session["status"].as_str()? {
        "complete" => "checkout.session.completed",
        "expired" => "checkout.session.expired",
        _ => return None,
    };
    interpret_object(event_type, session)
}

/// What a Checkout Session fetched with its PaymentIntent expanded says about a delayed payment
/// (SEPA, ACH), as the event that would have closed it: `succeeded` →
/// `checkout.session.async_payment_succeeded`; `requires_payment_method` (the debit bounced, the
/// customer may pay again) or `canceled` → `checkout.session.async_payment_failed`. `None` while the
/// money is `processing`, and for any other status: only those two events move a
/// `payment_processing` order, so nothing short of them is guessed at.
pub fn interpret_async_payment(session: &Value) -> Option<Interpretation> {
    let event_type = match session["payment_intent"]["status"].as_str()? {
        "succeeded" => "checkout.session.async_payment_succeeded",
        "requires_payment_method" | "canceled" => "checkout.session.async_payment_failed",
        _ => return None,
    };
    interpret_object(event_type, session)
}

/// `None` for an event type we do not handle; `object` is the event's `data.object`.
pub fn interpret_object(event_type: &str, object: &Value) -> Option<Interpretation> {
    let event = match event_type {
        "checkout.session.completed" => OrderEvent::CheckoutCompleted {
            // `no_payment_required` (a 100% discount) is as good as paid.
            paid: matches!(
                object["payment_status"].as_str(),
                Some("paid" | "no_payment_required")
            ),
        },
        "checkout.session.async_payment_succeeded" => OrderEvent::AsyncPaymentSucceeded,
        "checkout.session.async_payment_failed" => OrderEvent::AsyncPaymentFailed,
        "checkout.session.expired" => OrderEvent::SessionExpired,
        "payment_intent.payment_failed" => OrderEvent::PaymentAttemptFailed,
        "charge.refunded" => OrderEvent::Refunded {
            // `refunded` is true only once the whole amount is refunded.
            full: object["refunded"].as_bool().unwrap_or(false),
        },
        "charge.dispute.created" => OrderEvent::DisputeOpened,
        _ => return None,
    };
    let is_session = event_type.starts_with("checkout.session.");
    let order_id = [
        object["metadata"]["order_id"].as_str(),
        is_session
            .then(|| object["client_reference_id"].as_str())
            .flatten(),
    ]
    .into_iter()
    .flatten()
    .find_map(|s| Uuid::parse_str(s).ok());
    let payment_intent = if event_type.starts_with("payment_intent.") {
        object["id"].as_str().map(str::to_owned)
    } else {
        expandable_id(&object["payment_intent"])
    };
    let session = is_session
        .then(|| {
            Some(SessionFacts {
                id: object["id"].as_str()?.to_owned(),
                amount_total: object["amount_total"].as_i64(),
                currency: object["currency"].as_str().map(str::to_ascii_lowercase),
            })
        })
        .flatten();
    Some(Interpretation {
        event,
        order_id,
        payment_intent,
        session,
    })
}

/// An id field Stripe may send as `"pi_123"` or, expanded, as `{"id": "pi_123", ...}`.
fn expandable_id(value: &Value) -> Option<String> {
    value
        .as_str()
        .or_else(|| value["id"].as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(event_type: &str, object: Value) -> Envelope {
        serde_json::from_value(json!({
            "id": "evt_1", "object": "event", "type": event_type, "created": 1_764_000_000,
            "livemode": false, "api_version": "2025-10-29.clover", "data": {"object": object},
            "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null}
        }))
        .unwrap()
    }

    const ORDER: &str = "0193a4c0-1111-7000-8000-000000000001";

    #[test]
    fn checkout_session_events_name_their_order_and_session() {
        let session = |status: &str| {
            json!({"id": "cs_1", "object": "checkout.session", "payment_status": status,
                   "client_reference_id": ORDER, "metadata": {"order_id": ORDER},
                   "payment_intent": "pi_1", "amount_total": 4900, "currency": "usd"})
        };
        let paid = interpret(&envelope("checkout.session.completed", session("paid"))).unwrap();
        assert_eq!(paid.event, OrderEvent::CheckoutCompleted { paid: true });
        assert_eq!(paid.order_id, Some(ORDER.parse().unwrap()));
        assert_eq!(paid.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!(
            paid.session,
            Some(SessionFacts {
                id: "cs_1".into(),
                amount_total: Some(4900),
                currency: Some("usd".into())
            })
        );
        let unpaid = interpret(&envelope("checkout.session.completed", session("unpaid"))).unwrap();
        assert_eq!(unpaid.event, OrderEvent::CheckoutCompleted { paid: false });
        let free = interpret(&envelope(
            "checkout.session.completed",
            session("no_payment_required"),
        ))
        .unwrap();
        assert_eq!(free.event, OrderEvent::CheckoutCompleted { paid: true });
        for (t, e) in [
            (
                "checkout.session.async_payment_succeeded",
                OrderEvent::AsyncPaymentSucceeded,
            ),
            (
                "checkout.session.async_payment_failed",
                OrderEvent::AsyncPaymentFailed,
            ),
            ("checkout.session.expired", OrderEvent::SessionExpired),
        ] {
            assert_eq!(interpret(&envelope(t, session("unpaid"))).unwrap().event, e);
        }
    }

    #[test]
    fn client_reference_id_is_the_fallback_and_garbage_names_no_order() {
        let only_reference = json!({"id": "cs_1", "client_reference_id": ORDER, "metadata": {}});
        let found = interpret(&envelope("checkout.session.expired", only_reference)).unwrap();
        assert_eq!(found.order_id, Some(ORDER.parse().unwrap()));
        let garbage =
            json!({"id": "cs_1", "client_reference_id": "nope", "metadata": {"order_id": 7}});
        let found = interpret(&envelope("checkout.session.expired", garbage)).unwrap();
        assert_eq!(found.order_id, None);
    }

    #[test]
    fn charge_and_payment_intent_events_link_through_the_payment_intent() {
        let full = interpret(&envelope(
            "charge.refunded",
            json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "refunded": true,
                   "amount_refunded": 4900, "metadata": {"order_id": ORDER}}),
        ))
        .unwrap();
        assert_eq!(full.event, OrderEvent::Refunded { full: true });
        assert_eq!(full.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!(full.order_id, Some(ORDER.parse().unwrap()));
        assert_eq!(full.session, None);
        let partial = interpret(&envelope(
            "charge.refunded",
            json!({"id": "ch_1", "payment_intent": {"id": "pi_2"}, "refunded": false}),
        ))
        .unwrap();
        assert_eq!(partial.event, OrderEvent::Refunded { full: false });
        assert_eq!(partial.payment_intent.as_deref(), Some("pi_2"));
        let dispute = interpret(&envelope(
            "charge.dispute.created",
            json!({"id": "dp_1", "object": "dispute", "charge": "ch_1", "payment_intent": "pi_3"}),
        ))
        .unwrap();
        assert_eq!(dispute.event, OrderEvent::DisputeOpened);
        assert_eq!(dispute.payment_intent.as_deref(), Some("pi_3"));
        assert_eq!(dispute.order_id, None);
        let failed = interpret(&envelope(
            "payment_intent.payment_failed",
            json!({"id": "pi_4", "object": "payment_intent", "metadata": {"order_id": ORDER}}),
        ))
        .unwrap();
        assert_eq!(failed.event, OrderEvent::PaymentAttemptFailed);
        assert_eq!(failed.payment_intent.as_deref(), Some("pi_4"));
        assert_eq!(failed.order_id, Some(ORDER.parse().unwrap()));
    }

    #[test]
    fn a_fetched_session_reads_as_the_event_a_webhook_would_carry() {
        let session = |status: &str, payment: &str| {
            json!({"id": "cs_1", "status": status, "payment_status": payment,
                   "metadata": {"order_id": ORDER}, "payment_intent": "pi_1",
                   "amount_total": 4900, "currency": "usd"})
        };
        let paid = interpret_session(&session("complete", "paid")).unwrap();
        assert_eq!(paid.event, OrderEvent::CheckoutCompleted { paid: true });
        assert_eq!(paid.order_id, Some(ORDER.parse().unwrap()));
        assert_eq!(paid.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!(paid.session.unwrap().amount_total, Some(4900));
        let delayed = interpret_session(&session("complete", "unpaid")).unwrap();
        assert_eq!(delayed.event, OrderEvent::CheckoutCompleted { paid: false });
        let expired = interpret_session(&session("expired", "unpaid")).unwrap();
        assert_eq!(expired.event, OrderEvent::SessionExpired);
        assert_eq!(interpret_session(&session("open", "unpaid")), None);
        assert_eq!(interpret_session(&json!({"id": "cs_1"})), None);
    }

    fn delayed_session(payment_intent: Value) -> Value {
        json!({"id": "cs_1", "status": "complete", "payment_status": "unpaid",
               "metadata": {"order_id": ORDER}, "payment_intent": payment_intent,
               "amount_total": 4900, "currency": "usd"})
    }

    fn with_intent(status: &str) -> Value {
        delayed_session(json!({"id": "pi_1", "object": "payment_intent", "status": status}))
    }

    #[test]
    fn a_succeeded_payment_intent_reads_as_async_payment_succeeded() {
        let ok = interpret_async_payment(&with_intent("succeeded")).unwrap();
        assert_eq!(ok.event, OrderEvent::AsyncPaymentSucceeded);
        assert_eq!(ok.order_id, Some(ORDER.parse().unwrap()));
        assert_eq!(ok.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!(
            ok.session,
            Some(SessionFacts {
                id: "cs_1".into(),
                amount_total: Some(4900),
                currency: Some("usd".into())
            })
        );
    }

    #[test]
    fn a_bounced_or_canceled_payment_intent_reads_as_async_payment_failed() {
        for status in ["requires_payment_method", "canceled"] {
            let failed = interpret_async_payment(&with_intent(status)).unwrap();
            assert_eq!(failed.event, OrderEvent::AsyncPaymentFailed, "{status}");
            assert_eq!(failed.payment_intent.as_deref(), Some("pi_1"), "{status}");
        }
    }

    #[test]
    fn a_processing_payment_intent_or_any_other_status_says_nothing_yet() {
        for status in [
            "processing",
            "requires_action",
            "requires_confirmation",
            "requires_capture",
            "a_status_from_a_future_api_version",
        ] {
            assert_eq!(
                interpret_async_payment(&with_intent(status)),
                None,
                "{status}"
            );
        }
    }

    #[test]
    fn a_payment_intent_that_is_not_expanded_says_nothing() {
        assert_eq!(
            interpret_async_payment(&delayed_session(json!("pi_1"))),
            None
        );
        assert_eq!(interpret_async_payment(&delayed_session(Value::Null)), None);
    }

    #[test]
    fn other_types_are_not_handled() {
        assert_eq!(
            interpret(&envelope("customer.created", json!({"id": "cus_1"}))),
            None
        );
        for t in HANDLED_TYPES {
            assert!(interpret(&envelope(t, json!({"id": "x"}))).is_some(), "{t}");
        }
    }
}
