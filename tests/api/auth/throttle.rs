//! Rate limits: registrations, reset requests and failed logins, per account and per IP, with
//! `Retry-After`; the throttle never deadlocks under concurrent attempts.
use std::time::Duration;

use serde_json::json;

use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn registrations_and_reset_requests_are_limited_with_retry_after() {
    let app = TestApp::spawn_with(&[
        ("AUTH_REGISTER_MAX_PER_IP", "2"),
        ("AUTH_FORGOT_PASSWORD_MAX_PER_IP", "6"),
        ("AUTH_FORGOT_PASSWORD_MAX_PER_ACCOUNT", "2"),
    ])
    .await;
    register(&app, "ada@example.com").await;
    register(&app, "bob@example.com").await;
    let third = post(
        &app,
        "/auth/register",
        None,
        json!({"email": "eve@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.problem_type(), "urn:ironclad:problem:rate-limited");
    let retry: u64 = third.header("retry-after").parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE email = 'eve@example.com'")
            .await,
        0
    );

    // Per address: a mailbox cannot be flooded with reset links, known or unknown alike.
    let forgot = |email: &'static str| {
        let app = &app;
        async move { post(app, "/auth/password/forgot", None, json!({"email": email})).await }
    };
    for email in ["ada@example.com", "nobody@example.com"] {
        assert_eq!(forgot(email).await.status, 202);
        assert_eq!(forgot(email).await.status, 202);
        let limited = forgot(email).await;
        assert_eq!(limited.status, 429, "{email}");
        assert!(limited.headers.contains_key("retry-after"));
    }
    // Per IP: the six requests above, refused ones included, used up this IP's allowance.
    assert_eq!(forgot("bob@example.com").await.status, 429);
    assert_eq!(
        app.count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'auth_password_reset'")
            .await,
        4
    );
    assert!(events(&app, "rate_limited").await >= 4);
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_with_retry_after() {
    let app = TestApp::spawn_with(&[("AUTH_LOGIN_MAX_ATTEMPTS_PER_ACCOUNT", "3")]).await;
    register(&app, "ada@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            login(&app, "ada@example.com", "wrong password!!")
                .await
                .status,
            401
        );
    }
    // Locked: even the right password is not tried.
    let limited = login(&app, "ada@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.problem_type(), "urn:ironclad:problem:rate-limited");
    let retry: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Unknown accounts are limited alike (no enumeration through the limiter).
    for _ in 0..3 {
        login(&app, "nobody@example.com", "wrong password!!").await;
    }
    assert_eq!(
        login(&app, "nobody@example.com", "wrong password!!")
            .await
            .status,
        429
    );
    // The state is in Postgres, shared by every instance.
    assert_eq!(
        app.count("SELECT count(*) FROM auth_throttle WHERE key = 'login:account:ada@example.com' AND attempts > 3").await,
        1
    );
    assert!(events(&app, "rate_limited").await >= 2);
}

#[tokio::test]
async fn failed_logins_are_limited_per_ip_and_successes_do_not_count() {
    let app = TestApp::spawn_with(&[("AUTH_LOGIN_MAX_ATTEMPTS_PER_IP", "4")]).await;
    register(&app, "ada@example.com").await;
    for _ in 0..6 {
        assert_eq!(login(&app, "ada@example.com", PASSWORD).await.status, 200);
    }
    for i in 0..4 {
        let r = login(&app, &format!("user{i}@example.com"), "wrong password!!").await;
        assert_eq!(r.status, 401);
    }
    let limited = login(&app, "fresh@example.com", "wrong password!!").await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn concurrent_attempts_and_successes_on_the_same_keys_never_deadlock() {
    // What 64 logins to one account from one address do to the throttle, without the hashing:
    // counting locks both keys, a success then resets them. A reset locking both rows in one
    // statement deadlocked against the count under `just bench`.
    use ironclad::auth::throttle::{self, Limit};
    let app = TestApp::spawn().await;
    let window = Duration::from_secs(60);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let db = app.db.clone();
            tokio::spawn(async move {
                let account = Limit::account("login", "ada@example.com", 1_000_000);
                let ip = Limit::ip("login", Some("203.0.113.7"), 1_000_000);
                for _ in 0..40 {
                    throttle::attempt(&db, &[account.clone(), ip.clone()], window)
                        .await
                        .expect("counted");
                    throttle::succeeded(&db, &account, &ip)
                        .await
                        .expect("reset");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let left = app
        .count("SELECT coalesce(sum(attempts), 0) FROM auth_throttle WHERE key LIKE 'login:ip:%'")
        .await;
    assert_eq!(left, 0, "every attempt was given back");
}
