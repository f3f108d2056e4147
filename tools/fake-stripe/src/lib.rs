//! The one fake of Stripe's API in this workspace: the integration tests (`tests/api`, where
//! `support::billing` wires it into the app), `just bench` (every server it starts points
//! `STRIPE_API_BASE` here, so none ever talks to api.stripe.com) and the local development loop
//! (the `fake-stripe` binary `just dev` starts when no real key is set) all use it. It never ships:
//! the release image builds only the `ironclad` package, which has it as a dev-dependency alone.
//!
//! [`FakeStripe::start`] serves it on a free loopback port; its [`FakeStripe::url`] goes into the
//! app's `STRIPE_API_BASE`. It records every request with its `Idempotency-Key`, answers with
//! complete objects (async-stripe parses strictly), and honours idempotency keys as Stripe does: the
//! same key with the same parameters gets the first answer, with other parameters an
//! `idempotency_error` (`api`). It can be told to fail the next requests, like an outage, to hold
//! requests until released, like a slow network, or to answer 429 above a rate.
//!
//! A Checkout Session's `url` is a page it serves (`hosted`): its buttons pay, pay with a delayed
//! method, decline or abandon, and send the events Stripe would, signed, to the webhook set with
//! [`FakeStripe::deliver_to`], with Stripe's retries (and, with chaos, duplicates and reordering:
//! `delivery`). `/deliveries` lists them with the app's answers.
//!
//! The free functions build the Stripe objects a test sends back as webhook events: [`event`],
//! [`completed`], [`refunded_charge`], [`dispute`]; [`signature_header`] signs a delivery as
//! Stripe does.
use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpServer, dev::ServerHandle, web};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

mod api;
mod delivery;
mod hosted;
mod objects;
mod subscriptions;

pub use delivery::{Attempt, Delivery, Policy, Webhook};
pub use objects::{completed, dispute, event, payment_intent, refunded_charge, signature_header};
pub use subscriptions::{invoice, renew};

/// A request the fake received, as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub form: HashMap<String, String>,
}

/// The first answer given for an idempotency key, and the request it answered.
struct Reply {
    request: (String, String, Vec<(String, String)>),
    status: u16,
    body: Value,
}

#[derive(Default)]
struct State {
    /// What the hosted pages' URLs start with (the fake's own base URL).
    base_url: String,
    requests: Vec<Recorded>,
    /// Idempotency key → the response first given for it.
    replies: HashMap<String, Reply>,
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
    /// Where events are delivered (see [`FakeStripe::deliver_to`]), and the log of deliveries.
    webhook: Option<Webhook>,
    outbox: Option<delivery::Outbox>,
    chaos: bool,
    deliveries: Vec<Delivery>,
    /// How long a delayed payment method takes to settle on the hosted page.
    settle_after: Duration,
}

impl State {
    /// Makes an event about `object`, keeps it for the Events API and delivers it.
    fn emit(&mut self, event_type: &str, object: Value) -> Value {
        let id = format!("evt_test_{:06}", self.events.len() + 1);
        let event = objects::event(&id, event_type, object);
        self.events.push(event.clone());
        if let Some(outbox) = &self.outbox {
            outbox.send(event.clone());
        }
        event
    }

    /// Stores a changed session (found by its id).
    fn replace_session(&mut self, session: Value) {
        if let Some(kept) = self.sessions.iter_mut().find(|s| s["id"] == session["id"]) {
            *kept = session;
        }
    }

    /// A subscription-mode session paid: it completes and its subscription is made with `status`.
    fn complete_subscription(&mut self, session_id: &str, status: &str) -> (Value, Value) {
        let form = self
            .session_forms
            .get(session_id)
            .cloned()
            .expect("a session the fake created");
        let id = format!("sub_test_{:04}", self.subscriptions.len() + 1);
        let session = self
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
        self.subscriptions.push(sub.clone());
        (session, sub)
    }
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
        Self::serve(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Serves a fresh fake on `listener` (the `fake-stripe` binary's port).
    pub fn serve(listener: TcpListener) -> Self {
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            base_url: url.clone(),
            settle_after: Duration::from_secs(5),
            ..State::default()
        }));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .configure(hosted::routes)
                .default_service(web::to(api::handle))
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

    /// From now on every event the fake makes (the hosted pages' buttons, [`FakeStripe::emit`])
    /// is delivered to `webhook` as `policy` says. Call inside a Tokio runtime.
    pub fn deliver_to(&self, webhook: Webhook, policy: Policy) {
        let outbox = delivery::start(self.state.clone(), webhook.clone(), policy.clone());
        let mut state = self.state.lock().unwrap();
        state.webhook = Some(webhook);
        state.chaos = policy.chaos;
        state.outbox = Some(outbox);
    }

    /// How long a delayed payment method takes to settle (default 5 s).
    pub fn settle_after(&self, delay: Duration) {
        self.state.lock().unwrap().settle_after = delay;
    }

    /// Makes an event of `event_type` about `object` as Stripe would: listed by the Events API and
    /// delivered to the webhook, if one is set. Returns the event.
    pub fn emit(&self, event_type: &str, object: Value) -> Value {
        self.state.lock().unwrap().emit(event_type, object)
    }

    /// Every webhook delivery so far, oldest first, with its attempts.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().deliveries.clone()
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
        self.state
            .lock()
            .unwrap()
            .complete_subscription(session_id, status)
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
