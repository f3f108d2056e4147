//! Turning TOTP on (enrol, confirm, then logins need the second factor) and off again.
use serde_json::json;

use super::change_billing;
use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn totp_enrolment_end_to_end_then_login_needs_the_second_factor() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;

    let started = post(
        &app,
        "/me/mfa/totp",
        Some(&access),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let secret = started.body["secret"].as_str().unwrap().to_owned();
    let uri = started.body["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Ironclad:ada%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}")));
    assert!(
        started.body["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    // Not active until confirmed: login still gives tokens, the secret is encrypted at rest.
    let me = call(&app, "GET", "/me", Some(&access), None).await;
    assert_eq!(me.body["mfa_enabled"], false);
    assert_eq!(
        login(&app, "ada@example.com", PASSWORD).await.body["token_type"],
        "Bearer"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM user_totp WHERE position(convert_to('{secret}', 'UTF8') in secret_encrypted) > 0"
        ))
        .await,
        0
    );

    let wrong = post(
        &app,
        "/me/mfa/totp/confirm",
        Some(&access),
        json!({"code": "000000"}),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.problem_type(),
        "urn:ironclad:problem:invalid-mfa-code"
    );
    let confirmed = post(
        &app,
        "/me/mfa/totp/confirm",
        Some(&access),
        json!({"code": totp_code(&secret, 0)}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let codes = confirmed.body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        claims(confirmed.body["access_token"].as_str().unwrap())["aal"],
        "aal2"
    );
    let me = call(&app, "GET", "/me", Some(&access), None).await;
    assert_eq!(me.body["mfa_enabled"], true);
    assert_eq!(events(&app, "mfa_enabled").await, 1);
    mail_to(&app, "ada@example.com", "A new authenticator was added").await;
    // Stored hashed only.
    let code = codes[0].as_str().unwrap().replace('-', "");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM recovery_codes WHERE code_hash = sha256('{code}'::bytea)"
        ))
        .await,
        1
    );
    let again = post(&app, "/me/mfa/totp", Some(&access), json!({})).await;
    assert_eq!(again.status, 409);

    // Now the password alone yields only an MFA challenge.
    let first = login(&app, "ada@example.com", PASSWORD).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["mfa_required"], true);
    assert!(first.body.get("access_token").is_none());
    let mfa_token = first.body["mfa_token"].as_str().unwrap();
    // The mfa_token is no access token.
    assert_eq!(
        call(&app, "GET", "/me", Some(mfa_token), None).await.status,
        401
    );

    let verified = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": mfa_token, "code": totp_code(&secret, 1)}),
    )
    .await;
    let (aal2, _) = tokens_of(&verified);
    let c = claims(&aal2);
    assert_eq!(c["aal"], "aal2");
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert!((now() - c["mfa_time"].as_i64().unwrap()).abs() < 10);
    // One challenge, one session.
    let reuse = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": mfa_token, "code": codes[1]}),
    )
    .await;
    assert_eq!(reuse.status, 401);
    assert_eq!(
        reuse.problem_type(),
        "urn:ironclad:problem:invalid-mfa-token"
    );
}

#[tokio::test]
async fn disabling_mfa_needs_a_fresh_session_and_a_code() {
    let app = TestApp::spawn().await;
    let (aal1, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &aal1).await;
    let code = mfa.recovery_codes[0].clone();

    let r = call(
        &app,
        "DELETE",
        "/me/mfa/totp",
        Some(&aal1),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(r.status, 401, "aal1 cannot remove MFA");
    let r = call(
        &app,
        "DELETE",
        "/me/mfa/totp",
        Some(&mfa.access_token),
        Some(json!({"code": "000000"})),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:invalid-mfa-code");
    let r = call(
        &app,
        "DELETE",
        "/me/mfa/totp",
        Some(&mfa.access_token),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);

    let me = call(&app, "GET", "/me", Some(&aal1), None).await;
    assert_eq!(me.body["mfa_enabled"], false);
    assert_eq!(app.count("SELECT count(*) FROM recovery_codes").await, 0);
    assert_eq!(
        change_billing(&app, Some(&mfa.access_token)).await.status,
        403
    );
    assert_eq!(events(&app, "mfa_disabled").await, 1);
    mail_to(&app, "ada@example.com", "Two-factor authentication is off").await;
    // Password alone logs in again.
    assert_eq!(
        login(&app, "ada@example.com", PASSWORD).await.body["token_type"],
        "Bearer"
    );
}
