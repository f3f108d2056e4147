//! The second step of a login (`/auth/mfa/verify`): each code is accepted once, even by concurrent
//! verifies; an mfa_token dies after five wrong codes (however many arrive at once), or expires; attempts are limited per
//! account.
use std::time::Duration;

use serde_json::json;

use crate::support::{TestApp, auth::*};

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
async fn ten_concurrent_wrong_codes_get_at_most_five_checked() {
    let app = TestApp::spawn_with(&[("AUTH_MFA_MAX_ATTEMPTS_PER_ACCOUNT", "100")]).await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    enable_mfa(&app, &access).await;
    for round in 0..3 {
        let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
        let guesses = (0..10).map(|i| {
            let body = json!({"mfa_token": challenge, "code": format!("00000{i}")});
            let app = &app;
            async move { post(app, "/auth/mfa/verify", None, body).await }
        });
        let answers = futures_util::future::join_all(guesses).await;
        let checked = answers
            .iter()
            .filter(|r| r.problem_type() == "urn:ironclad:problem:invalid-mfa-code")
            .count();
        let refused = answers
            .iter()
            .filter(|r| r.problem_type() == "urn:ironclad:problem:invalid-mfa-token")
            .count();
        assert_eq!((checked, refused), (5, 5), "round {round}");
    }
    assert_eq!(events(&app, "mfa_failed").await, 15);
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
