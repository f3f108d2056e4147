//! A bearer token alone cannot bind an authenticator, and a new password retires every credential
//! made with the old one.
use serde_json::json;

use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn binding_an_authenticator_needs_the_current_password() {
    let app = TestApp::spawn().await;
    let (stolen, _) = signed_in(&app, "ada@example.com").await;

    let bare = post(&app, "/me/mfa/totp", Some(&stolen), json!({})).await;
    assert_eq!(bare.status, 422, "{}", bare.body);
    assert_eq!(bare.body["errors"][0]["field"], "password");
    let wrong = post(
        &app,
        "/me/mfa/totp",
        Some(&stolen),
        json!({"password": "not the password at all"}),
    )
    .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(
        wrong.problem_type(),
        "urn:ironclad:problem:invalid-credentials"
    );
    assert_eq!(app.count("SELECT count(*) FROM user_totp").await, 0);
    assert_eq!(events(&app, "mfa_enrolment_started").await, 0);

    let started = post(
        &app,
        "/me/mfa/totp",
        Some(&stolen),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(events(&app, "mfa_enrolment_started").await, 1);
}

#[tokio::test]
async fn only_the_session_that_started_an_enrolment_confirms_it() {
    let app = TestApp::spawn().await;
    let (owner, _) = signed_in(&app, "ada@example.com").await;
    let (other, _) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    early_in_a_totp_step().await;
    let started = post(
        &app,
        "/me/mfa/totp",
        Some(&owner),
        json!({"password": PASSWORD}),
    )
    .await;
    let secret = started.body["secret"].as_str().unwrap().to_owned();
    let elsewhere = post(
        &app,
        "/me/mfa/totp/confirm",
        Some(&other),
        json!({"code": totp_code(&secret, 0)}),
    )
    .await;
    assert_eq!(elsewhere.status, 409, "{}", elsewhere.body);
    assert_eq!(
        elsewhere.problem_type(),
        "urn:ironclad:problem:mfa-enrolment-not-started"
    );
    // A pending secret older than ten minutes is not confirmable either.
    app.sql("UPDATE user_totp SET created_at = now() - interval '11 minutes'")
        .await;
    let late = post(
        &app,
        "/me/mfa/totp/confirm",
        Some(&owner),
        json!({"code": totp_code(&secret, 0)}),
    )
    .await;
    assert_eq!(late.status, 409, "{}", late.body);
}

#[tokio::test]
async fn enabling_mfa_ends_the_other_sessions_and_tells_the_owner() {
    let app = TestApp::spawn().await;
    let (mine, _) = signed_in(&app, "ada@example.com").await;
    let (thief, thief_refresh) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    let mfa = enable_mfa(&app, &mine).await;
    assert_eq!(
        call(&app, "GET", "/me", Some(&thief), None).await.status,
        401
    );
    let refreshed = post(
        &app,
        "/auth/refresh",
        None,
        json!({"refresh_token": thief_refresh}),
    )
    .await;
    assert_eq!(refreshed.status, 401);
    assert_eq!(
        call(&app, "GET", "/me", Some(&mfa.access_token), None)
            .await
            .status,
        200
    );
    let notice = mail_to(&app, "ada@example.com", "A new authenticator was added").await;
    assert!(
        notice.raw.contains("other sessions were signed out"),
        "{}",
        notice.raw
    );
}

#[tokio::test]
async fn a_password_change_retires_pending_reset_links_and_mfa_logins() {
    let app = TestApp::spawn().await;
    let (ada, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &ada).await;
    // Made with the old password: an MFA login waiting for its code, and a reset link.
    let pending = login(&app, "ada@example.com", PASSWORD).await;
    let mfa_token = pending.body["mfa_token"].as_str().unwrap().to_owned();
    let link = reset_link(&app, "ada@example.com").await;

    let changed = post(
        &app,
        "/me/password",
        Some(&mfa.access_token),
        json!({"current_password": PASSWORD, "new_password": "plum tectonic nightjar ferry"}),
    )
    .await;
    assert_eq!(changed.status, 204, "{}", changed.body);
    mail_to(&app, "ada@example.com", "Your password was changed").await;

    let code = totp_code(&mfa.secret, 1);
    let finished = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": mfa_token, "code": code}),
    )
    .await;
    assert_eq!(finished.status, 401, "{}", finished.body);
    assert_eq!(
        finished.problem_type(),
        "urn:ironclad:problem:invalid-mfa-token"
    );
    let overwrite = reset_password(&app, &link, "an attacker's chosen passphrase").await;
    assert_eq!(overwrite.status, 400, "{}", overwrite.body);
    let new_login = login(&app, "ada@example.com", "plum tectonic nightjar ferry").await;
    assert_eq!(new_login.body["mfa_required"], true, "{}", new_login.body);
}
