//! Pre-account takeover: an address registered by someone who does not own it. The squatter may
//! sign in, but not buy, enrol MFA or build anything the owner would inherit; the owner's password
//! reset takes the account back whole.
use serde_json::json;

use crate::support::{TestApp, auth::*, billing::BillingApp, billing::PRO};

const VERIFICATION_REQUIRED: &str = "urn:ironclad:problem:email-verification-required";

#[tokio::test]
async fn an_unverified_account_may_sign_in_but_not_buy_or_enrol_mfa() {
    let app = BillingApp::spawn().await;
    let (squatter, _) = signed_in_unverified(&app, "ada@example.com").await;
    assert_eq!(
        call(&app, "GET", "/me", Some(&squatter), None).await.status,
        200
    );

    let enrol = post(
        &app,
        "/me/mfa/totp",
        Some(&squatter),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(enrol.status, 403, "{}", enrol.body);
    assert_eq!(enrol.problem_type(), VERIFICATION_REQUIRED);
    let confirm = post(
        &app,
        "/me/mfa/totp/confirm",
        Some(&squatter),
        json!({"code": "123456"}),
    )
    .await;
    assert_eq!(confirm.problem_type(), VERIFICATION_REQUIRED);
    assert_eq!(app.count("SELECT count(*) FROM user_totp").await, 0);

    let body = json!({"product_id": PRO, "quantity": 1});
    let refused = app.post_checkout(&squatter, Some("first-try"), &body).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.problem_type(), VERIFICATION_REQUIRED);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    // The refusal claimed no Idempotency-Key: once verified, the same key buys.
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
    verified(&app, "ada@example.com").await;
    let bought = app.post_checkout(&squatter, Some("first-try"), &body).await;
    assert_eq!(bought.status, 201, "{}", bought.body);
}

#[tokio::test]
async fn a_new_verification_link_is_sent_only_to_an_unverified_account_and_the_answer_is_the_same()
{
    let app = TestApp::spawn().await;
    register(&app, "ada@example.com").await;
    signed_in(&app, "bob@example.com").await;
    let mut answers = Vec::new();
    for email in ["ada@example.com", "bob@example.com", "nobody@example.com"] {
        let r = post(
            &app,
            "/auth/verify-email/resend",
            None,
            json!({"email": email}),
        )
        .await;
        assert_eq!(r.status, 202, "{email}: {}", r.body);
        answers.push(r.body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    app.jobs_idle().await;
    let links: Vec<_> = app
        .sink
        .messages()
        .into_iter()
        .filter(|m| m.subject.as_deref() == Some("Verify your email address"))
        .collect();
    let to: Vec<&str> = links.iter().map(|m| m.to[0].as_str()).collect();
    // Ada's registration email, her new link, and Bob's registration email: nothing else.
    assert_eq!(
        to.iter().filter(|t| **t == "ada@example.com").count(),
        2,
        "{to:?}"
    );
    assert_eq!(
        to.iter().filter(|t| **t == "bob@example.com").count(),
        1,
        "{to:?}"
    );
    assert!(!to.contains(&"nobody@example.com"));

    // The new link verifies.
    let link = links.iter().rev().find(|m| m.to[0] == "ada@example.com");
    let token = token_in(link.unwrap());
    let r = post(&app, "/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!(r.status, 204, "{}", r.body);

    let bad = post(
        &app,
        "/auth/verify-email/resend",
        None,
        json!({"email": "not-an-email"}),
    )
    .await;
    assert_eq!(bad.status, 422);
}

#[tokio::test]
async fn asking_for_new_links_is_rate_limited_per_address() {
    let app = TestApp::spawn_with(&[("AUTH_VERIFY_EMAIL_RESEND_MAX_PER_ACCOUNT", "2")]).await;
    register(&app, "ada@example.com").await;
    let ask = || {
        post(
            &app,
            "/auth/verify-email/resend",
            None,
            json!({"email": "ada@example.com"}),
        )
    };
    assert_eq!(ask().await.status, 202);
    assert_eq!(ask().await.status, 202);
    let limited = ask().await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_owners_password_reset_removes_what_the_squatter_bound() {
    let app = TestApp::spawn().await;
    // The squatter's authenticator, from before verification was required to enrol one.
    let (squatter, squatter_refresh) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &squatter).await;
    app.sql("UPDATE users SET email_verified_at = NULL").await;

    let token = reset_link(&app, "ada@example.com").await;
    let reset = reset_password(&app, &token, "plum tectonic nightjar ferry").await;
    assert_eq!(reset.status, 204, "{}", reset.body);

    // The owner signs in with the password alone: no squatter's TOTP in the way.
    let owner = login(&app, "ada@example.com", "plum tectonic nightjar ferry").await;
    let (owner, _) = tokens_of(&owner);
    let me = call(&app, "GET", "/me", Some(&owner), None).await;
    assert_eq!(me.body["email_verified"], true);
    assert_eq!(me.body["mfa_enabled"], false);
    assert_eq!(app.count("SELECT count(*) FROM user_totp").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM recovery_codes").await, 0);
    // And nothing of the squatter's still works.
    assert_eq!(
        call(&app, "GET", "/me", Some(&mfa.access_token), None)
            .await
            .status,
        401
    );
    let refresh = post(
        &app,
        "/auth/refresh",
        None,
        json!({"refresh_token": squatter_refresh}),
    )
    .await;
    assert_eq!(refresh.status, 401);
    let code = post(
        &app,
        "/auth/step-up",
        Some(&owner),
        json!({"code": mfa.recovery_codes[0]}),
    )
    .await;
    assert_eq!(code.status, 403, "{}", code.body);
}

#[tokio::test]
async fn a_verified_accounts_reset_keeps_its_second_factor() {
    let app = TestApp::spawn().await;
    let (ada, _) = signed_in(&app, "ada@example.com").await;
    enable_mfa(&app, &ada).await;
    let token = reset_link(&app, "ada@example.com").await;
    let reset = reset_password(&app, &token, "plum tectonic nightjar ferry").await;
    assert_eq!(reset.status, 204, "{}", reset.body);
    let again = login(&app, "ada@example.com", "plum tectonic nightjar ferry").await;
    assert_eq!(again.body["mfa_required"], true, "{}", again.body);
}
