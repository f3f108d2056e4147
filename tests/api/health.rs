use crate::support::TestApp;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_is_ready_on_a_migrated_database() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "current");
}

/// Mid-rollout: a newer release migrated first. This build's pods stay ready until replaced.
#[tokio::test]
async fn readyz_stays_ready_when_the_schema_is_ahead_of_this_build() {
    let app = TestApp::spawn().await;
    app.sql(
        "INSERT INTO seaql_migrations (version, applied_at) \
         VALUES ('m20991231_000001_from_a_newer_release', 0)",
    )
    .await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

#[tokio::test]
async fn readyz_is_unavailable_while_a_migration_is_pending() {
    let app = TestApp::spawn().await;
    app.count("WITH gone AS (DELETE FROM seaql_migrations WHERE version = 'm20261123_000002_jobs' RETURNING 1) SELECT count(*) FROM gone")
        .await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("1 migration(s) pending"),
        "{body}"
    );
}

#[tokio::test]
async fn a_callers_request_id_is_echoed() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn a_request_id_is_made_when_missing_or_unsafe() {
    let app = TestApp::spawn().await;
    let first = app.get("/healthz").await;
    let second = app.get("/nope").await;
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|r| r.headers()["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    assert_ne!(ids[0], ids[1], "each request gets its own id");
    for id in &ids {
        uuid::Uuid::parse_str(id).expect("a generated id is a UUID");
    }
    // An id that could forge log lines is replaced, not echoed.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "evil\"} {\"admin\":true")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "got {id}");
}
