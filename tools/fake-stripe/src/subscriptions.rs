//! Customers, subscriptions, invoices and portal sessions, as far as the app calls them, and the
//! helpers a test uses to move a subscription as Stripe would (a completed checkout, a renewal, a
//! failed payment) before sending the event.
use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{State, api::error, objects::unix_now};

const MONTH: i64 = 30 * 24 * 3600;

/// Answers the requests of this part of the API; `None` for any other path.
pub(super) fn handle(
    state: &mut State,
    method: &str,
    path: &str,
    form: &HashMap<String, String>,
) -> Option<(u16, Value)> {
    let answer = match (method, path) {
        ("POST", "/v1/customers") => {
            let id = format!("cus_test_{:04}", state.customers.len() + 1);
            let customer = json!({
                "id": id, "object": "customer", "created": unix_now(), "livemode": false,
                "email": form.get("email"), "name": form.get("name"),
                "metadata": metadata(form, "metadata"),
            });
            state.customers.push(customer.clone());
            (200, customer)
        }
        // A billing meter event; Stripe keeps one per identifier (a repeat answers the first).
        ("POST", "/v1/billing/meter_events") => {
            let identifier = form.get("identifier").cloned().unwrap_or_default();
            let known = state
                .meter_events
                .iter()
                .find(|e| !identifier.is_empty() && e["identifier"] == identifier.as_str())
                .cloned();
            let event = known.unwrap_or_else(|| {
                let event = json!({
                    "object": "billing.meter_event", "livemode": false, "created": unix_now(),
                    "event_name": form.get("event_name"), "identifier": identifier,
                    "timestamp": form.get("timestamp").and_then(|t| t.parse::<i64>().ok()),
                    "payload": metadata(form, "payload"),
                });
                state.meter_events.push(event.clone());
                event
            });
            (200, event)
        }
        ("POST", "/v1/billing_portal/sessions") => {
            let n = state.portal_sessions + 1;
            state.portal_sessions = n;
            (
                200,
                json!({
                    "id": format!("bps_test_{n:04}"), "object": "billing_portal.session",
                    "customer": form.get("customer"), "return_url": form.get("return_url"),
                    "url": format!("https://billing.stripe.test/p/session/test_{n:04}"),
                    "livemode": false, "created": unix_now(),
                }),
            )
        }
        // An invoice preview: 100 per seat (the fake prices nothing), in the subscription's
        // currency.
        ("POST", "/v1/invoices/create_preview") => {
            let seats: i64 = form
                .get("subscription_details[items][0][quantity]")
                .and_then(|q| q.parse().ok())
                .unwrap_or(1);
            (
                200,
                json!({
                    "object": "invoice", "amount_due": seats * 100, "currency": "usd",
                    "subscription": form.get("subscription"),
                    "lines": {"object": "list", "data": [{
                        "price": form.get("subscription_details[items][0][price]"),
                        "quantity": seats,
                        "proration": form.get("subscription_details[proration_behavior]")
                            .is_some_and(|p| p != "none"),
                    }]},
                }),
            )
        }
        (_, path) if path.starts_with("/v1/subscriptions/") => {
            let id = path.trim_start_matches("/v1/subscriptions/");
            let Some(sub) = state.subscriptions.iter_mut().find(|s| s["id"] == id) else {
                return Some((
                    404,
                    error(
                        "invalid_request_error",
                        &format!("No such subscription: '{id}'"),
                    ),
                ));
            };
            match method {
                "GET" => (200, sub.clone()),
                "DELETE" => {
                    end(sub);
                    (200, sub.clone())
                }
                _ => {
                    update(sub, form);
                    (200, sub.clone())
                }
            }
        }
        _ => return None,
    };
    Some(answer)
}

