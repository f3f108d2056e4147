//! Webhook deliveries, as Stripe makes them: each event POSTed to the endpoint, signed with its
//! secret (a fresh timestamp per attempt), and retried with exponential backoff until a 2xx or the
//! last attempt. In order one after another, unless `chaos`: then every third event (the first
//! included) is delivered twice and every delivery starts after a random delay, so the endpoint sees
//! duplicates and events out of order — all of which Stripe documents it may do. Which events are
//! duplicated is fixed, not drawn: a chaos run with a few events always has duplicates (drawn at
//! 30 %, twelve events all come once in about one run in seventy: a test that needs duplicates
//! failed so in CI). Every attempt is logged for the deliveries
//! page.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::{
    State,
    objects::{signature_header, unix_now},
};

/// Where events go: the app's webhook URL and the endpoint's signing secret.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

/// How deliveries behave.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Duplicate and reorder deliveries.
    pub chaos: bool,
    /// The wait before the first retry; it doubles per attempt, up to a minute.
    pub retry_base: Duration,
    /// Attempts per delivery before giving up (Stripe keeps trying for three days).
    pub max_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            chaos: false,
            retry_base: Duration::from_secs(1),
            max_attempts: 8,
        }
    }
}

/// One delivery of one event (a chaos duplicate is a second delivery) and its attempts.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the delivery, 2 for a chaos duplicate.
    pub copy: u32,
    pub attempts: Vec<Attempt>,
    /// Answered 2xx.
    pub delivered: bool,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    /// Unix seconds.
    pub at: i64,
    /// The endpoint's status code, or why there was none (refused, timed out).
    pub outcome: Result<u16, String>,
}

/// The queue events are delivered from, in the order they were sent.
#[derive(Clone)]
pub(crate) struct Outbox(mpsc::UnboundedSender<Value>);

impl Outbox {
    pub(crate) fn send(&self, event: Value) {
        // The dispatcher lives as long as the fake; a send after it stopped has nobody to tell.
        let _ = self.0.send(event);
    }
}

/// Starts the dispatcher on the current runtime.
pub(crate) fn start(state: Arc<Mutex<State>>, webhook: Webhook, policy: Policy) -> Outbox {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    // Already installed (by the app in the same process) is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client without TLS builds");
    tokio::spawn(async move {
        let mut random = Random::seeded();
        let mut sequence = 0u64;
        while let Some(event) = rx.recv().await {
            let sender = Sender {
                state: state.clone(),
                client: client.clone(),
                webhook: webhook.clone(),
                policy: policy.clone(),
            };
            if !policy.chaos {
                // In order: the next event's first attempt waits for this one's.
                sender.deliver(event, 1, Duration::ZERO).await;
                continue;
            }
            let copies = if sequence.is_multiple_of(3) { 2 } else { 1 };
            sequence += 1;
            for copy in 1..=copies {
                let delay = Duration::from_millis(random.below(1_500));
                tokio::spawn(sender.clone().deliver(event.clone(), copy, delay));
            }
        }
    });
    Outbox(tx)
}

#[derive(Clone)]
struct Sender {
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    webhook: Webhook,
    policy: Policy,
}

impl Sender {
    /// The first attempt after `delay`; a failed one goes on retrying in its own task.
    async fn deliver(self, event: Value, copy: u32, delay: Duration) {
        tokio::time::sleep(delay).await;
        let index = {
            let mut state = self.state.lock().unwrap();
            state.deliveries.push(Delivery {
                event_id: event["id"].as_str().unwrap_or_default().to_owned(),
                event_type: event["type"].as_str().unwrap_or_default().to_owned(),
                copy,
                attempts: Vec::new(),
                delivered: false,
            });
            state.deliveries.len() - 1
        };
        let payload = event.to_string();
        if self.attempt(index, &payload).await {
            return;
        }
        tokio::spawn(async move {
            let mut wait = self.policy.retry_base;
            for _ in 1..self.policy.max_attempts {
                tokio::time::sleep(wait).await;
                if self.attempt(index, &payload).await {
                    return;
                }
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// One signed POST; true when answered 2xx.
    async fn attempt(&self, index: usize, payload: &str) -> bool {
        let signature = signature_header(payload.as_bytes(), &self.webhook.secret, unix_now());
        let answer = self
            .client
            .post(&self.webhook.url)
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(payload.to_owned())
            .send()
            .await;
        let outcome = answer
            .map(|a| a.status().as_u16())
            .map_err(|e| e.to_string());
        let delivered = outcome.as_ref().is_ok_and(|s| (200..300).contains(s));
        let mut state = self.state.lock().unwrap();
        let delivery = &mut state.deliveries[index];
        delivery.attempts.push(Attempt {
            at: unix_now(),
            outcome,
        });
        delivery.delivered = delivered;
        delivered
    }
}

/// xorshift64: enough randomness to shuffle deliveries, without a dependency.
struct Random(u64);

impl Random {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
