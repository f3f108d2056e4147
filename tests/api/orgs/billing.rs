//! Billing belongs to the organisation: who may buy and read for it, the Idempotency-Key per
//! (principal, org), API keys buying with `billing:write` only, where licences and receipts go, and
//! the billing email behind a fresh second factor.
use std::time::Duration;

use serde_json::{Value, json};

use super::{Person, call, join, org, person};
use crate::support::{
    auth::{self, Response},
    billing::{BillingApp, PRO},
};

/// `POST /api/v1{path}` with `Idempotency-Key: key`, as `token`.
async fn checkout(app: &BillingApp, token: &str, path: &str, key: &str) -> Response {
    let response = app
        .client
        .post(app.url(&format!("/api/v1{path}")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"product_id": PRO, "quantity": 1}))
        .send()
        .await
        .expect("checkout sent");
    Response {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

fn order_id(r: &Response) -> String {
    r.body["order_id"].as_str().unwrap().to_owned()
}

/// A key of `org` made by `owner` with `scopes`, as a caller.
async fn key(app: &BillingApp, owner: &Person, org: &str, scopes: Value) -> (Person, String) {
    let r = call(
        app,
        owner,
        "POST",
        &format!("/orgs/{org}/api-keys"),
        Some(json!({"name": "shop bot", "scopes": scopes})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let caller = Person {
        token: r.body["key"].as_str().unwrap().to_owned(),
        id: String::new(),
    };
    (caller, r.body["api_key"]["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn members_with_the_billing_permission_buy_for_the_org_each_with_their_own_keys() {
    let app = BillingApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bea = person(&app, "bea@example.com").await;
    let cat = person(&app, "cat@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bea, "admin").await;
    join(&app, &acme, &cat, "member").await;
    let buy = format!("/orgs/{acme}/billing/checkout");

    // A plain member neither buys nor reads the org's orders; nothing is created.
    let refused = checkout(&app, &cat.token, &buy, "k1").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        refused.problem_type(),
        "urn:ironclad:problem:org-permission-required"
    );
    let r = call(
        &app,
        &cat,
        "GET",
        &format!("/orgs/{acme}/billing/orders"),
        None,
    )
    .await;
    assert_eq!(r.status, 403);

    // An admin buys for the org: the order is the org's, placed by her.
    let first = checkout(&app, &bea.token, &buy, "k1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let bea_order = order_id(&first);
    assert_eq!(
        first.header("location"),
        format!("/api/v1/orgs/{acme}/billing/orders/{bea_order}")
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders WHERE id = '{bea_order}' AND org_id = '{acme}' \
             AND placed_by = '{}' AND placed_by_key IS NULL",
            bea.id
        ))
        .await,
        1
    );
    // Her retry is the same order; the same key from the owner, or from her in her personal org,
    // is another purchase.
    let again = checkout(&app, &bea.token, &buy, "k1").await;
    assert_eq!((again.status, order_id(&again)), (201, bea_order.clone()));
    assert_eq!(again.header("idempotent-replayed"), "true");
    let ada_first = checkout(&app, &ada.token, &buy, "k1").await;
    assert_eq!(ada_first.status, 201, "{}", ada_first.body);
    assert_ne!(order_id(&ada_first), bea_order);
    let personal = checkout(&app, &bea.token, "/billing/checkout", "k1").await;
    assert_eq!(personal.status, 201, "{}", personal.body);
    assert_ne!(order_id(&personal), bea_order);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 3);
    assert_eq!(app.stripe.sessions().len(), 3);

    // Every billing member sees the org's orders, with who placed each; personal orders stay apart.
    let listed = call(
        &app,
        &ada,
        "GET",
        &format!("/orgs/{acme}/billing/orders"),
        None,
    )
    .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    let one = call(
        &app,
        &ada,
        "GET",
        &format!("/orgs/{acme}/billing/orders/{bea_order}"),
        None,
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body["placed_by"], bea.id.as_str());
    let mine = call(&app, &bea, "GET", "/billing/orders", None).await;
    assert_eq!(mine.body.as_array().unwrap().len(), 1);
    assert_eq!(mine.body[0]["id"], order_id(&personal).as_str());
    let ada_personal = call(&app, &ada, "GET", "/billing/orders", None).await;
    assert_eq!(ada_personal.body, json!([]));
    // The personal alias does not reach an org's order.
    let r = call(
        &app,
        &bea,
        "GET",
        &format!("/billing/orders/{bea_order}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);

    // The owner cancels the admin's unpaid order: it is the org's.
    let canceled = call(
        &app,
        &ada,
        "POST",
        &format!("/orgs/{acme}/billing/orders/{bea_order}/cancel"),
        None,
    )
    .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(canceled.body["status"], "canceled");
}

#[tokio::test]
async fn an_api_key_buys_only_with_billing_write_and_its_licence_goes_to_the_billing_email() {
    let app = BillingApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    let buy = format!("/orgs/{acme}/billing/checkout");
    let (reader, _) = key(&app, &ada, &acme, json!(["org:read"])).await;
    let (buyer, buyer_id) = key(&app, &ada, &acme, json!(["billing:write"])).await;

    for path in [
        format!("/orgs/{acme}/billing/orders"),
        format!("/orgs/{acme}/billing/licenses"),
        format!("/orgs/{acme}/billing/email"),
    ] {
        let r = call(&app, &reader, "GET", &path, None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let refused = checkout(&app, &reader.token, &buy, "bot-1").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    // A key never reaches the personal routes.
    let r = checkout(&app, &buyer.token, "/billing/checkout", "bot-1").await;
    assert_eq!(r.status, 401, "{}", r.body);

    app.sql(&format!(
        "INSERT INTO org_billing (org_id, billing_email) VALUES ('{acme}', 'books@acme.test')"
    ))
    .await;
    let bought = checkout(&app, &buyer.token, &buy, "bot-1").await;
    assert_eq!(bought.status, 201, "{}", bought.body);
    let id = order_id(&bought);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders WHERE id = '{id}' AND org_id = '{acme}' \
             AND placed_by IS NULL AND placed_by_key = '{buyer_id}'"
        ))
        .await,
        1
    );
    let seen = call(
        &app,
        &buyer,
        "GET",
        &format!("/orgs/{acme}/billing/orders/{id}"),
        None,
    )
    .await;
    assert_eq!(seen.body["placed_by_api_key"], buyer_id.as_str());
    // Changing where receipts go needs a person with a fresh second factor.
    let r = call(
        &app,
        &buyer,
        "PUT",
        &format!("/orgs/{acme}/billing/email"),
        Some(json!({"email": "thief@example.com"})),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Paid: the licence and the receipt are the org's, mailed to its billing email.
    let session = app
        .stripe
        .sessions()
        .into_iter()
        .find(|s| s["client_reference_id"] == id.as_str())
        .expect("the fake saw the session");
    assert_eq!(session["customer_email"], "books@acme.test");
    let intent = format!("pi_for_{}", id.replace('-', ""));
    let paid = fake_stripe::completed(&session, &intent, true);
    app.post_event(&fake_stripe::event(
        "evt_bot",
        "checkout.session.completed",
        paid,
    ))
    .await;
    let mail = app.billing_mail(2, Duration::from_secs(15)).await;
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(mail.iter().all(|m| m.to == ["books@acme.test"]), "{mail:?}");
    let licences = call(
        &app,
        &buyer,
        "GET",
        &format!("/orgs/{acme}/billing/licenses"),
        None,
    )
    .await;
    assert_eq!(
        licences.body.as_array().unwrap().len(),
        1,
        "{}",
        licences.body
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM licenses WHERE org_id = '{acme}'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn a_members_licence_goes_to_them_and_the_receipt_to_the_billing_email() {
    let app = BillingApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bea = person(&app, "bea@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bea, "admin").await;
    app.sql(&format!(
        "INSERT INTO org_billing (org_id, billing_email) VALUES ('{acme}', 'books@acme.test')"
    ))
    .await;
    let bought = checkout(
        &app,
        &bea.token,
        &format!("/orgs/{acme}/billing/checkout"),
        "k",
    )
    .await;
    let id = order_id(&bought);
    let session = app
        .stripe
        .sessions()
        .into_iter()
        .find(|s| s["client_reference_id"] == id.as_str())
        .unwrap();
    assert_eq!(session["customer_email"], "bea@example.com");
    let intent = format!("pi_for_{}", id.replace('-', ""));
    let paid = fake_stripe::completed(&session, &intent, true);
    app.post_event(&fake_stripe::event(
        "evt_bea",
        "checkout.session.completed",
        paid,
    ))
    .await;
    let mail = app.billing_mail(2, Duration::from_secs(15)).await;
    let to = |suffix: &str| {
        mail.iter()
            .find(|m| {
                m.message_id.as_deref()
                    == Some(&format!("<order-{id}.{suffix}@ironclad.localhost>"))
            })
            .unwrap_or_else(|| panic!("no {suffix} mail: {mail:?}"))
            .to
            .clone()
    };
    assert_eq!(to("license"), ["bea@example.com"]);
    assert_eq!(to("receipt"), ["books@acme.test"]);
}

#[tokio::test]
async fn the_billing_email_is_the_orgs_behind_a_fresh_second_factor() {
    let app = BillingApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bea = person(&app, "bea@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bea, "member").await;
    let path = format!("/orgs/{acme}/billing/email");
    let body = || Some(json!({"email": "Books@Acme.test"}));

    // Without MFA: enrol first. A member may not at all; an outsider learns nothing.
    let r = call(&app, &ada, "PUT", &path, body()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:mfa-enrolment-required"
    );
    let r = call(&app, &bea, "PUT", &path, body()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:org-permission-required"
    );
    let eve = person(&app, "eve@example.com").await;
    let r = call(&app, &eve, "PUT", &path, body()).await;
    assert_eq!(r.status, 404, "{}", r.body);

    let mfa = auth::enable_mfa(&app, &ada.token).await;
    let ada = Person {
        token: mfa.access_token,
        id: ada.id,
    };
    let bad = call(
        &app,
        &ada,
        "PUT",
        &path,
        Some(json!({"email": "not an address"})),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let r = call(&app, &ada, "PUT", &path, body()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["billing_email"], "books@acme.test");
    let read = call(&app, &ada, "GET", &path, None).await;
    assert_eq!(read.body["billing_email"], "books@acme.test");
    // The org's, not the owner's personal org's.
    let personal = call(&app, &ada, "GET", "/billing/email", None).await;
    assert_eq!(personal.body, json!({"billing_email": null}));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM org_audit WHERE org_id = '{acme}' \
             AND action = 'billing_email_changed' AND actor_user_id = '{}'",
            ada.id
        ))
        .await,
        1
    );
    auth::mail_to(&app, "ada@example.com", "billing email of acme").await;

    // A second change tells the previous address too.
    let r = call(
        &app,
        &ada,
        "PUT",
        &path,
        Some(json!({"email": "ap@acme.test"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    auth::mail_to(&app, "books@acme.test", "billing email of acme").await;
}
