//! Billing: the catalogue, checkout (one order, one Stripe session, whatever the retries) and the
//! full happy path to the licence and receipt emails.
use std::time::Duration;

use ironclad::billing::{
    BillingError,
    orders::{self, views},
};
use serde_json::Value;
use uuid::Uuid;

use crate::support::billing::{BillingApp, PRO, TEAM};

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
    assert_eq!(
        url,
        format!("{}checkout/cs_test_0001", app.stripe.url),
        "the hosted page"
    );

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
    assert_eq!(ack["status"], "received");
    assert_eq!(app.outcome_of("evt_paid").await, "applied");

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
    let org: Uuid = orders::find(&app.db, id).await.unwrap().unwrap().org_id;
    let licences = views::licenses_for_org(&app.db, org).await.unwrap();
    assert_eq!(licences.len(), 1);
    assert_eq!(licences[0].status, "active");
    assert!(licence_mail.raw.contains(&licences[0].license_key));
    let view = views::find_for_org(&app.db, org, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status.as_str(), "fulfilled");
    assert!(view.paid_at.is_some() && view.fulfilled_at.is_some());
    // Another user cannot see it.
    let stranger = app.user("eve@example.com").await;
    let stranger = app.personal_org(stranger).await;
    assert!(
        views::find_for_org(&app.db, stranger, id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        views::list_for_org(&app.db, stranger)
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
