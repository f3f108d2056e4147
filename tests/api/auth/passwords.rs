//! Passwords: a reset link that is single use and ends every session, sent by a job once however
//! often it runs, refused once expired; a change needs the current password.
use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn password_reset_is_single_use_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let (access, refresh) = signed_in(&app, "ada@example.com").await;

    let known = post(
        &app,
        "/auth/password/forgot",
        None,
        json!({"email": "ada@example.com"}),
    )
    .await;
    let unknown = post(
        &app,
        "/auth/password/forgot",
        None,
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!((known.status, unknown.status), (202, 202));
    assert_eq!(known.body, unknown.body);
    let token = token_in(&mail_to(&app, "ada@example.com", "Reset your password").await);

    let weak = reset_password(&app, &token, "short").await;
    assert_eq!(
        weak.status, 422,
        "a refused password does not spend the token"
    );
    let new_password = "a brand new passphrase";
    let reset = reset_password(&app, &token, new_password).await;
    assert_eq!(reset.status, 204, "{}", reset.body);

    assert_eq!(
        call(&app, "GET", "/me", Some(&access), None).await.status,
        401
    );
    assert_eq!(
        post(
            &app,
            "/auth/refresh",
            None,
            json!({"refresh_token": refresh})
        )
        .await
        .status,
        401
    );
    assert_eq!(login(&app, "ada@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        login(&app, "ada@example.com", new_password).await.status,
        200
    );
    let again = reset_password(&app, &token, "yet another passphrase").await;
    assert_eq!(again.status, 400);
    mail_to(&app, "ada@example.com", "Your password was reset").await;
    assert_eq!(events(&app, "password_reset").await, 1);

    // Nothing was ever sent to the unknown address; the known one's request is audited.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.sink
            .messages()
            .iter()
            .all(|m| !m.to.iter().any(|t| t == "nobody@example.com"))
    );
    assert_eq!(events(&app, "password_reset_requested").await, 1);
}

#[tokio::test]
async fn a_reset_request_is_a_queued_job_that_sends_one_email_however_often_it_runs() {
    let app = TestApp::spawn().await;
    register(&app, "ada@example.com").await;
    for email in ["ada@example.com", "nobody@example.com"] {
        let r = post(&app, "/auth/password/forgot", None, json!({"email": email})).await;
        assert_eq!(r.status, 202);
    }
    // Both requests are durable jobs, known account or not: the request did nothing else.
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'auth_password_reset'")
            .await,
        2
    );
    mail_to(&app, "ada@example.com", "Reset your password").await;
    let job_id: String = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT id FROM apalis.jobs WHERE job_type = 'auth_password_reset' \
             AND convert_from(job, 'UTF8')::jsonb ->> 'email' = 'ada@example.com'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();

    // The queue runs a job at least once: a rerun of the same request adds no token and no email.
    use ironclad::{
        auth::jobs::RequestPasswordReset,
        jobs::{Job, JobContext},
    };
    for attempt in 2..=3 {
        let rerun = RequestPasswordReset {
            email: "ada@example.com".into(),
            ip: None,
            user_agent: None,
        };
        let ctx = JobContext {
            state: app.layers.auth.clone(),
            job_id: job_id.clone(),
            attempt,
        };
        rerun.run(ctx).await.expect("the rerun succeeds");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resets = |app: &TestApp| {
        app.sink
            .messages()
            .iter()
            .filter(|m| {
                m.subject
                    .as_deref()
                    .unwrap_or("")
                    .contains("Reset your password")
            })
            .count()
    };
    assert_eq!(resets(&app), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM email_tokens WHERE purpose = 'password_reset'")
            .await,
        1
    );
    assert_eq!(events(&app, "password_reset_requested").await, 1);
    let mail = mail_to(&app, "ada@example.com", "Reset your password").await;
    assert_eq!(
        mail.message_id.as_deref(),
        Some(format!("<password-reset-{job_id}@ironclad.localhost>").as_str())
    );
}

#[tokio::test]
async fn an_expired_reset_link_is_refused() {
    let app = TestApp::spawn_with(&[("AUTH_PASSWORD_RESET_TTL_SECS", "1")]).await;
    register(&app, "ada@example.com").await;
    let token = reset_link(&app, "ada@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = reset_password(&app, &token, "a brand new passphrase").await;
    assert_eq!(r.status, 400);
    assert_eq!(login(&app, "ada@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let (here, _) = signed_in(&app, "ada@example.com").await;
    let (elsewhere, elsewhere_refresh) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);

    let wrong = post(
        &app,
        "/me/password",
        Some(&here),
        json!({"current_password": "not my password!", "new_password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let weak = post(
        &app,
        "/me/password",
        Some(&here),
        json!({"current_password": PASSWORD, "new_password": "123qweasdzxc"}),
    )
    .await;
    assert_eq!(weak.status, 422);
    let ok = post(
        &app,
        "/me/password",
        Some(&here),
        json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(ok.status, 204, "{}", ok.body);

    assert_eq!(
        call(&app, "GET", "/me", Some(&here), None).await.status,
        200
    );
    assert_eq!(
        call(&app, "GET", "/me", Some(&elsewhere), None)
            .await
            .status,
        401
    );
    assert_eq!(
        post(
            &app,
            "/auth/refresh",
            None,
            json!({"refresh_token": elsewhere_refresh})
        )
        .await
        .status,
        401
    );
    assert_eq!(
        login(&app, "ada@example.com", "a brand new passphrase")
            .await
            .status,
        200
    );
    assert_eq!(events(&app, "password_changed").await, 1);
    mail_to(&app, "ada@example.com", "Your password was changed").await;
}
