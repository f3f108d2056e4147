//! Registration and email verification: one answer whether the email is taken or not, a
//! verification link that works once, weak passwords and bad emails refused.
use std::time::Duration;

use serde_json::json;

use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn registration_sends_a_verification_link_that_works_once() {
    let app = TestApp::spawn().await;
    register(&app, "Ada@Example.com").await;

    let mail = mail_to(&app, "ada@example.com", "Verify your email").await;
    let token = token_in(&mail);
    assert_eq!(token.len(), 43, "{token}");
    let (access, _) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    let me = call(&app, "GET", "/me", Some(&access), None).await;
    assert_eq!(me.body["email_verified"], false);

    let verified = post(&app, "/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!(verified.status, 204);
    let me = call(&app, "GET", "/me", Some(&access), None).await;
    assert_eq!(me.body["email"], "ada@example.com");
    assert_eq!(me.body["email_verified"], true);

    let again = post(&app, "/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.problem_type(),
        "urn:ironclad:problem:invalid-or-expired-token"
    );
    assert_eq!(events(&app, "registered").await, 1);
    assert_eq!(events(&app, "email_verified").await, 1);
    // Only the hash is stored.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM email_tokens WHERE token_hash = sha256('{token}'::bytea)"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn an_expired_verification_link_is_refused() {
    let app = TestApp::spawn_with(&[("AUTH_EMAIL_VERIFICATION_TTL_SECS", "1")]).await;
    register(&app, "ada@example.com").await;
    let token = token_in(&mail_to(&app, "ada@example.com", "Verify").await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = post(&app, "/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn registering_a_taken_email_answers_the_same_and_tells_the_owner() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "ada@example.com", "password": PASSWORD});
    let first = post(&app, "/auth/register", None, body.clone()).await;
    let second = post(
        &app,
        "/auth/register",
        None,
        json!({"email": "ADA@example.com", "password": "another long passphrase"}),
    )
    .await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.body, second.body, "no account enumeration");
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    mail_to(&app, "ada@example.com", "Your Ironclad account").await;
    // The original password still works; the second one does not.
    assert_eq!(login(&app, "ada@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        login(&app, "ada@example.com", "another long passphrase")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn weak_passwords_and_bad_emails_are_refused() {
    let app = TestApp::spawn().await;
    for (email, password, field) in [
        ("ada@example.com", "short", "password"),
        ("ada@example.com", "123qweasdzxc", "password"),
        ("ada@example.com", "123QWEASDZXC", "password"),
        // Long enough, but guessed in no time (the old common-password list let these through).
        ("ada@example.com", "aaaaaaaaaaaa", "password"),
        ("ada@example.com", "123456789012", "password"),
        ("ada@example.com", "passwordpassword", "password"),
        ("ada@example.com", "ironclad1234", "password"),
        // Built from the address.
        ("ada.lovelace@example.com", "adalovelace1815", "password"),
        ("ada@example.com", &"x".repeat(129), "password"),
        ("not-an-email", PASSWORD, "email"),
    ] {
        let r = post(
            &app,
            "/auth/register",
            None,
            json!({"email": email, "password": password}),
        )
        .await;
        assert_eq!(r.status, 422, "{password}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], field);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    // The refusal says why, in zxcvbn's words.
    let r = post(
        &app,
        "/auth/register",
        None,
        json!({"email": "ada@example.com", "password": "aaaaaaaaaaaa"}),
    )
    .await;
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("password is too easy to guess. "),
        "{detail}"
    );
    assert!(detail.to_lowercase().contains("repeat"), "{detail}");
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
}
