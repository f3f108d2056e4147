//! Billing helpers for every test file that buys something: the app wired to a fake Stripe
//! ([`BillingApp`]), signed-in customers, pending orders with their Checkout Session, checkout over
//! HTTP or through the service, signed webhook deliveries, and the billing emails.
use std::{ops::Deref, time::Duration};

use ironclad::{
    billing::{
        BillingError, Customer,
        customer::Placer,
        orders::{
            self, checkout,
            views::{CheckoutRequest, CheckoutResponse},
        },
        stripe::Processor,
    },
    mail::CapturedMail,
};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use fake_stripe::FakeStripe;

use super::{TestApp, auth};

pub const SECRET: &str = "whsec_test_current";
pub const PRO: Uuid = Uuid::from_u128(0x0193a4c0_0000_7000_8000_000000000001);
pub const TEAM: Uuid = Uuid::from_u128(0x0193a4c0_0000_7000_8000_000000000002);

/// Counts the jobs billing queued: every job but the sign-ups' verification emails.
pub const BILLING_JOBS: &str = "SELECT count(*) FROM apalis.jobs WHERE job_type <> 'email' \
     OR convert_from(job, 'UTF8')::jsonb ->> 'template' <> 'verify_email'";

/// The app, wired to a fake Stripe started first.
pub struct BillingApp {
    pub app: TestApp,
    pub stripe: FakeStripe,
}

impl Deref for BillingApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// A signed-in customer: their user id and access token.
pub struct Shopper {
    pub id: Uuid,
    pub token: String,
}

/// An order whose Checkout Session exists, with what its events need.
pub struct Order {
    pub id: Uuid,
    pub session: Value,
    pub payment_intent: String,
}

/// The id of the order's Checkout Session (`cs_test_...`), as the fake knows it.
pub fn session_id(order: &Order) -> &str {
    order.session["id"].as_str().unwrap()
}

