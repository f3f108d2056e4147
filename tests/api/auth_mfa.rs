//! TOTP MFA and the `require_mfa` guard over real HTTP. Codes are computed from the secret the
//! enrolment returned, like an authenticator app would. Within one test the codes of the current
//! and the next 30 s step are usable (±1 step); each is accepted once.
use std::time::Duration;

use ironclad::auth::config::{DEV_JWT_KID, DEV_JWT_SECRET};
use serde_json::json;

use crate::support::{TestApp, auth::*};

const BILLING: &str = "/billing/email";

async fn change_billing(app: &TestApp, token: Option<&str>) -> Response {
    call(
        app,
        "PUT",
        BILLING,
        token,
        Some(json!({"email": "Invoices@Example.com"})),
    )
    .await
}

#[tokio::test]
async fn totp_enrolment_end_to_end_then_login_needs_the_second_factor() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;

    let started = post(&app, "/me/mfa/totp", Some(&access), json!({})).await;
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
    mail_to(&app, "ada@example.com", "Two-factor authentication is on").await;
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
async fn a_totp_code_is_accepted_once() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &access).await;

    // The confirmation used the current step's code: replaying it is refused.
    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let replay = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": totp_code(&mfa.secret, 0)}),
    )
    .await;
    assert_eq!(replay.status, 401);
    assert_eq!(
        replay.problem_type(),
        "urn:ironclad:problem:invalid-mfa-code"
    );

    let next = totp_code(&mfa.secret, 1);
    let ok = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": next}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let replay = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": next}),
    )
    .await;
    assert_eq!(
        replay.status, 401,
        "the same code is refused in another login"
    );
    assert!(events(&app, "mfa_failed").await >= 2);

    // The outcomes are counted for monitoring.
    let metrics = metrics_text(&app).await;
    for line in [
        r#"ironclad_logins_total{outcome="ok"} 1"#,
        r#"ironclad_logins_total{outcome="mfa_required"} 2"#,
        r#"ironclad_mfa_verifications_total{outcome="ok"} 1"#,
        r#"ironclad_mfa_verifications_total{outcome="invalid_code"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn two_concurrent_verifies_of_one_code_let_exactly_one_through() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &access).await;
    let code = totp_code(&mfa.secret, 1);
    let mut challenges = Vec::new();
    for _ in 0..4 {
        challenges.push(login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone());
    }
    let attempts = challenges.iter().map(|challenge| {
        post(
            &app,
            "/auth/mfa/verify",
            None,
            json!({"mfa_token": challenge, "code": code}),
        )
    });
    let mut statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 401, 401, 401]);
    assert_eq!(
        events(&app, "login_succeeded").await,
        2,
        "one password login before MFA, one MFA login"
    );
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &access).await;
    let code = mfa.recovery_codes[3].to_lowercase();

    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let ok = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": code}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        claims(ok.body["access_token"].as_str().unwrap())["aal"],
        "aal2"
    );
    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let again = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": code}),
    )
    .await;
    assert_eq!(again.status, 401);
    assert_eq!(events(&app, "recovery_code_used").await, 1);
    mail_to(&app, "ada@example.com", "A recovery code was used").await;
}

#[tokio::test]
async fn an_mfa_token_dies_after_five_wrong_codes() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &access).await;

    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    for _ in 0..5 {
        let r = post(
            &app,
            "/auth/mfa/verify",
            None,
            json!({"mfa_token": challenge, "code": "000000"}),
        )
        .await;
        assert_eq!(r.problem_type(), "urn:ironclad:problem:invalid-mfa-code");
    }
    let dead = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": mfa.recovery_codes[0]}),
    )
    .await;
    assert_eq!(dead.status, 401);
    assert_eq!(
        dead.problem_type(),
        "urn:ironclad:problem:invalid-mfa-token"
    );
}

#[tokio::test]
async fn an_mfa_token_expires() {
    let app = TestApp::spawn_with(&[("AUTH_MFA_TOKEN_TTL_SECS", "1")]).await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &access).await;
    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": mfa.recovery_codes[0]}),
    )
    .await;
    assert_eq!(
        expired.problem_type(),
        "urn:ironclad:problem:invalid-mfa-token"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM recovery_codes WHERE used_at IS NOT NULL")
            .await,
        0,
        "a refused attempt does not spend the recovery code"
    );
}

