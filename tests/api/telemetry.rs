//! Trace export: a small OTLP/HTTP receiver (protobuf, as collectors take it) gets the app's spans.
//! A checkout sent with a W3C `traceparent`, the Stripe webhook about its order (which carries
//! none) and the licence and receipt jobs it queues all land in the caller's trace, and the
//! request's span keeps its `request_id`.
use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpResponse, HttpServer, web};
use ironclad::config::{Environment, TelemetryConfig};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value,
};
use prost::Message;
use serde_json::json;

use crate::support::billing::{BillingApp, PRO};

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    service: String,
    attributes: Vec<(String, String)>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        let found = self.attributes.iter().find(|(k, _)| k == key);
        found.map(|(_, v)| v.as_str())
    }
}

/// Serves `POST /v1/traces` on a free port: its base URL and what it received.
fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    let server = HttpServer::new(move || {
        let store = store.clone();
        App::new().route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let store = store.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
                    store.lock().unwrap().extend(spans(request));
                    HttpResponse::Ok()
                        .content_type("application/x-protobuf")
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
    (url, received)
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn spans(request: ExportTraceServiceRequest) -> Vec<Received> {
    let mut out = Vec::new();
    for resource in request.resource_spans {
        let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
        let service = attributes
            .iter()
            .find(|a| a.key == "service.name")
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                out.push(Received {
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    service: service.clone(),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(&a.value)))
                        .collect(),
                });
            }
        }
    }
    out
}

// Several threads: the SDK's batch exporter hands each export to the runtime and waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_its_webhook_and_its_jobs_are_one_trace_with_the_request_id() {
    let (collector, received) = receiver();
    let config = TelemetryConfig {
        otlp_endpoint: Some(collector),
        service_name: "ironclad-under-test".into(),
    };
    let telemetry = ironclad::telemetry::init(Environment::Test, &config);
    let app = BillingApp::spawn().await;
    let shopper = app.customer("traced@example.com").await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let checkout = app
        .client
        .post(app.url("/api/v1/billing/checkout"))
        .bearer_auth(&shopper.token)
        .header("idempotency-key", "traced-checkout")
        .header("x-request-id", "req-traced-1")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"product_id": PRO, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(checkout.status(), 201);
    let order: serde_json::Value = checkout.json().await.unwrap();
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let session = app
        .stripe
        .sessions()
        .into_iter()
        .find(|s| s["client_reference_id"] == order_id.as_str())
        .unwrap();

    // Stripe's delivery: no traceparent, a process (the inbox) far from the request.
    let paid = fake_stripe::completed(&session, "pi_traced", true);
    let event = fake_stripe::event("evt_traced", "checkout.session.completed", paid);
    assert_eq!(app.post_event(&event).await.status(), 200);
    app.eventually(
        "SELECT count(*) FROM orders WHERE status = 'fulfilled' AND receipt_sent_at IS NOT NULL",
        1,
    )
    .await;
    app.jobs_idle().await;

    let mut in_trace = Vec::new();
    for _ in 0..100 {
        telemetry.flush();
        in_trace = received
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();
        if names.contains(&"http") && names.contains(&"stripe_event") && names.contains(&"job") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = in_trace.iter().find(|s| s.name == "http");
    let request = request.unwrap_or_else(|| panic!("the request's span: {in_trace:#?}"));
    assert_eq!(request.attribute("request_id"), Some("req-traced-1"));
    assert_eq!(request.service, "ironclad-under-test");
    assert!(
        in_trace
            .iter()
            .any(|s| s.name == "stripe_event" && s.attribute("event_id") == Some("evt_traced")),
        "the webhook's processing continues the order's trace: {in_trace:#?}"
    );
    let queues: Vec<&str> = in_trace
        .iter()
        .filter(|s| s.name == "job")
        .filter_map(|s| s.attribute("queue"))
        .collect();
    assert!(
        queues.len() >= 2,
        "the licence and receipt jobs are in the trace: {queues:?}"
    );
    // Spans of other traces (the sign-up before) are exported too, under their own ids.
    let others = received
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id != trace_id)
        .count();
    assert!(others > 0);
}
