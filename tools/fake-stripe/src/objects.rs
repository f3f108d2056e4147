//! Stripe's objects as the fake builds them: Checkout Sessions, PaymentIntents, events, charges and
//! disputes, and the `Stripe-Signature` of a delivery.
use std::{
    collections::HashMap,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::subscriptions::metadata;

/// A complete `checkout.session` object built from the creation form, as Stripe would return it;
/// its `url` is the hosted page the fake serves at `base_url`.
pub fn checkout_session(id: &str, form: &HashMap<String, String>, base_url: &str) -> Value {
    let get = |k: &str| form.get(k).cloned();
    let mut amount_total = 0i64;
    for i in 0.. {
        let Some(unit) = get(&format!("line_items[{i}][price_data][unit_amount]")) else {
            break;
        };
        let quantity: i64 =
            get(&format!("line_items[{i}][quantity]")).map_or(1, |q| q.parse().unwrap());
        amount_total += unit.parse::<i64>().unwrap() * quantity;
    }
    let currency = get("line_items[0][price_data][currency]");
    let now = unix_now();
    json!({
        "id": id,
        "object": "checkout.session",
        "created": now,
        "expires_at": now + 24 * 3600,
        "livemode": false,
        "mode": get("mode").unwrap_or_else(|| "payment".into()),
        "status": "open",
        "payment_status": "unpaid",
        "payment_method_types": ["card"],
        "automatic_tax": {"enabled": false, "liability": null, "status": null},
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "shipping_options": [],
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "currency": currency,
        "client_reference_id": get("client_reference_id"),
        "customer_email": get("customer_email"),
        "metadata": metadata(form, "metadata"),
        "customer": get("customer"),
        "subscription": null,
        "payment_intent": null,
        "success_url": get("success_url"),
        "cancel_url": get("cancel_url"),
        "url": format!("{base_url}checkout/{id}"),
    })
}

/// The PaymentIntent `id` of `session` with `status`: its amount, currency and the metadata the
/// session was created with for it (`payment_intent_data[metadata]`, else the session's).
pub fn payment_intent(id: &str, session: &Value, status: &str) -> Value {
    let amount = session["amount_total"].clone();
    json!({
        "id": id,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": if status == "succeeded" { amount } else { json!(0) },
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "created": session["created"],
        "currency": session["currency"],
        "livemode": false,
        "metadata": session["metadata"],
        "payment_method_types": session["payment_method_types"],
    })
}

/// Now, in seconds since the epoch (Stripe's timestamps).
pub(crate) fn unix_now() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    since_epoch.as_secs() as i64
}

/// A Stripe event envelope around `object`.
pub fn event(id: &str, event_type: &str, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": unix_now(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": event_type,
        "data": {"object": object},
    })
}

/// The session as it looks once the customer paid (or, with `paid = false`, completed with a delayed
/// payment method).
pub fn completed(session: &Value, payment_intent: &str, paid: bool) -> Value {
    let mut session = session.clone();
    session["status"] = json!("complete");
    session["payment_status"] = json!(if paid { "paid" } else { "unpaid" });
    session["payment_intent"] = json!(payment_intent);
    session
}

/// A charge (for `charge.refunded`), fully refunded when `full`.
pub fn refunded_charge(
    payment_intent: &str,
    order_id: Option<&str>,
    amount: i64,
    full: bool,
) -> Value {
    json!({
        "id": format!("ch_for_{payment_intent}"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": if full { amount } else { amount / 2 },
        "refunded": full,
        "currency": "usd",
        "payment_intent": payment_intent,
        "metadata": order_id.map_or(json!({}), |id| json!({"order_id": id})),
    })
}

pub fn dispute(payment_intent: &str, amount: i64) -> Value {
    json!({
        "id": format!("dp_for_{payment_intent}"),
        "object": "dispute",
        "amount": amount,
        "charge": format!("ch_for_{payment_intent}"),
        "payment_intent": payment_intent,
        "reason": "fraudulent",
        "status": "needs_response",
        "metadata": {},
    })
}

/// The `Stripe-Signature` header Stripe sends with `payload`: `t=<timestamp>,v1=<HMAC-SHA256 of
/// "<timestamp>.<payload>" keyed with the endpoint's secret>`.
pub fn signature_header(payload: &[u8], secret: &str, timestamp: i64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}
