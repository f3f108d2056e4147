//! Dead jobs: listed with their last error, retried one at a time or all at once.
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::support::{
    TestApp,
    auth::{admin, admin_token, call},
    jobs::welcome,
};

#[tokio::test]
async fn dead_jobs_are_listed_with_their_error_and_retried_one_or_all() {
    let app = TestApp::spawn_with(&[("JOBS_MAX_ATTEMPTS", "1")]).await;
    let token = admin_token(&app).await;
    app.jobs_idle().await;
    let sent_before = app.sink.messages().len();
    // A mail outage: every send fails (sending claims its sent_emails row first).
    app.db
        .execute_unprepared(
            "CREATE FUNCTION outage() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'mail provider down'; END $$;
             CREATE TRIGGER outage BEFORE INSERT ON sent_emails FOR EACH ROW EXECUTE FUNCTION outage();",
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for to in ["a@example.com", "b@example.com", "c@example.com"] {
        let queued = app
            .layers
            .jobs
            .push(&app.db, &welcome(to), Default::default())
            .await
            .unwrap();
        let ironclad::jobs::Enqueued::New(id) = queued else {
            panic!("a new job")
        };
        ids.push(id);
    }
    app.eventually(
        "SELECT count(*) FROM apalis.jobs WHERE status = 'Killed'",
        3,
    )
    .await;

    let dead = admin(&app, "GET", "/jobs/dead?queue=email", &token)
        .await
        .body;
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 3);
    for job in dead {
        assert_eq!(job["queue"], "email");
        assert_eq!(
            (job["attempts"].as_i64(), job["max_attempts"].as_i64()),
            (Some(1), Some(1))
        );
        let error = job["last_error"].as_str().unwrap();
        assert!(error.contains("mail provider down"), "{error}");
        assert!(job["failed_at"].is_string());
    }
    assert_eq!(
        admin(&app, "GET", "/jobs/dead?queue=other", &token)
            .await
            .body,
        json!([])
    );

    // The outage ends; one job is retried by hand and runs again.
    app.db
        .execute_unprepared("DROP TRIGGER outage ON sent_emails")
        .await
        .unwrap();
    let retried = admin(
        &app,
        "POST",
        &format!("/jobs/dead/{}/retry", ids[0]),
        &token,
    )
    .await;
    assert_eq!(retried.body["id"], ids[0].as_str());
    assert!(
        retried.body["last_error"]
            .as_str()
            .unwrap()
            .contains("mail provider down")
    );
    app.eventually(
        &format!(
            "SELECT count(*) FROM apalis.jobs WHERE id = '{}' AND status = 'Done' AND attempts = 1",
            ids[0]
        ),
        1,
    )
    .await;
    // Not dead any more: a second retry finds nothing to do.
    let again = call(
        &app,
        "POST",
        &format!("/admin/jobs/dead/{}/retry", ids[0]),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(again.status, 404, "{}", again.body);

    // The rest, all at once.
    let all = admin(&app, "POST", "/jobs/dead/retry", &token).await.body;
    assert_eq!(all["retried"], 2);
    app.jobs_idle().await;
    let mut recipients: Vec<String> = app.sink.messages()[sent_before..]
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["a@example.com", "b@example.com", "c@example.com"]
    );
    assert_eq!(
        admin(&app, "GET", "/jobs/dead", &token).await.body,
        json!([])
    );
    // What each retry found is kept in the audit trail.
    assert_eq!(
        app.count("SELECT count(*) FROM admin_actions WHERE action LIKE 'dead_job%' AND details::text LIKE '%mail provider down%'")
            .await,
        2
    );
}
