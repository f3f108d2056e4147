//! Security headers on every response (errors from guards included), `no-store` on anything a
//! credential was sent for, HSTS when configured, and CORS only for the configured origins.
use reqwest::{Method, header::HeaderMap};

use crate::support::{TestApp, auth::*};

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn assert_hardened(headers: &HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(header(headers, "x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        header(headers, "referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    let csp = header(headers, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
}

#[tokio::test]
async fn every_response_is_hardened_and_credentialed_ones_are_never_stored() {
    let app = TestApp::spawn().await;
    let (token, _) = signed_in(&app, "ada@example.com").await;

    let health = app.get("/health").await;
    assert_hardened(health.headers(), "health");
    assert_eq!(
        header(health.headers(), "content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(header(health.headers(), "strict-transport-security"), None);

    let me = call(&app, "GET", "/me", Some(&token), None).await;
    assert_eq!(me.status, 200);
    assert_hardened(&me.headers, "/me");
    assert_eq!(header(&me.headers, "cache-control"), Some("no-store"));
    let licences = call(&app, "GET", "/billing/licenses", Some(&token), None).await;
    assert_eq!(header(&licences.headers, "cache-control"), Some("no-store"));
    // A guard's refusal (an error, not a handler's response) is hardened too.
    let refused = call(&app, "GET", "/admin/auth-events", Some(&token), None).await;
    assert_eq!(refused.status, 403);
    assert_hardened(&refused.headers, "guard refusal");
    assert_eq!(header(&refused.headers, "cache-control"), Some("no-store"));
    let unknown = app.get("/nowhere").await;
    assert_hardened(unknown.headers(), "404");

    // The docs page may run its own scripts, and still cannot be framed.
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    let csp = header(docs.headers(), "content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

#[tokio::test]
async fn hsts_is_sent_when_configured() {
    let app = TestApp::spawn_with(&[("HTTP_HSTS_MAX_AGE_SECS", "600")]).await;
    let health = app.get("/health").await;
    assert_eq!(
        header(health.headers(), "strict-transport-security"),
        Some("max-age=600; includeSubDomains")
    );
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/v1/me"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn by_default_no_origin_may_read_the_api_cross_origin() {
    let app = TestApp::spawn().await;
    let (token, _) = signed_in(&app, "ada@example.com").await;
    let answer = preflight(&app, "https://evil.example").await;
    assert_eq!(
        header(answer.headers(), "access-control-allow-origin"),
        None
    );
    let read = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(read.headers(), "access-control-allow-origin"), None);
}

#[tokio::test]
async fn configured_origins_get_proper_preflight_answers_and_others_get_none() {
    let app = TestApp::spawn_with(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://app.example.com, http://localhost:3000",
    )])
    .await;
    let (token, _) = signed_in(&app, "ada@example.com").await;

    let answer = preflight(&app, "https://app.example.com").await;
    assert!(answer.status().is_success(), "{}", answer.status());
    let headers = answer.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let allowed = header(headers, "access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(
        header(headers, "access-control-allow-methods")
            .unwrap()
            .contains("GET")
    );
    assert_eq!(header(headers, "access-control-max-age"), Some("3600"));

    let read = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        header(read.headers(), "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let exposed = header(read.headers(), "access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    let other = preflight(&app, "https://evil.example").await;
    assert_eq!(header(other.headers(), "access-control-allow-origin"), None);
    // Same-origin requests carry Origin too; they are not turned away.
    let same = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .header("origin", app.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200);
}
