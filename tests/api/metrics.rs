use ironclad::{jobs::JobOptions, mail::SendEmail};

use crate::support::TestApp;

#[tokio::test]
async fn metrics_count_requests_by_route_and_report_queue_depth() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/no/such/route").await;
    // A job due in an hour is queued, not yet run: it shows in the queue gauges.
    let later = SendEmail {
        to: "later@example.com".into(),
        template: "welcome".into(),
        context: serde_json::json!({"name": "L", "app_url": "u"}),
        message_key: None,
    };
    let options = JobOptions {
        delay: Some(std::time::Duration::from_secs(3600)),
        ..JobOptions::default()
    };
    app.layers
        .jobs
        .push(&app.db, &later, options)
        .await
        .unwrap();

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            r#"ironclad_http_requests_total{method="GET",route="/healthz",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(text.contains("ironclad_http_request_duration_seconds_bucket"));
    assert!(
        text.contains(r#"ironclad_jobs{queue="email",status="Pending"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = TestApp::spawn_with(&[("METRICS_TOKEN", "s3cret-scraper")]).await;
    let anonymous = app.get("/metrics").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let scraper = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-scraper")
        .send()
        .await
        .unwrap();
    assert_eq!(scraper.status(), 200);
}
