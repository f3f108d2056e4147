//! Billing: the catalogue, checkout (one order, one Stripe session, whatever the retries) and the
//! full happy path to the licence and receipt emails. Shared helpers for the billing test files.
use std::{ops::Deref, time::Duration};

use ironclad::{
    billing::{
        BillingError, orders,
        orders::{CheckoutRequest, CheckoutResponse},
    },
    mail::CapturedMail,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    fake_stripe::{self, FakeStripe},
    support::{TestApp, auth},
};

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

impl BillingApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let stripe = FakeStripe::start().await;
        let mut vars = vec![
            ("STRIPE_API_BASE", stripe.url.as_str()),
            ("STRIPE_SECRET_KEY", "sk_test_fake"),
            ("STRIPE_WEBHOOK_SECRETS", SECRET),
        ];
        vars.extend_from_slice(extra);
        let app = TestApp::spawn_with(&vars).await;
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

    pub async fn sql(&self, sql: &str) {
        use sea_orm::ConnectionTrait;
        self.db.execute_unprepared(sql).await.expect(sql);
    }

    /// What `POST /billing/checkout` runs once the caller is authenticated and the key claimed.
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
        orders::checkout(&self.state, user, key, &request).await
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

    pub async fn post_event(&self, event: &Value) -> reqwest::Response {
        let payload = serde_json::to_string(event).unwrap();
        let signature = stripe_webhook::Webhook::generate_test_header(&payload, SECRET, None);
        self.post_webhook(payload, Some(signature), "application/json")
            .await
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
        order.status
    }

    /// Waits until `sql` (a `SELECT count(*)`) reaches `expected`, failing after a while.
    pub async fn eventually(&self, sql: &str, expected: i64) {
        for _ in 0..300 {
            if self.count(sql).await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{sql} never reached {expected}: {}", self.count(sql).await);
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

    /// Waits for the job queue to be idle (nothing pending, queued or running).
    pub async fn jobs_idle(&self) {
        self.eventually(
            "SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Killed')",
            0,
        )
        .await;
    }
}

#[tokio::test]
async fn the_catalogue_lists_products_priced_in_the_shop_currency() {
    let app = BillingApp::spawn().await;
    let response = app.get("/api/v1/billing/products").await;
    assert_eq!(response.status(), 200);
    let products: Vec<Value> = response.json().await.unwrap();
    assert_eq!(products.len(), 3);
    let pro = products
        .iter()
        .find(|p| p["slug"] == "ironclad-pro")
        .unwrap();
    assert_eq!(pro["id"], PRO.to_string());
    assert_eq!(pro["unit_amount"], 4900);
    assert_eq!(pro["currency"], "usd");

    // Selling in euros: only the products with a euro price are on sale.
    let eur = BillingApp::spawn_with(&[("BILLING_CURRENCY", "eur")]).await;
    let products: Vec<Value> = eur
        .get("/api/v1/billing/products")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(products.len(), 2);
    assert!(products.iter().all(|p| p["currency"] == "eur"));
}

#[tokio::test]
async fn customer_routes_refuse_anonymous_callers_and_write_nothing() {
    let app = BillingApp::spawn().await;
    let checkout = app
        .client
        .post(app.url("/api/v1/billing/checkout"))
        .header("idempotency-key", "k1")
        .json(&serde_json::json!({"product_id": PRO, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(checkout.status(), 401);
    assert_eq!(
        checkout.headers()["content-type"],
        "application/problem+json"
    );
    for path in [
        "/api/v1/billing/orders",
        "/api/v1/billing/licenses",
        &format!("/api/v1/billing/orders/{}", Uuid::now_v7()),
    ] {
        assert_eq!(app.get(path).await.status(), 401, "{path}");
    }
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
    assert!(app.stripe.requests().is_empty());
}

#[tokio::test]
async fn checkout_creates_one_order_and_one_session_and_a_replay_creates_neither() {
    let app = BillingApp::spawn().await;
    let user = app.user("ada@example.com").await;
    let (first, created) = app.checkout(user, "key-1", TEAM, 2).await.unwrap();
    assert!(created);
    assert_eq!(first.status.as_str(), "pending_payment");
    let url = first.checkout_url.clone().expect("a checkout url");
    assert!(url.starts_with("https://checkout.stripe.test/"));

    // What Stripe was asked: one session for this order, priced by us, carrying the order id.
    let requests = app.stripe.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    let order_id = first.order_id.to_string();
    assert_eq!(request.form["client_reference_id"], order_id);
    assert_eq!(request.form["metadata[order_id]"], order_id);
    assert_eq!(
        request.form["payment_intent_data[metadata][order_id]"],
        order_id
    );
    assert_eq!(
        request.form["line_items[0][price_data][unit_amount]"],
        "19900"
    );
    assert_eq!(request.form["line_items[0][quantity]"], "2");
    assert_eq!(request.form["customer_email"], "ada@example.com");
    let stripe_key = request.idempotency_key.clone().expect("an idempotency key");
    assert!(
        stripe_key.starts_with(&format!("checkout-{order_id}-")),
        "{stripe_key}"
    );

    // The same key again: the same order and session; nothing new anywhere.
    let (again, created) = app.checkout(user, "key-1", TEAM, 2).await.unwrap();
    assert!(!created);
    assert_eq!(again.order_id, first.order_id);
    assert_eq!(again.checkout_url, first.checkout_url);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM order_lines").await, 1);
    assert_eq!(app.stripe.sessions().len(), 1);
    assert_eq!(app.stripe.requests().len(), 1);
    let amount = app
        .count(&format!(
            "SELECT amount_total FROM orders WHERE id = '{order_id}'"
        ))
        .await;
    assert_eq!(amount, 39800);

    // The same key for something else is refused; another key is another order.
    let reused = app.checkout(user, "key-1", PRO, 1).await.unwrap_err();
    assert!(
        matches!(reused, BillingError::CheckoutKeyReused),
        "{reused}"
    );
    let (other, created) = app.checkout(user, "key-2", PRO, 1).await.unwrap();
    assert!(created);
    assert_ne!(other.order_id, first.order_id);
    assert_eq!(app.stripe.sessions().len(), 2);
}

#[tokio::test]
async fn a_stripe_outage_leaves_the_order_waiting_and_the_retry_reuses_the_stripe_key() {
    let app = BillingApp::spawn().await;
    let user = app.user("ada@example.com").await;
    app.stripe.fail_next(1);
    let error = app.checkout(user, "key-1", PRO, 1).await.unwrap_err();
    assert!(matches!(error, BillingError::Stripe(_)), "{error}");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);

    let (order, _) = app.checkout(user, "key-1", PRO, 1).await.unwrap();
    assert!(order.checkout_url.is_some());
    let requests = app.stripe.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].idempotency_key, requests[1].idempotency_key,
        "a retry must reach Stripe with the same key, so it can never create a second session"
    );
    assert_eq!(app.stripe.sessions().len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
}

#[tokio::test]
async fn checkout_refuses_unknown_products_and_silly_quantities() {
    let app = BillingApp::spawn().await;
    let user = app.user("ada@example.com").await;
    let missing = app
        .checkout(user, "k1", Uuid::now_v7(), 1)
        .await
        .unwrap_err();
    assert!(matches!(missing, BillingError::ProductNotFound(_)));
    for quantity in [0, 101] {
        let error = app.checkout(user, "k2", PRO, quantity).await.unwrap_err();
        assert!(matches!(error, BillingError::Validation(_)), "{quantity}");
    }
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    assert!(app.stripe.requests().is_empty());
}

#[tokio::test]
async fn happy_path_checkout_webhook_licence_and_receipt_emails() {
    let app = BillingApp::spawn().await;
    let order = app.pending_order("ada@example.com").await;
    let paid = fake_stripe::completed(&order.session, &order.payment_intent, true);
    let response = app
        .post_event(&fake_stripe::event(
            "evt_paid",
            "checkout.session.completed",
            paid,
        ))
        .await;
    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(ack["outcome"], "applied");

    let mail = app.billing_mail(2, Duration::from_secs(15)).await;
    assert_eq!(mail.len(), 2, "{mail:?}");
    let id = order.id;
    let receipt = mail
        .iter()
        .find(|m| {
            m.message_id.as_deref() == Some(&format!("<order-{id}.receipt@ironclad.localhost>"))
        })
        .expect("a receipt");
    assert_eq!(receipt.to, ["ada@example.com"]);
    assert_eq!(
        receipt.subject.as_deref(),
        Some("Your Ironclad receipt (49.00 USD)")
    );
    assert!(receipt.raw.contains("text/plain") && receipt.raw.contains("text/html"));
    let licence_mail = mail
        .iter()
        .find(|m| {
            m.message_id.as_deref() == Some(&format!("<order-{id}.license@ironclad.localhost>"))
        })
        .expect("a licence email");

    app.eventually(
        &format!("SELECT count(*) FROM orders WHERE id = '{id}' AND status = 'fulfilled'"),
        1,
    )
    .await;
    let user: Uuid = orders::find(&app.db, id).await.unwrap().unwrap().user_id;
    let licences = orders::licenses_for_user(&app.db, user).await.unwrap();
    assert_eq!(licences.len(), 1);
    assert_eq!(licences[0].status, "active");
    assert!(licence_mail.raw.contains(&licences[0].license_key));
    let view = orders::find_for_user(&app.db, user, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status.as_str(), "fulfilled");
    assert!(view.paid_at.is_some() && view.fulfilled_at.is_some());
    // Another user cannot see it.
    let stranger = app.user("eve@example.com").await;
    assert!(
        orders::find_for_user(&app.db, stranger, id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        orders::list_for_user(&app.db, stranger)
            .await
            .unwrap()
            .is_empty()
    );

    // The audit trail tells the story.
    let trail = app
        .count(&format!(
            "SELECT count(*) FROM order_events WHERE order_id = '{id}' AND outcome = 'applied' \
             AND to_status IN ('pending_payment', 'paid', 'fulfilled')"
        ))
        .await;
    assert_eq!(trail, 3);
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE receipt_sent_at IS NOT NULL")
            .await,
        1
    );
}