impl BillingApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::start(extra, true).await
    }

    /// The billing app with no job workers (see [`TestApp::run_jobs_until_idle`]).
    pub async fn spawn_without_workers() -> Self {
        Self::start(&[], false).await
    }

    async fn start(extra: &[(&str, &str)], with_workers: bool) -> Self {
        let stripe = FakeStripe::start().await;
        let mut vars = vec![
            ("STRIPE_API_BASE", stripe.url.as_str()),
            ("STRIPE_SECRET_KEY", "sk_test_fake"),
            ("STRIPE_WEBHOOK_SECRETS", SECRET),
            // Tests pace nothing unless they say so (the pacer has its own tests).
            ("STRIPE_MAX_REQUESTS_PER_SEC", "100000"),
        ];
        vars.extend_from_slice(extra);
        let app = if with_workers {
            TestApp::spawn_with(&vars).await
        } else {
            TestApp::spawn_without_workers(&vars).await
        };
        Self { app, stripe }
    }

    /// A customer signed up and signed in through the real auth routes.
    pub async fn customer(&self, email: &str) -> Shopper {
        let (token, _) = auth::signed_in(&self.app, email).await;
        let id = auth::claims(&token)["sub"]
            .as_str()
            .expect("sub")
            .parse()
            .expect("a user id");
        Shopper { id, token }
    }

    /// The id of a fresh signed-in customer (for tests calling the billing services directly).
    pub async fn user(&self, email: &str) -> Uuid {
        self.customer(email).await.id
    }

    /// `POST /api/v1/billing/checkout` as `token`, with `key` as the `Idempotency-Key` when given.
    pub async fn post_checkout(
        &self,
        token: &str,
        key: Option<&str>,
        body: &Value,
    ) -> auth::Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/billing/checkout"))
            .bearer_auth(token)
            .json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("checkout sent");
        auth::Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.json().await.unwrap_or(Value::Null),
        }
    }

    /// `GET /api/v1{path}` as `token`.
    pub async fn get_as(&self, token: &str, path: &str) -> auth::Response {
        auth::call(&self.app, "GET", path, Some(token), None).await
    }

    /// What `POST /billing/checkout` runs once the caller is authenticated and the key claimed
    /// (for `user`'s personal organisation).
    pub async fn checkout(
        &self,
        user: Uuid,
        key: &str,
        product_id: Uuid,
        quantity: u32,
    ) -> Result<(CheckoutResponse, bool), BillingError> {
        let request = CheckoutRequest {
            product_id,
            quantity,
        };
        let key = key.parse().expect("a valid Idempotency-Key");
        let customer = Customer::new(self.personal_org(user).await, Placer::User(user));
        checkout::checkout(&self.layers.billing, customer, &key, &request).await
    }

    /// A fresh customer's pending order for one Pro licence (checked out over HTTP), with its session.
    pub async fn pending_order(&self, email: &str) -> Order {
        let shopper = self.customer(email).await;
        self.order_for(&shopper, &format!("key-{email}")).await
    }

    /// `shopper`'s new pending order for one Pro licence, checked out over HTTP with `key`.
    pub async fn order_for(&self, shopper: &Shopper, key: &str) -> Order {
        let response = self
            .post_checkout(
                &shopper.token,
                Some(key),
                &json!({"product_id": PRO, "quantity": 1}),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.body);
        let id: Uuid = response.body["order_id"].as_str().unwrap().parse().unwrap();
        let session = self
            .stripe
            .sessions()
            .into_iter()
            .find(|s| s["client_reference_id"] == id.to_string())
            .expect("the fake saw the session");
        Order {
            id,
            session,
            payment_intent: format!("pi_for_{}", id.simple()),
        }
    }

    /// Delivers `event` signed, as Stripe would, and waits until the inbox has processed what is
    /// due (so the event's effect is visible): see [`BillingApp::process_inbox`].
    pub async fn post_event(&self, event: &Value) -> reqwest::Response {
        let response = self.deliver(event).await;
        self.process_inbox().await;
        response
    }

    /// Delivers `event` signed, as Stripe would; the answer comes once it is stored, and it is
    /// processed later (by the app's processor, or [`BillingApp::process_inbox`]).
    pub async fn deliver(&self, event: &Value) -> reqwest::Response {
        let payload = serde_json::to_string(event).unwrap();
        let signature = stripe_webhook::Webhook::generate_test_header(&payload, SECRET, None);
        self.post_webhook(payload, Some(signature), "application/json")
            .await
    }

    /// Processes every due inbox event here (the processor's own claim and apply), then waits for
    /// those the app's background processor holds: afterwards no event is due or in flight (events
    /// backing off after a failure wait for their time). Deterministic: no sleeps, no polling of
    /// outcomes.
    pub async fn process_inbox(&self) {
        Processor::new(self.layers.billing.clone())
            .drain()
            .await
            .expect("inbox drained");
        self.eventually(
            "SELECT count(*) FROM stripe_events WHERE status = 'processing' \
             OR (status = 'pending' AND next_attempt_at <= now())",
            0,
        )
        .await;
    }

    /// The stored event's outcome (`applied`, `ignored`, …), or its status while not processed.
    pub async fn outcome_of(&self, event_id: &str) -> String {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT coalesce(outcome, status) AS outcome FROM stripe_events WHERE event_id = $1",
                [event_id.into()],
            ))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{event_id} was not stored"));
        row.try_get("", "outcome").unwrap()
    }

    pub async fn post_webhook(
        &self,
        payload: String,
        signature: Option<String>,
        content_type: &str,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/webhooks/stripe"))
            .header("content-type", content_type)
            .body(payload);
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        request.send().await.expect("webhook sent")
    }

    pub async fn order_status(&self, id: Uuid) -> String {
        let order = orders::find(&self.db, id).await.unwrap().expect("order");
        order.status.as_str().to_owned()
    }

    /// The billing emails in the sink (leaving out the sign-ups' verification emails), once at least
    /// `count` arrived or `timeout` passed.
    pub async fn billing_mail(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mail: Vec<CapturedMail> = self
                .sink
                .messages()
                .into_iter()
                .filter(|m| {
                    m.message_id
                        .as_deref()
                        .is_some_and(|id| id.starts_with("<order-"))
                })
                .collect();
            if mail.len() >= count || tokio::time::Instant::now() >= deadline {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
