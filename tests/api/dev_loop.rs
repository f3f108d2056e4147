//! The cloner's loop, over HTTP only, as a newcomer runs it after `just dev` with no network: sign
//! up, verify through `/dev/mail`, check out, press a button on the Stripe stand-in's hosted
//! checkout page, and find the licence and the receipt in `/dev/mail`. The stand-in delivers the
//! events itself (signed, retried, with chaos duplicated and reordered); nothing here posts a
//! webhook by hand. Also `ironclad stripe trigger`'s events, sent to the app as the command does.
use std::time::Duration;

use fake_stripe::{Policy, Webhook};
use ironclad::billing::stripe::trigger::{self, OrderFacts};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    auth::PASSWORD,
    billing::{BillingApp, PRO, SECRET},
};

/// The app with the stand-in delivering its events to the app's webhook endpoint.
async fn shop(policy: Policy) -> BillingApp {
    let shop = BillingApp::spawn().await;
    let webhook = Webhook {
        url: shop.url("/api/v1/webhooks/stripe"),
        secret: SECRET.into(),
    };
    shop.stripe.deliver_to(webhook, policy);
    shop.stripe.settle_after(Duration::from_millis(200));
    shop
}

/// `GET /dev/mail`, waiting until a message to `to` whose subject contains `subject` is there.
async fn dev_mail(shop: &BillingApp, to: &str, subject: &str) -> Value {
    for _ in 0..300 {
        let mails: Vec<Value> = shop.get("/dev/mail").await.json().await.unwrap();
        let found = mails.into_iter().find(|m| {
            m["to"].as_array().unwrap().iter().any(|t| t == to)
                && m["subject"].as_str().unwrap_or("").contains(subject)
        });
        if let Some(mail) = found {
            return mail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail to {to} about {subject:?} in /dev/mail");
}

/// Signs up and verifies through the emailed token: the access token.
async fn newcomer(shop: &BillingApp, email: &str) -> String {
    let client = &shop.client;
    let credentials = json!({"email": email, "password": PASSWORD});
    let registered = client
        .post(shop.url("/api/v1/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let mail = dev_mail(shop, email, "Verify your email").await;
    let raw = mail["raw"].as_str().unwrap();
    let token: String = raw[raw.find("Token: ").unwrap() + 7..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let verified = client
        .post(shop.url("/api/v1/auth/verify-email"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 204);
    let login: Value = client
        .post(shop.url("/api/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"]
        .as_str()
        .expect("signed in")
        .to_owned()
}

/// Checks out one Pro licence: the order id and the hosted page's URL.
async fn checkout(shop: &BillingApp, token: &str, key: &str) -> (Uuid, String) {
    let body = json!({"product_id": PRO, "quantity": 1});
    let created = shop.post_checkout(token, Some(key), &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let order = created.body["order_id"].as_str().unwrap().parse().unwrap();
    let url = created.body["checkout_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&shop.stripe.url),
        "{url} is the stand-in's page"
    );
    (order, url)
}

/// Presses a button of the hosted page: its status and HTML.
async fn press(shop: &BillingApp, page: &str, action: &str) -> (u16, String) {
    let answer = shop
        .client
        .post(page)
        .form(&[("action", action)])
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

async fn order_status(shop: &BillingApp, token: &str, order: Uuid) -> String {
    let order = shop
        .get_as(token, &format!("/billing/orders/{order}"))
        .await;
    order.body["status"].as_str().unwrap().to_owned()
}

async fn eventually_status(shop: &BillingApp, token: &str, order: Uuid, expected: &str) {
    for _ in 0..300 {
        if order_status(shop, token, order).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = order_status(shop, token, order).await;
    panic!("order {order} is {status}, never {expected}");
}

/// Until every delivery is answered 2xx (each is retried until then).
async fn all_delivered(shop: &BillingApp) {
    for _ in 0..300 {
        let deliveries = shop.stripe.deliveries();
        if !deliveries.is_empty() && deliveries.iter().all(|d| d.delivered) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "deliveries never all answered 2xx: {:?}",
        shop.stripe.deliveries()
    );
}

#[tokio::test]
async fn a_newcomer_buys_a_licence_through_the_hosted_page_and_finds_it_in_dev_mail() {
    let shop = shop(Policy::default()).await;
    let email = "newcomer@example.com";
    let token = newcomer(&shop, email).await;
    let (order, page) = checkout(&shop, &token, "first-purchase").await;

    let shown = shop.client.get(&page).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    let html = shown.text().await.unwrap();
    for expected in [
        "Ironclad Pro",
        "$49.00",
        email,
        "value=pay",
        "value=abandon",
    ] {
        assert!(html.contains(expected), "the page shows {expected}: {html}");
    }

    let (status, done) = press(&shop, &page, "pay").await;
    assert_eq!((status, done.contains("Payment succeeded")), (200, true));
    let licence = dev_mail(&shop, email, "Your Ironclad licence").await;
    let receipt = dev_mail(&shop, email, "Your Ironclad receipt").await;
    assert!(licence["raw"].as_str().unwrap().contains("IRON-"));
    assert!(receipt["raw"].as_str().unwrap().contains("Ironclad Pro"));
    eventually_status(&shop, &token, order, "fulfilled").await;
    let licences = shop.get_as(&token, "/billing/licenses").await;
    assert_eq!(
        licences.body.as_array().unwrap().len(),
        1,
        "{}",
        licences.body
    );

    // Stripe's events, signed and answered 200 once each: the same the Dashboard's log shows.
    all_delivered(&shop).await;
    let types: Vec<String> = shop
        .stripe
        .deliveries()
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    assert_eq!(
        types,
        ["payment_intent.succeeded", "checkout.session.completed"]
    );
    let log = shop.client.get(shop.stripe.url.clone() + "deliveries");
    let log = log.send().await.unwrap().text().await.unwrap();
    assert!(log.contains("checkout.session.completed") && log.contains("delivered"));
    // The page no longer sells: the session is complete.
    let (again, _) = press(&shop, &page, "pay").await;
    assert_eq!(again, 409);
}

#[tokio::test]
async fn delayed_payments_settle_or_bounce_and_an_abandoned_checkout_expires() {
    let shop = shop(Policy::default()).await;
    let token = newcomer(&shop, "patient@example.com").await;

    let (settles, page) = checkout(&shop, &token, "debit-ok").await;
    let (_, processing) = press(&shop, &page, "delayed_success").await;
    assert!(processing.contains("Payment processing"), "{processing}");
    eventually_status(&shop, &token, settles, "fulfilled").await;

    let (bounces, page) = checkout(&shop, &token, "debit-bounces").await;
    press(&shop, &page, "delayed_failure").await;
    eventually_status(&shop, &token, bounces, "payment_failed").await;

    let (declined, page) = checkout(&shop, &token, "card-declined").await;
    let (status, html) = press(&shop, &page, "decline").await;
    assert_eq!((status, html.contains("declined")), (402, true));
    // A declined card leaves the session open: the customer may try again.
    all_delivered(&shop).await;
    assert_eq!(
        order_status(&shop, &token, declined).await,
        "pending_payment"
    );
    press(&shop, &page, "abandon").await;
    eventually_status(&shop, &token, declined, "expired").await;
    assert_eq!(shop.count("SELECT count(*) FROM licenses").await, 1);
}

#[tokio::test]
async fn chaotic_deliveries_duplicated_and_reordered_still_give_one_licence_and_receipt_each() {
    let chaos = Policy {
        chaos: true,
        retry_base: Duration::from_millis(100),
        ..Policy::default()
    };
    let shop = shop(chaos).await;
    let email = "chaos@example.com";
    let token = newcomer(&shop, email).await;
    let mut orders = Vec::new();
    for n in 0..6 {
        let (order, page) = checkout(&shop, &token, &format!("chaos-{n}")).await;
        // Half paid by bank debit: its two session events may arrive either way round.
        let action = if n % 2 == 0 { "pay" } else { "delayed_success" };
        press(&shop, &page, action).await;
        orders.push(order);
    }
    for order in &orders {
        eventually_status(&shop, &token, *order, "fulfilled").await;
    }
    all_delivered(&shop).await;
    let deliveries = shop.stripe.deliveries();
    let events = shop
        .stripe
        .deliveries()
        .iter()
        .filter(|d| d.copy == 1)
        .count();
    assert!(
        deliveries.len() > events,
        "chaos duplicated some of the {events} events"
    );
    // Settle the workers, then count: one licence and one receipt per order, whatever arrived.
    shop.jobs_idle().await;
    assert_eq!(shop.count("SELECT count(*) FROM licenses").await, 6);
    assert_eq!(
        shop.count("SELECT count(*) FROM orders WHERE receipt_sent_at IS NOT NULL")
            .await,
        6
    );
    let receipts = shop
        .sink
        .messages()
        .iter()
        .filter(|m| m.subject.as_deref().unwrap_or("").contains("receipt"))
        .count();
    assert_eq!(receipts, 6);
}

#[tokio::test]
async fn triggered_events_move_the_order_as_stripes_would() {
    let shop = BillingApp::spawn().await;
    let token = newcomer(&shop, "trigger@example.com").await;
    let (order, _) = checkout(&shop, &token, "triggered").await;
    let row = ironclad::billing::orders::find(&shop.layers.db, order).await;
    let facts = OrderFacts::from(&row.unwrap().expect("the order"));
    let url = shop.url("/api/v1/webhooks/stripe");

    let paid = trigger::event("checkout.session.completed", Some(&facts)).unwrap();
    let answer = trigger::send(&url, SECRET.as_bytes(), &paid).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    eventually_status(&shop, &token, order, "fulfilled").await;

    let refunded = trigger::event("charge.refunded", Some(&facts)).unwrap();
    let answer = trigger::send(&url, SECRET.as_bytes(), &refunded)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    eventually_status(&shop, &token, order, "refunded").await;

    // Any other type is kept and answered 200; a wrong secret is refused as Stripe's would be.
    let other = trigger::event("customer.created", None).unwrap();
    let answer = trigger::send(&url, SECRET.as_bytes(), &other)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let forged = trigger::send(&url, b"whsec_wrong", &other).await.unwrap();
    assert_eq!(forged.status, 400, "{}", forged.body);
}

#[tokio::test]
async fn a_subscription_bought_on_the_hosted_page_is_trialing_with_its_plans_features() {
    let shop = shop(Policy::default()).await;
    let owner = crate::orgs::person(&shop, "founder@example.com").await;
    let acme = crate::orgs::org(&shop, &owner, "acme").await;
    let started =
        crate::subscriptions::start_checkout(&shop, &owner, &acme, "business", 3, "sub-1").await;
    assert_eq!(started.status, 201, "{}", started.body);
    let page = started.body["checkout_url"].as_str().unwrap().to_owned();
    let html = shop.client.get(&page).send().await.unwrap().text().await;
    assert!(html.unwrap().contains("price_demo_business_month"));

    let (status, done) = press(&shop, &page, "pay").await;
    assert_eq!((status, done.contains("Subscription started")), (200, true));
    all_delivered(&shop).await;
    let path = format!("/orgs/{acme}/billing/subscription");
    for _ in 0..300 {
        let view = shop.get_as(&owner.token, &path).await;
        let subscription = &view.body["subscription"];
        if view.status == 200 && subscription["status"] == "trialing" {
            assert_eq!(
                (&subscription["plan"], &subscription["seats"]),
                (&json!("business"), &json!(3))
            );
            let features = view.body["features"].as_array().unwrap();
            assert!(features.contains(&json!("audit_log")), "{features:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = shop.get_as(&owner.token, &path).await;
    let deliveries = shop.stripe.deliveries();
    panic!(
        "the subscription never showed as trialing: {} {} after {deliveries:?}",
        view.status, view.body
    );
}
