//! Subscriptions: subscribing through Checkout, our copy kept equal to Stripe's whatever the
//! order of delivery, entitlements on routes, seats, changes and cancellation, dunning emails and
//! the Stripe pacer — all against the fake Stripe, through the real inbox.
mod checkout;
mod copy;
mod dunning;
mod entitlements;
mod manage;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::{
    orgs::{Person, org, person},
    support::{auth::Response, billing::BillingApp},
};

/// `method /api/v1{path}` as `who`, with `Idempotency-Key: key` and an optional body.
pub async fn keyed(
    app: &BillingApp,
    who: &Person,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(&format!("/api/v1{path}")))
        .bearer_auth(&who.token)
        .header("idempotency-key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    Response {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// `POST /orgs/{org}/billing/subscription/checkout` for `plan` monthly with `seats`.
pub async fn start_checkout(
    app: &BillingApp,
    who: &Person,
    org: &str,
    plan: &str,
    seats: u32,
    key: &str,
) -> Response {
    keyed(
        app,
        who,
        "POST",
        &format!("/orgs/{org}/billing/subscription/checkout"),
        key,
        Some(json!({"plan": plan, "interval": "month", "seats": seats})),
    )
    .await
}

/// An org whose owner subscribed: the owner, the org and the subscription as the fake has it.
pub struct Subscribed {
    pub owner: Person,
    pub org: String,
    pub sub_id: String,
}

/// `slug`'s owner subscribes to `plan` (3 seats) and pays; Stripe reports it with
/// `checkout.session.completed` and the subscription ends up `status`.
pub async fn subscribed(app: &BillingApp, slug: &str, plan: &str, status: &str) -> Subscribed {
    let owner = person(app, &format!("owner@{slug}.example")).await;
    let org = org(app, &owner, slug).await;
    let r = start_checkout(app, &owner, &org, plan, 3, &format!("sub-{slug}")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let session = session_of(app, &org);
    let (session, sub) = app.stripe.complete_subscription_checkout(&session, status);
    let event = fake_stripe::event(
        &format!("evt_checkout_{slug}"),
        "checkout.session.completed",
        session,
    );
    assert_eq!(app.post_event(&event).await.status(), 200);
    Subscribed {
        owner,
        org,
        sub_id: sub["id"].as_str().unwrap().to_owned(),
    }
}

/// The id of the latest Checkout Session the fake made for `org`.
pub fn session_of(app: &BillingApp, org: &str) -> String {
    let sessions = app.stripe.sessions();
    let session = sessions
        .iter()
        .rev()
        .find(|s| s["metadata"]["org_id"] == org)
        .expect("a session for the org");
    session["id"].as_str().unwrap().to_owned()
}

/// A `customer.subscription.*` event carrying `sub` as it is now.
pub fn sub_event(id: &str, kind: &str, sub: Value) -> Value {
    fake_stripe::event(id, &format!("customer.subscription.{kind}"), sub)
}

/// Our copy of `sub_id`: status, seats, plan, `cancel_at_period_end`, period end.
pub async fn copy_of(app: &BillingApp, sub_id: &str) -> (String, i64, String, bool, i64) {
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT status, quantity::bigint AS quantity, coalesce(plan_key, '') AS plan, \
                cancel_at_period_end, extract(epoch FROM current_period_end)::bigint AS period_end \
             FROM subscriptions WHERE stripe_subscription_id = $1",
            [sub_id.into()],
        ))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no copy of {sub_id}"));
    (
        row.try_get("", "status").unwrap(),
        row.try_get("", "quantity").unwrap(),
        row.try_get("", "plan").unwrap(),
        row.try_get("", "cancel_at_period_end").unwrap(),
        row.try_get("", "period_end").unwrap(),
    )
}

/// What the fake says of `sub_id`, in the copy's shape.
pub fn stripe_state(app: &BillingApp, sub_id: &str) -> (String, i64, String, bool, i64) {
    let sub = app.stripe.subscription(sub_id);
    let item = &sub["items"]["data"][0];
    let price = item["price"]["id"].as_str().unwrap();
    let plan = price
        .trim_start_matches("price_demo_")
        .trim_end_matches("_month")
        .trim_end_matches("_year")
        .to_owned();
    (
        sub["status"].as_str().unwrap().to_owned(),
        item["quantity"].as_i64().unwrap(),
        plan,
        sub["cancel_at_period_end"].as_bool().unwrap(),
        item["current_period_end"].as_i64().unwrap(),
    )
}