/// `metadata[key]=value` pairs of a form under `prefix`, as an object.
pub(super) fn metadata(form: &HashMap<String, String>, prefix: &str) -> Value {
    let start = format!("{prefix}[");
    let entries: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(&start)?.strip_suffix(']')?;
            (!key.contains('[')).then(|| (key.to_owned(), json!(v)))
        })
        .collect();
    Value::Object(entries)
}

fn update(sub: &mut Value, form: &HashMap<String, String>) {
    if let Some(cancel) = form.get("cancel_at_period_end") {
        let cancel = cancel == "true";
        sub["cancel_at_period_end"] = json!(cancel);
        sub["cancel_at"] = if cancel {
            sub["items"]["data"][0]["current_period_end"].clone()
        } else {
            Value::Null
        };
    }
    if let Some(price) = form.get("items[0][price]") {
        sub["items"]["data"][0]["price"] = price_object(price);
    }
    if let Some(quantity) = form.get("items[0][quantity]") {
        let quantity: i64 = quantity.parse().unwrap_or(1);
        sub["items"]["data"][0]["quantity"] = json!(quantity);
        sub["quantity"] = json!(quantity);
    }
}

fn end(sub: &mut Value) {
    let now = unix_now();
    sub["status"] = json!("canceled");
    sub["canceled_at"] = json!(now);
    sub["ended_at"] = json!(now);
}

fn price_object(id: &str) -> Value {
    let interval = if id.ends_with("year") {
        "year"
    } else {
        "month"
    };
    json!({"id": id, "object": "price", "recurring": {"interval": interval}, "currency": "usd"})
}

/// A new subscription, as Stripe makes one when a subscription-mode session completes.
pub(super) fn subscription(
    id: &str,
    session: &Value,
    form: &HashMap<String, String>,
    status: &str,
) -> Value {
    let now = unix_now();
    let quantity: i64 = form
        .get("line_items[0][quantity]")
        .and_then(|q| q.parse().ok())
        .unwrap_or(1);
    let price = form
        .get("line_items[0][price]")
        .cloned()
        .unwrap_or_default();
    let trial_end = form
        .get("subscription_data[trial_period_days]")
        .and_then(|d| d.parse::<i64>().ok())
        .filter(|_| status == "trialing")
        .map(|days| now + days * 24 * 3600);
    let period_end = trial_end.unwrap_or(now + MONTH);
    json!({
        "id": id, "object": "subscription", "created": now, "livemode": false,
        "customer": session["customer"], "status": status,
        "items": {"object": "list", "data": [{
            "id": format!("si_{}", id.trim_start_matches("sub_")), "object": "subscription_item",
            "price": price_object(&price), "quantity": quantity,
            "current_period_start": now, "current_period_end": period_end,
        }]},
        "quantity": quantity,
        "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null, "ended_at": null,
        "trial_end": trial_end, "latest_invoice": format!("in_{}_0001", id.trim_start_matches("sub_")),
        "metadata": metadata(form, "subscription_data[metadata]"),
    })
}

/// An invoice of subscription `sub` (for `invoice.*` events): its period ends at `period_end`.
pub fn invoice(sub: &Value, id: &str, amount: i64, period_end: i64, attempt: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": sub["customer"], "currency": "usd",
        "amount_due": amount, "amount_paid": amount, "attempt_count": attempt,
        "next_payment_attempt": null,
        "hosted_invoice_url": format!("https://invoice.stripe.test/{id}"),
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": sub["id"]}},
        "lines": {"object": "list", "data": [{"period": {"start": period_end - MONTH, "end": period_end}}]},
    })
}

/// Moves `sub` to its next period (a renewal) and names `invoice` as its latest invoice.
pub fn renew(sub: &mut Value, invoice: &str) {
    let item = &mut sub["items"]["data"][0];
    let end = item["current_period_end"].as_i64().unwrap_or_else(unix_now);
    item["current_period_start"] = json!(end);
    item["current_period_end"] = json!(end + MONTH);
    sub["latest_invoice"] = json!(invoice);
}
