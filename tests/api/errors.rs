//! Bad input gets a problem+json 4xx, never a bare error or a 500.
use actix_web::{App, middleware::from_fn, test, web};
use ironclad::http::errors;
use serde::Deserialize;
use serde_json::Value;

use crate::support::TestApp;

#[tokio::test]
async fn unknown_routes_are_problem_404s() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/does-not-exist").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "Not Found");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_that_says_what_is_allowed() {
    let app = TestApp::spawn().await;
    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 405);
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Signup {
    email: String,
    seats: u32,
}

async fn accept_signup(_body: web::Json<Signup>) -> &'static str {
    "ok"
}

/// The extractor configuration the app installs, exercised through a JSON endpoint.
async fn call(content_type: &str, body: impl Into<Vec<u8>>) -> (u16, String, Value) {
    let service = test::init_service(
        App::new()
            .app_data(errors::json_config(1024))
            .route("/signup", web::post().to(accept_signup))
            .wrap(from_fn(errors::problem_responses)),
    )
    .await;
    let request = test::TestRequest::post()
        .uri("/signup")
        .insert_header(("content-type", content_type))
        .set_payload(body.into())
        .to_request();
    let response = test::call_service(&service, request).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = test::read_body(response).await;
    (
        status,
        content_type,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn malformed_json_is_a_400_problem() {
    let (status, content_type, body) = call("application/json", "{\"email\": ").await;
    assert_eq!(status, 400);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["type"], "urn:ironclad:problem:invalid-body");
    assert!(body["detail"].is_string());
}

#[actix_web::test]
async fn a_missing_field_or_wrong_type_is_a_400_problem_naming_it() {
    let (status, _, body) = call("application/json", r#"{"email": "a@b.c"}"#).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("seats"), "{body}");

    let (status, _, body) = call("application/json", r#"{"email": "a@b.c", "seats": "two"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:ironclad:problem:invalid-body");
}

#[actix_web::test]
async fn invalid_utf8_is_a_400_problem() {
    let (status, _, body) = call("application/json", b"{\"email\": \"\xff\xfe\"}".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], 400);
}

#[actix_web::test]
async fn a_wrong_content_type_is_a_415_problem() {
    let (status, content_type, body) =
        call("text/plain", r#"{"email": "a@b.c", "seats": 1}"#).await;
    assert_eq!(status, 415);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["status"], 415);
}

#[actix_web::test]
async fn an_oversized_body_is_a_413_problem() {
    let huge = format!(r#"{{"email": "{}", "seats": 1}}"#, "a".repeat(4096));
    let (status, content_type, body) = call("application/json", huge).await;
    assert_eq!(status, 413);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["title"], "Payload Too Large");
}

#[actix_web::test]
async fn a_valid_body_passes() {
    let service = test::init_service(
        App::new()
            .app_data(errors::json_config(1024))
            .route("/signup", web::post().to(accept_signup)),
    )
    .await;
    let request = test::TestRequest::post()
        .uri("/signup")
        .set_json(serde_json::json!({"email": "a@b.c", "seats": 2}))
        .to_request();
    let response = test::call_service(&service, request).await;
    assert_eq!(response.status(), 200);
}
