//! `require_mfa` and step-up: the guard takes only a fresh aal2 token (signed with the current key,
//! or the previous one during a rotation), step-up makes an old token fresh, and a refresh keeps
//! the time of the second factor.
use std::time::Duration;

use ironclad::auth::config::{DEV_JWT_KID, DEV_JWT_SECRET};
use serde_json::json;

use super::change_billing;
use crate::support::{TestApp, auth::*};

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
    assert_eq!(app.count("SELECT count(*) FROM org_billing").await, 0);

    // The fresh aal2 token passes.
    let r = change_billing(&app, Some(&fresh)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["billing_email"], "invoices@example.com");
    assert_eq!(
        app.count("SELECT count(*) FROM org_audit WHERE action = 'billing_email_changed'")
            .await,
        1
    );
    mail_to(&app, "ada@example.com", "billing email of").await;

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
