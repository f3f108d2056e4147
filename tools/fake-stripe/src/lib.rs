//! The one fake of Stripe's API in this workspace: the integration tests (`tests/api`, where
//! `support::billing` wires it into the app), `just bench` (every server it starts points `STRIPE_API_BASE` here, so
//! none ever talks to api.stripe.com) and, later, the local development loop all use it. It is a
//! test tool and never ships: the release image builds only the `ironclad` package, which has it as
//! a dev-dependency alone.
//!
//! [`FakeStripe::start`] serves it on a free loopback port; its [`FakeStripe::url`] goes into the
//! app's `STRIPE_API_BASE`. It records every request with its `Idempotency-Key`, answers Checkout
//! Session creation with complete objects (async-stripe parses strictly), and honours idempotency
//! keys as Stripe does: the same key returns the same response. Sessions can be expired
//! (`POST .../expire`: only an `open` one, as Stripe). It can be told to fail the next requests,
//! like an outage, or to hold requests (recorded, unanswered) until released, like a slow network.
//! A session's PaymentIntent can be expanded (`expand[]=payment_intent`), with a status a test
//! sets.
//!
//! The free functions build the Stripe objects a test sends back as webhook events: [`event`],
//! [`completed`], [`refunded_charge`], [`dispute`]; [`signature_header`] signs a delivery as
//! Stripe does.
use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

mod subscriptions;
pub use subscriptions::{invoice, renew};

/// A request the fake received, as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub form: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// Idempotency key → the response first given for it.
    replies: HashMap<String, (u16, Value)>,
    sessions: Vec<Value>,
    /// PaymentIntent id → the status a test gave it (see [`FakeStripe::set_payment_intent_status`]).
    payment_intents: HashMap<String, String>,
    fail_next: usize,
    /// Events as the Events API lists them (see [`FakeStripe::publish_event`]).
    events: Vec<Value>,
    /// While set, each request is recorded and then waits for this gate to close before answering.
    hold: Option<Arc<Semaphore>>,
    /// Session id → the form it was created from (a subscription is made from it).
    session_forms: HashMap<String, HashMap<String, String>>,
    customers: Vec<Value>,
    subscriptions: Vec<Value>,
    portal_sessions: usize,
    /// Billing meter events, one per identifier.
    meter_events: Vec<Value>,
    /// Requests per second answered before 429s (see [`FakeStripe::rate_limit`]).
    rate: Option<RateLimit>,
    rate_limited: usize,
}

struct RateLimit {
    per_second: u32,
    window: std::time::Instant,
    count: u32,
}

/// A running fake; dropping it stops the server.
pub struct FakeStripe {
    /// Its base URL, `http://127.0.0.1:PORT/`: the app's `STRIPE_API_BASE`.
    pub url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl FakeStripe {
    /// Serves a fresh fake (no sessions, nothing recorded) on a free loopback port. Call it inside
    /// a Tokio runtime: the server runs as a task on it.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url, state, handle }
    }

    /// Every request received so far, in order (held ones included).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Checkout Sessions actually created (idempotent replays not counted).
    pub fn sessions(&self) -> Vec<Value> {
        self.state.lock().unwrap().sessions.clone()
    }

    /// Changes a session as Stripe would once the customer pays or it expires; later retrievals
    /// (`GET /v1/checkout/sessions/{id}`) see the change. Returns the updated session.
    pub fn update_session(&self, id: &str, edit: impl FnOnce(&mut Value)) -> Value {
        let mut state = self.state.lock().unwrap();
        let session = state
            .sessions
            .iter_mut()
            .find(|s| s["id"] == id)
            .expect("a session the fake created");
        edit(session);
        session.clone()
    }

    /// Sets the status of the session's PaymentIntent (`processing`, `succeeded`,
    /// `requires_payment_method`...), as Stripe does once a delayed payment settles. The session must
    /// have one (see [`completed`]). Until set, it is `succeeded` for a paid session and `processing`
    /// otherwise.
    pub fn set_payment_intent_status(&self, session_id: &str, status: &str) {
        let mut state = self.state.lock().unwrap();
        let session = state
            .sessions
            .iter()
            .find(|s| s["id"] == session_id)
            .expect("a session the fake created");
        let id = session["payment_intent"]
            .as_str()
            .expect("the session has a PaymentIntent")
            .to_owned();
        state.payment_intents.insert(id, status.to_owned());
    }

    /// The `POST /v1/checkout/sessions/{id}/expire` requests received for session `id`.
    pub fn expire_calls(&self, id: &str) -> usize {
        let path = format!("/v1/checkout/sessions/{id}/expire");
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .count()
    }

