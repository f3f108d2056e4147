use std::time::Duration;

use ironclad::{jobs::JobOptions, mail::SendEmail};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn an_email_job_delivers_a_rendered_message_to_smtp() {
    let app = TestApp::spawn().await;
    let email = SendEmail {
        to: "ada@example.com".into(),
        template: "welcome".into(),
        context: json!({"name": "Ada", "app_url": "https://app.example.com"}),
        message_key: Some("welcome.user-1".into()),
    };
    app.layers
        .jobs
        .push(&app.db, &email, JobOptions::default())
        .await
        .unwrap();

    let inbox = app.sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(inbox.len(), 1);
    let mail = &inbox[0];
    assert_eq!(mail.to, vec!["ada@example.com"]);
    assert_eq!(mail.subject.as_deref(), Some("Welcome to Ironclad"));
    assert_eq!(
        mail.message_id.as_deref(),
        Some("<welcome.user-1@ironclad.localhost>")
    );
    assert!(mail.raw.contains("text/plain") && mail.raw.contains("text/html"));
    assert!(mail.raw.contains("Hi Ada"));

    // Development can read the same inbox over HTTP.
    let listed: serde_json::Value = app.get("/dev/mail").await.json().await.unwrap();
    assert_eq!(listed[0]["subject"], "Welcome to Ironclad");
}
