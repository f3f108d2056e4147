//! Stripe's API as far as the app calls it: Checkout Sessions, the Events API, and (in
//! `subscriptions`) customers, subscriptions, invoices, portal sessions and meter events.
use std::{collections::HashMap, sync::Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::{
    Recorded, Reply, State,
    objects::{checkout_session, payment_intent},
    subscriptions,
};

pub(crate) async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let hold = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            idempotency_key: key.clone(),
            form: form.clone(),
        });
        state.hold.clone()
    };
    if let Some(gate) = hold {
        // Closed by `release`: the wait ends with an error, which is the signal to go on.
        let _ = gate.acquire().await;
    }
    let mut state = state.lock().unwrap();
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_"));
    if !authorized {
        return reply(
            401,
            error("invalid_request_error", "Invalid API Key provided"),
        );
    }
    if let Some(rate) = &mut state.rate {
        if rate.window.elapsed() >= std::time::Duration::from_secs(1) {
            rate.window = std::time::Instant::now();
            rate.count = 0;
        }
        rate.count += 1;
        if rate.count > rate.per_second {
            state.rate_limited += 1;
            return reply(
                429,
                error(
                    "invalid_request_error",
                    "Too many requests hit the API too quickly.",
                ),
            );
        }
    }
    // Stripe compares a repeated key's request with the first: the same one gets the first answer,
    // another one an `idempotency_error` (and is not carried out).
    let fingerprint = (
        req.method().to_string(),
        req.path().to_owned(),
        sorted(&form),
    );
    if let Some(first) = key.as_ref().and_then(|k| state.replies.get(k)) {
        if first.request != fingerprint {
            let key = key.as_deref().unwrap_or_default();
            return reply(
                400,
                error(
                    "idempotency_error",
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{key}' if you \
                         meant to execute a different request."
                    ),
                ),
            );
        }
        return reply(first.status, first.body.clone());
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return reply(
            500,
            error("api_error", "Something went wrong on Stripe's end"),
        );
    }
    let (status, body) = match (req.method().as_str(), req.path()) {
        ("POST", "/v1/checkout/sessions") => {
            let n = state.sessions.len() + 1;
            let session = checkout_session(&format!("cs_test_{n:04}"), &form, &state.base_url);
            state.sessions.push(session.clone());
            state
                .session_forms
                .insert(format!("cs_test_{n:04}"), form.clone());
            (200, session)
        }
        ("POST", path)
            if path.starts_with("/v1/checkout/sessions/") && path.ends_with("/expire") =>
        {
            let id = path
                .trim_start_matches("/v1/checkout/sessions/")
                .trim_end_matches("/expire");
            match state.sessions.iter_mut().find(|s| s["id"] == id) {
                Some(session) if session["status"] == "open" => {
                    session["status"] = json!("expired");
                    session["url"] = Value::Null;
                    (200, session.clone())
                }
                Some(_) => (
                    400,
                    error(
                        "invalid_request_error",
                        "Only Checkout Sessions with a status in [\"open\"] can be expired.",
                    ),
                ),
                None => (
                    404,
                    error(
                        "invalid_request_error",
                        &format!("No such checkout.session: '{id}'"),
                    ),
                ),
            }
        }
        ("GET", "/v1/events") => (200, list_events(&state.events, req.query_string())),
        ("GET", path) if path.starts_with("/v1/checkout/sessions/") => {
            let id = path.trim_start_matches("/v1/checkout/sessions/");
            let expand = url::form_urlencoded::parse(req.query_string().as_bytes())
                .any(|(k, v)| k.starts_with("expand") && v == "payment_intent");
            match state.sessions.iter().find(|s| s["id"] == id) {
                Some(session) if expand => (200, with_payment_intent(session, &state)),
                Some(session) => (200, session.clone()),
                None => (
                    404,
                    error(
                        "invalid_request_error",
                        &format!("No such checkout.session: '{id}'"),
                    ),
                ),
            }
        }
        (method, path) => match subscriptions::handle(&mut state, method, path, &form) {
            Some(answer) => answer,
            None => (
                404,
                error(
                    "invalid_request_error",
                    &format!("Unrecognized request URL ({})", req.path()),
                ),
            ),
        },
    };
    if let Some(key) = key {
        let first = Reply {
            request: fingerprint,
            status,
            body: body.clone(),
        };
        state.replies.insert(key, first);
    }
    reply(status, body)
}

/// A page of `GET /v1/events`: newest first, `created[gte]`, `limit` (1..=100, default 10) and the
/// `starting_after` cursor, as Stripe pages.
fn list_events(events: &[Value], query: &str) -> Value {
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let since: i64 = param("created[gte]")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = param("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let mut newest_first: Vec<&Value> = events
        .iter()
        .filter(|e| e["created"].as_i64().unwrap_or(0) >= since)
        .collect();
    // Stable: among events of one second, the later published is the newer.
    newest_first.reverse();
    newest_first.sort_by_key(|e| std::cmp::Reverse(e["created"].as_i64().unwrap_or(0)));
    let start = match param("starting_after") {
        Some(cursor) => newest_first
            .iter()
            .position(|e| e["id"] == cursor.as_str())
            .map_or(newest_first.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<&Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .copied()
        .collect();
    json!({
        "object": "list",
        "url": "/v1/events",
        "has_more": start + page.len() < newest_first.len(),
        "data": page,
    })
}

pub(crate) fn reply(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .insert_header(("request-id", "req_fake"))
        .json(body)
}

pub(crate) fn error(kind: &str, message: &str) -> Value {
    json!({"error": {"type": kind, "message": message}})
}

/// `session` with its `payment_intent` id replaced by the complete PaymentIntent object.
fn with_payment_intent(session: &Value, state: &State) -> Value {
    let mut session = session.clone();
    let Some(id) = session["payment_intent"].as_str().map(str::to_owned) else {
        return session;
    };
    let status = state.payment_intents.get(&id).cloned().unwrap_or_else(|| {
        let paid = session["payment_status"] == "paid";
        (if paid { "succeeded" } else { "processing" }).to_owned()
    });
    session["payment_intent"] = payment_intent(&id, &session, &status);
    session
}

/// A form's fields in a stable order: what "the same parameters" compares.
fn sorted(form: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut fields: Vec<_> = form.clone().into_iter().collect();
    fields.sort();
    fields
}