#[tokio::test]
async fn require_mfa_refuses_every_bad_token_and_accepts_a_fresh_aal2() {
    let app = TestApp::spawn().await;
    let (aal1, _) = signed_in(&app, "ada@example.com").await;

    // No token at all.
    let r = change_billing(&app, None).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").starts_with("Bearer"));
    // A user without MFA is told to enrol.
    let r = change_billing(&app, Some(&aal1)).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:mfa-enrolment-required"
    );

    let mfa = enable_mfa(&app, &aal1).await;
    // The aal1 token of a user with MFA: step-up challenge (RFC 9470) with the route's window.
    let r = change_billing(&app, Some(&aal1)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:mfa-required");
    let challenge = r.header("www-authenticate");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"acr_values="aal2""#), "{challenge}");
    assert!(challenge.contains(r#"max_age="300""#), "{challenge}");
    assert_eq!(r.body["step_up_url"], "/api/v1/auth/step-up");

    let fresh = mfa.access_token.clone();
    // A stale aal2 token: correctly signed, live session, MFA 301 s ago.
    let stale = resign(&fresh, |c| c["mfa_time"] = (now() - 301).into());
    let r = change_billing(&app, Some(&stale)).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .contains("insufficient_user_authentication")
    );
    // Signed with another key (same kid), or an unknown kid.
    let other_key = mint(
        &claims(&fresh),
        "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMTIzNA==",
        DEV_JWT_KID,
        jsonwebtoken::Algorithm::HS256,
    );
    let unknown_kid = mint(
        &claims(&fresh),
        DEV_JWT_SECRET,
        "k-unknown",
        jsonwebtoken::Algorithm::HS256,
    );
    // `alg: none`, unsigned.
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        r#"{"alg":"none","typ":"JWT","kid":"dev-1"}"#,
    );
    let unsigned = format!("{header}.{}.", fresh.split('.').nth(1).unwrap());
    // Expired well beyond the leeway.
    let expired = resign(&fresh, |c| {
        c["exp"] = (now() - 120).into();
        c["iat"] = (now() - 1020).into();
    });
    // A claim changed after signing (the signature is kept).
    let mut parts: Vec<String> = fresh.split('.').map(str::to_owned).collect();
    let mut tampered_claims = claims(&fresh);
    tampered_claims["role"] = "admin".into();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        tampered_claims.to_string(),
    );
    let tampered = parts.join(".");
    // Wrong audience, correctly signed.
    let wrong_audience = resign(&fresh, |c| c["aud"] = "another-api".into());
    for (name, token) in [
        ("other key", &other_key),
        ("unknown kid", &unknown_kid),
        ("alg none", &unsigned),
        ("expired", &expired),
        ("tampered", &tampered),
        ("wrong audience", &wrong_audience),
    ] {
        let r = change_billing(&app, Some(token)).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        assert_eq!(
            r.problem_type(),
            "urn:ironclad:problem:unauthenticated",
            "{name}"
        );
        assert!(
            r.header("www-authenticate")
                .contains(r#"error="invalid_token""#),
            "{name}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE billing_email IS NOT NULL")
            .await,
        0
    );

    // The fresh aal2 token passes.
    let r = change_billing(&app, Some(&fresh)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["billing_email"], "invoices@example.com");
    assert_eq!(events(&app, "billing_email_changed").await, 1);
    mail_to(&app, "ada@example.com", "Your billing email was changed").await;

    // The same fresh token once its session is logged out: refused although unexpired.
    let (access2, refresh2) = tokens_of(
        &post(
            &app,
            "/auth/mfa/verify",
            None,
            json!({
                "mfa_token": login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"],
                "code": totp_code(&mfa.secret, 1),
            }),
        )
        .await,
    );
    assert_eq!(change_billing(&app, Some(&access2)).await.status, 200);
    post(
        &app,
        "/auth/logout",
        None,
        json!({"refresh_token": refresh2}),
    )
    .await;
    let r = change_billing(&app, Some(&access2)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:unauthenticated");
}

#[tokio::test]
async fn step_up_makes_an_old_token_fresh() {
    let app = TestApp::spawn().await;
    let (plain, _) = signed_in(&app, "eve@example.com").await;
    let r = post(
        &app,
        "/auth/step-up",
        Some(&plain),
        json!({"code": "123456"}),
    )
    .await;
    assert_eq!(r.status, 403, "no MFA, nothing to step up to");

    let (aal1, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &aal1).await;
    // An old token of this session, from before the confirmation.
    let stale = resign(&mfa.access_token, |c| c["mfa_time"] = (now() - 3600).into());
    assert_eq!(change_billing(&app, Some(&stale)).await.status, 401);

    let wrong = post(
        &app,
        "/auth/step-up",
        Some(&stale),
        json!({"code": "000000"}),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let stepped = post(
        &app,
        "/auth/step-up",
        Some(&stale),
        json!({"code": totp_code(&mfa.secret, 1)}),
    )
    .await;
    assert_eq!(stepped.status, 200, "{}", stepped.body);
    let token = stepped.body["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["aal"], "aal2");
    assert_eq!(c["sid"], claims(&aal1)["sid"]);
    assert!((now() - c["mfa_time"].as_i64().unwrap()).abs() < 10);
    assert_eq!(change_billing(&app, Some(token)).await.status, 200);
    assert_eq!(events(&app, "step_up").await, 1);
}

#[tokio::test]
async fn refreshing_keeps_the_mfa_time() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &access).await;
    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let verified = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": totp_code(&mfa.secret, 1)}),
    )
    .await;
    let (aal2, refresh) = tokens_of(&verified);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = post(
        &app,
        "/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    let (next, _) = tokens_of(&refreshed);
    assert_eq!(claims(&next)["aal"], "aal2");
    assert_eq!(claims(&next)["mfa_time"], claims(&aal2)["mfa_time"]);
    assert!(claims(&next)["iat"].as_i64() > claims(&aal2)["iat"].as_i64());
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

#[tokio::test]
async fn recovery_codes_are_regenerated_behind_require_mfa() {
    let app = TestApp::spawn().await;
    let (aal1, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &aal1).await;

    let r = post(&app, "/me/mfa/recovery-codes", Some(&aal1), json!({})).await;
    assert_eq!(r.status, 401);
    let r = post(
        &app,
        "/me/mfa/recovery-codes",
        Some(&mfa.access_token),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !mfa.recovery_codes.contains(c)));

    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let old = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": mfa.recovery_codes[0]}),
    )
    .await;
    assert_eq!(old.status, 401, "old codes are void");
    let new = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": fresh[0]}),
    )
    .await;
    assert_eq!(new.status, 200);
    assert_eq!(events(&app, "recovery_codes_regenerated").await, 1);
}

