//! The stand-in behaves as Stripe does where the app relies on it: idempotency keys compared with
//! their first request, deliveries signed and retried with backoff until answered 2xx, and with
//! chaos duplicated and reordered.
use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use fake_stripe::{FakeStripe, Policy, Webhook, signature_header};
use serde_json::{Value, json};

const SECRET: &str = "whsec_stand_in";

/// An endpoint that answers each delivery with the next of `answers` (then 200), checking the
/// signature as the app does, and records the event ids it accepted.
struct Endpoint {
    url: String,
    accepted: Arc<Mutex<Vec<String>>>,
}

fn endpoint(answers: Vec<u16>) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let shared = (Arc::new(Mutex::new(answers)), accepted.clone());
    let server = HttpServer::new(move || {
        let (answers, accepted) = shared.clone();
        App::new().route(
            "/webhook",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (answers, accepted) = (answers.clone(), accepted.clone());
                async move {
                    let header = req
                        .headers()
                        .get("stripe-signature")
                        .unwrap()
                        .to_str()
                        .unwrap();
                    let t: i64 = header[2..header.find(',').unwrap()].parse().unwrap();
                    assert_eq!(
                        header,
                        signature_header(&body, SECRET, t),
                        "signed as Stripe"
                    );
                    let mut answers = answers.lock().unwrap();
                    let status = if answers.is_empty() {
                        200
                    } else {
                        answers.remove(0)
                    };
                    if status == 200 {
                        let event: Value = serde_json::from_slice(&body).unwrap();
                        let id = event["id"].as_str().unwrap().to_owned();
                        accepted.lock().unwrap().push(id);
                    }
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .finish()
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Endpoint { url, accepted }
}

async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened");
}

async fn create_session(stripe: &FakeStripe, key: &str, quantity: &str) -> (u16, Value) {
    // reqwest is built with the app's rustls, which needs its crypto provider installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let answer = reqwest::Client::new()
        .post(format!("{}v1/checkout/sessions", stripe.url))
        .header("authorization", "Bearer sk_test_x")
        .header("idempotency-key", key)
        .form(&[
            ("mode", "payment"),
            ("line_items[0][price_data][currency]", "usd"),
            ("line_items[0][price_data][unit_amount]", "4900"),
            ("line_items[0][quantity]", quantity),
        ])
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn a_key_reused_with_other_parameters_is_refused_as_stripe_refuses_it() {
    let stripe = FakeStripe::start().await;
    let (status, first) = create_session(&stripe, "order-1", "1").await;
    assert_eq!(status, 200);
    assert!(first["url"].as_str().unwrap().starts_with(&stripe.url));
    let (status, again) = create_session(&stripe, "order-1", "1").await;
    assert_eq!(
        (status, &again),
        (200, &first),
        "the same request: the same session"
    );
    let (status, other) = create_session(&stripe, "order-1", "2").await;
    assert_eq!(status, 400);
    assert_eq!(other["error"]["type"], "idempotency_error");
    assert_eq!(
        stripe.sessions().len(),
        1,
        "the refused request made nothing"
    );
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_backoff_until_answered_2xx() {
    let stripe = FakeStripe::start().await;
    let endpoint = endpoint(vec![500, 503]);
    let policy = Policy {
        retry_base: Duration::from_millis(50),
        ..Policy::default()
    };
    let webhook = Webhook {
        url: endpoint.url.clone(),
        secret: SECRET.into(),
    };
    stripe.deliver_to(webhook, policy);
    let event = stripe.emit(
        "customer.created",
        json!({"id": "cus_1", "object": "customer"}),
    );
    until(|| stripe.deliveries().first().is_some_and(|d| d.delivered)).await;
    let delivery = &stripe.deliveries()[0];
    let answers: Vec<_> = delivery
        .attempts
        .iter()
        .map(|a| a.outcome.clone())
        .collect();
    assert_eq!(answers, [Ok(500), Ok(503), Ok(200)]);
    assert_eq!(
        *endpoint.accepted.lock().unwrap(),
        [event["id"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn with_chaos_deliveries_are_duplicated_and_reordered() {
    let stripe = FakeStripe::start().await;
    let endpoint = endpoint(Vec::new());
    let webhook = Webhook {
        url: endpoint.url.clone(),
        secret: SECRET.into(),
    };
    let policy = Policy {
        chaos: true,
        ..Policy::default()
    };
    stripe.deliver_to(webhook, policy);
    let sent: Vec<String> = (0..40)
        .map(|n| {
            let event = stripe.emit("customer.updated", json!({"id": format!("cus_{n}")}));
            event["id"].as_str().unwrap().to_owned()
        })
        .collect();
    until(|| {
        let deliveries = stripe.deliveries();
        deliveries.len() > sent.len() && deliveries.iter().all(|d| d.delivered)
    })
    .await;
    // Wait out the last delays: every copy is made by now, some may still be in flight.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    until(|| stripe.deliveries().iter().all(|d| d.delivered)).await;
    let accepted = endpoint.accepted.lock().unwrap().clone();
    let mut unique = accepted.clone();
    unique.sort();
    unique.dedup();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(unique, expected, "every event arrived");
    assert!(accepted.len() > sent.len(), "some arrived twice");
    let first_arrivals: Vec<&String> = {
        let mut seen = std::collections::HashSet::new();
        accepted.iter().filter(|id| seen.insert(*id)).collect()
    };
    assert_ne!(
        first_arrivals,
        sent.iter().collect::<Vec<_>>(),
        "out of order"
    );
}
