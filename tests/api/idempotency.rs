//! The `Idempotency-Key` middleware on its own: a tiny route behind it, a caller identified by a
//! test header (the real routes use the signed-in user), the app's real database.
use std::{
    future::{Ready, ready},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{
    App, FromRequest, HttpRequest, HttpResponse,
    dev::{Payload, ServiceResponse},
    error::ErrorUnauthorized,
    middleware::from_fn,
    test, web,
};
use ironclad::http::idempotency::{self, IdempotencyScope};
use tokio::sync::Semaphore;

use crate::support::TestApp;

/// The caller, named by `X-Client`.
struct TestClient(String);

impl FromRequest for TestClient {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.headers()
                .get("x-client")
                .and_then(|v| v.to_str().ok())
                .map(|c| TestClient(c.to_owned()))
                .ok_or_else(|| ErrorUnauthorized("who are you?")),
        )
    }
}

impl IdempotencyScope for TestClient {
    fn idempotency_scope(&self) -> String {
        format!("test:{}", self.0)
    }
}

#[derive(Clone, Default)]
struct Probe {
    runs: Arc<AtomicUsize>,
    /// When set, the handler waits for a permit: lets a test hold a request in flight.
    gate: Option<Arc<Semaphore>>,
    fail: bool,
}

async fn create_thing(probe: web::Data<Probe>, body: web::Bytes) -> HttpResponse {
    let run = probe.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(gate) = &probe.gate {
        gate.acquire().await.unwrap().forget();
    }
    if probe.fail {
        return HttpResponse::ServiceUnavailable().finish();
    }
    HttpResponse::Created()
        .insert_header(("location", format!("/things/{run}")))
        .json(serde_json::json!({"run": run, "echo": String::from_utf8_lossy(&body)}))
}

/// The app's state and the probe, around one route behind the middleware. (A macro: the service's
/// type cannot be named without depending on actix-http directly.)
macro_rules! service {
    ($app:expr, $probe:expr) => {
        test::init_service(
            App::new()
                .configure(|cfg| $app.layers.register(cfg))
                .app_data(web::Data::new($probe.clone()))
                .service(
                    web::resource("/things")
                        .wrap(from_fn(idempotency::required::<TestClient>))
                        .post(create_thing),
                ),
        )
        .await
    };
}

fn post(client: &str, key: Option<&str>, body: &str) -> test::TestRequest {
    let mut request = test::TestRequest::post()
        .uri("/things")
        .insert_header(("x-client", client))
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_owned());
    if let Some(key) = key {
        request = request.insert_header(("idempotency-key", key));
    }
    request
}

async fn problem_type(response: ServiceResponse) -> String {
    let body: serde_json::Value = test::read_body_json(response).await;
    body["type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_repeat_replays_the_stored_response_without_running_the_handler() {
    let app = TestApp::spawn().await;
    let probe = Probe::default();
    let svc = service!(app, probe);

    let first = test::call_service(&svc, post("ada", Some("k1"), "{\"a\":1}").to_request()).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_location = first.headers().get("location").unwrap().clone();
    let first_body = test::read_body(first).await;

    for _ in 0..3 {
        let again =
            test::call_service(&svc, post("ada", Some("k1"), "{\"a\":1}").to_request()).await;
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
        assert_eq!(again.headers().get("location").unwrap(), first_location);
        assert_eq!(
            again.headers().get("content-type").unwrap(),
            "application/json"
        );
        assert_eq!(test::read_body(again).await, first_body);
    }
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);

    // Keys belong to their caller: another client's k1 is another operation.
    let other = test::call_service(&svc, post("bob", Some("k1"), "{\"a\":1}").to_request()).await;
    assert_eq!(other.status(), 201);
    assert!(other.headers().get("idempotent-replayed").is_none());
    assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 2);
}

#[tokio::test]
async fn missing_key_is_400_a_different_request_is_422_and_anonymous_is_401() {
    let app = TestApp::spawn().await;
    let probe = Probe::default();
    let svc = service!(app, probe);

    let missing = test::call_service(&svc, post("ada", None, "{}").to_request()).await;
    assert_eq!(missing.status(), 400);
    assert_eq!(problem_type(missing).await, idempotency::types::MISSING);
    let invalid = test::call_service(&svc, post("ada", Some("has space"), "{}").to_request()).await;
    assert_eq!(invalid.status(), 400);

    let anonymous = test::call_service(
        &svc,
        test::TestRequest::post()
            .uri("/things")
            .insert_header(("idempotency-key", "k1"))
            .to_request(),
    )
    .await;
    assert_eq!(anonymous.status(), 401);

    let first = test::call_service(&svc, post("ada", Some("k1"), "{\"a\":1}").to_request()).await;
    assert_eq!(first.status(), 201);
    let changed = test::call_service(&svc, post("ada", Some("k1"), "{\"a\":2}").to_request()).await;
    assert_eq!(changed.status(), 422);
    assert_eq!(problem_type(changed).await, idempotency::types::MISMATCH);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_repeat_while_the_first_is_in_flight_is_409_then_replays() {
    let app = TestApp::spawn().await;
    let gate = Arc::new(Semaphore::new(0));
    let probe = Probe {
        gate: Some(gate.clone()),
        ..Probe::default()
    };
    let svc = service!(app, probe);

    let first = test::call_service(&svc, post("ada", Some("k1"), "{}").to_request());
    let second = async {
        // Wait until the first request is inside the handler, then repeat it.
        while probe.runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let response = test::call_service(&svc, post("ada", Some("k1"), "{}").to_request()).await;
        gate.add_permits(1);
        response
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 409);
    assert_eq!(second.headers().get("retry-after").unwrap(), "1");
    assert_eq!(problem_type(second).await, idempotency::types::IN_FLIGHT);

    let third = test::call_service(&svc, post("ada", Some("k1"), "{}").to_request()).await;
    assert_eq!(third.status(), 201);
    assert_eq!(third.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn server_errors_are_not_stored_so_a_retry_runs_again() {
    let app = TestApp::spawn().await;
    let probe = Probe {
        fail: true,
        ..Probe::default()
    };
    let svc = service!(app, probe);
    for _ in 0..2 {
        let response = test::call_service(&svc, post("ada", Some("k1"), "{}").to_request()).await;
        assert_eq!(response.status(), 503);
    }
    assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn keys_expire_after_24_hours_and_a_dead_claim_can_be_taken_over() {
    let app = TestApp::spawn().await;
    let probe = Probe::default();
    let svc = service!(app, probe);
    let first = test::call_service(&svc, post("ada", Some("k1"), "{}").to_request()).await;
    assert_eq!(first.status(), 201);
    let expiry = app
        .count(
            "SELECT round(extract(epoch FROM expires_at - created_at))::bigint FROM idempotency_keys",
        )
        .await;
    assert_eq!(expiry, 24 * 3600);

    // A day later the key is free again.
    use sea_orm::ConnectionTrait;
    app.db
        .execute_unprepared("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    let later = test::call_service(&svc, post("ada", Some("k1"), "{\"new\":1}").to_request()).await;
    assert_eq!(later.status(), 201);
    assert!(later.headers().get("idempotent-replayed").is_none());
    assert_eq!(probe.runs.load(Ordering::SeqCst), 2);

    // A claim left behind by a crashed process (no response, lease over) is taken over by the retry.
    app.db
        .execute_unprepared(
            "UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, \
             locked_until = now() - interval '1 second'",
        )
        .await
        .unwrap();
    let retry = test::call_service(&svc, post("ada", Some("k1"), "{\"new\":1}").to_request()).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 3);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 1);
}