#[tokio::test]
async fn mfa_attempts_are_rate_limited_per_account() {
    let app = TestApp::spawn_with(&[("AUTH_MFA_MAX_ATTEMPTS_PER_ACCOUNT", "3")]).await;
    let (aal1, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &aal1).await;
    // The confirmation's attempt was refunded: three wrong codes fit, the fourth attempt does not.
    for _ in 0..3 {
        let r = post(
            &app,
            "/auth/step-up",
            Some(&aal1),
            json!({"code": "000000"}),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let limited = post(
        &app,
        "/auth/step-up",
        Some(&aal1),
        json!({"code": totp_code(&mfa.secret, 1)}),
    )
    .await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").parse::<u64>().unwrap() >= 1);
    // Across logins too: the counter is per account, not per mfa_token.
    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let r = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": mfa.recovery_codes[0]}),
    )
    .await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn a_token_signed_with_the_previous_key_is_accepted_during_rotation() {
    let new_key = "bmV3LXJvdGF0ZWQta2V5LW5ldy1yb3RhdGVkLWtleS0xMjM=";
    let app = TestApp::spawn_with(&[
        ("JWT_KID", "k2"),
        ("JWT_SECRET", new_key),
        ("JWT_PREVIOUS_KID", DEV_JWT_KID),
        ("JWT_PREVIOUS_SECRET", DEV_JWT_SECRET),
    ])
    .await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "k2");
    assert_eq!(header["alg"], "HS256");
    let old = resign(&access, |_| {});
    assert_eq!(call(&app, "GET", "/me", Some(&old), None).await.status, 200);
}