    /// The next `n` requests fail with a 500, and are not remembered under their key (the request
    /// "never reached" Stripe's processing), as in an outage.
    /// Keeps `event` where `GET /v1/events` lists it, as Stripe keeps every event for 30 days.
    pub fn publish_event(&self, event: Value) {
        self.state.lock().unwrap().events.push(event);
    }

    /// Answers at most `per_second` requests a second and 429 to the rest (as Stripe's rate
    /// limiter does); `None` lifts the limit.
    pub fn rate_limit(&self, per_second: Option<u32>) {
        self.state.lock().unwrap().rate = per_second.map(|per_second| RateLimit {
            per_second,
            window: std::time::Instant::now(),
            count: 0,
        });
    }

    /// How many requests were answered 429.
    pub fn rate_limited(&self) -> usize {
        self.state.lock().unwrap().rate_limited
    }

    /// The billing meter events received, one per identifier.
    pub fn meter_events(&self) -> Vec<Value> {
        self.state.lock().unwrap().meter_events.clone()
    }

    pub fn customers(&self) -> Vec<Value> {
        self.state.lock().unwrap().customers.clone()
    }

    pub fn subscriptions(&self) -> Vec<Value> {
        self.state.lock().unwrap().subscriptions.clone()
    }

    /// Keeps `subscription` as if Stripe had made it (for load tests that set up thousands).
    pub fn insert_subscription(&self, subscription: Value) {
        self.state.lock().unwrap().subscriptions.push(subscription);
    }

    /// The subscription as Stripe has it now.
    pub fn subscription(&self, id: &str) -> Value {
        let state = self.state.lock().unwrap();
        let sub = state.subscriptions.iter().find(|s| s["id"] == id);
        sub.expect("a subscription the fake made").clone()
    }

    /// Changes a subscription as Stripe would (a renewal, a failed payment, a cancellation);
    /// later reads see it. Returns it.
    pub fn update_subscription(&self, id: &str, edit: impl FnOnce(&mut Value)) -> Value {
        let mut state = self.state.lock().unwrap();
        let sub = state.subscriptions.iter_mut().find(|s| s["id"] == id);
        let sub = sub.expect("a subscription the fake made");
        edit(sub);
        sub.clone()
    }

    /// The customer pays a subscription-mode session: the session completes and its subscription
    /// is made with `status` (`trialing` keeps the trial the session asked for). Returns the
    /// completed session (for `checkout.session.completed`) and the subscription.
    pub fn complete_subscription_checkout(&self, session_id: &str, status: &str) -> (Value, Value) {
        let mut state = self.state.lock().unwrap();
        let form = state
            .session_forms
            .get(session_id)
            .cloned()
            .expect("a session the fake created");
        let id = format!("sub_test_{:04}", state.subscriptions.len() + 1);
        let session = state
            .sessions
            .iter_mut()
            .find(|s| s["id"] == session_id)
            .expect("a session the fake created");
        session["status"] = json!("complete");
        session["payment_status"] = json!(if status == "trialing" {
            "no_payment_required"
        } else {
            "paid"
        });
        session["subscription"] = json!(id);
        session["url"] = Value::Null;
        let session = session.clone();
        let sub = subscriptions::subscription(&id, &session, &form, status);
        state.subscriptions.push(sub.clone());
        (session, sub)
    }

    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Requests from now on are recorded at once but not answered until [`FakeStripe::release`].
    pub fn hold(&self) {
        self.state.lock().unwrap().hold = Some(Arc::new(Semaphore::new(0)));
    }

    /// Answers the held requests, and the next ones without waiting.
    pub fn release(&self) {
        if let Some(gate) = self.state.lock().unwrap().hold.take() {
            gate.close();
        }
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

async fn handle(
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
    if let Some((status, body)) = key.as_ref().and_then(|k| state.replies.get(k)) {
        return reply(*status, body.clone());
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
            let session = checkout_session(&format!("cs_test_{n:04}"), &form);
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
        state.replies.insert(key, (status, body.clone()));
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

fn reply(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .insert_header(("request-id", "req_fake"))
        .json(body)
}

fn error(kind: &str, message: &str) -> Value {
    json!({"error": {"type": kind, "message": message}})
}

/// A complete `checkout.session` object built from the creation form, as Stripe would return it.
pub fn checkout_session(id: &str, form: &HashMap<String, String>) -> Value {
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
        "metadata": subscriptions::metadata(form, "metadata"),
        "customer": get("customer"),
        "subscription": null,
        "payment_intent": null,
        "success_url": get("success_url"),
        "cancel_url": get("cancel_url"),
        "url": format!("https://checkout.stripe.test/c/pay/{id}"),
    })
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
    let amount = session["amount_total"].clone();
    session["payment_intent"] = json!({
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
    });
    session
}

/// Now, in seconds since the epoch (Stripe's timestamps).
fn unix_now() -> i64 {
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
