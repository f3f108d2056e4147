//! Accounts and sessions over real HTTP: registration, verification, login, refresh rotation,
//! logout, password reset and change, rate limits, sessions, admins and the audit trail.
use std::time::Duration;

use sea_orm::ConnectionTrait;
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
    }
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn login_without_mfa_returns_working_tokens() {
    let app = TestApp::spawn().await;
    register(&app, "ada@example.com").await;
    let r = login(&app, "ada@example.com", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    let (access, refresh) = tokens_of(&r);
    assert_eq!(refresh.len(), 43);

    let c = claims(&access);
    assert_eq!(c["aal"], "aal1");
    assert_eq!(c["amr"], json!(["pwd"]));
    assert_eq!(c["iss"], "ironclad");
    assert_eq!(c["aud"], "ironclad-api");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    assert!(c.get("mfa_time").is_none());

    let me = call(&app, "GET", "/me", Some(&access), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["role"], "user");
    assert_eq!(me.body["mfa_enabled"], false);
    assert_eq!(me.body["session"]["id"], c["sid"]);
    assert_eq!(events(&app, "login_succeeded").await, 1);
    // The refresh token is stored only as its hash.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM refresh_tokens WHERE token_hash = sha256('{refresh}'::bytea)"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    register(&app, "ada@example.com").await;
    let wrong = login(&app, "ada@example.com", "not the password at all").await;
    let unknown = login(&app, "nobody@example.com", "not the password at all").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(
        wrong.problem_type(),
        "urn:ironclad:problem:invalid-credentials"
    );
    assert_eq!(events(&app, "login_failed").await, 2);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM auth_events WHERE event = 'login_failed' AND user_id IS NOT NULL"
        )
        .await,
        1
    );
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(r#"ironclad_logins_total{outcome="invalid_credentials"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_login_rehashes_a_password_stored_with_old_parameters() {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let app = TestApp::spawn().await;
    let old = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes())
    .unwrap()
    .to_string();
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "INSERT INTO users (id, email, password_hash) VALUES (gen_random_uuid(), 'old@example.com', $1)",
            [old.into()],
        ))
        .await
        .unwrap();
    assert_eq!(login(&app, "old@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%'"
        )
        .await,
        1
    );
    assert_eq!(login(&app, "old@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = TestApp::spawn().await;
    let (access, first) = signed_in(&app, "ada@example.com").await;

    let rotated = post(&app, "/auth/refresh", None, json!({"refresh_token": first})).await;
    let (new_access, second) = tokens_of(&rotated);
    assert_ne!(first, second);
    assert_eq!(claims(&new_access)["sid"], claims(&access)["sid"]);

    // The spent token replayed (stolen?): refused, and the whole session dies with it.
    let replay = post(&app, "/auth/refresh", None, json!({"refresh_token": first})).await;
    assert_eq!(replay.status, 401);
    assert_eq!(
        replay.problem_type(),
        "urn:ironclad:problem:invalid-refresh-token"
    );
    let after = post(
        &app,
        "/auth/refresh",
        None,
        json!({"refresh_token": second}),
    )
    .await;
    assert_eq!(after.status, 401, "the legitimate holder's token died too");
    let me = call(&app, "GET", "/me", Some(&new_access), None).await;
    assert_eq!(me.status, 401);
    assert_eq!(events(&app, "refresh_reuse_detected").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE revoked_reason = 'refresh_token_reuse'")
            .await,
        1
    );
    let unknown = post(
        &app,
        "/auth/refresh",
        None,
        json!({"refresh_token": "nope"}),
    )
    .await;
    assert_eq!(unknown.status, 401);
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_all_ends_every_one() {
    let app = TestApp::spawn().await;
    let (a1, r1) = signed_in(&app, "ada@example.com").await;
    let (a2, r2) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    let (a3, r3) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);

    let out = post(&app, "/auth/logout", None, json!({"refresh_token": r1})).await;
    assert_eq!(out.status, 204);
    assert_eq!(
        post(&app, "/auth/refresh", None, json!({"refresh_token": r1}))
            .await
            .status,
        401
    );
    assert_eq!(call(&app, "GET", "/me", Some(&a1), None).await.status, 401);
    assert_eq!(call(&app, "GET", "/me", Some(&a2), None).await.status, 200);

    let no_token = call(&app, "POST", "/auth/logout-all", None, None).await;
    assert_eq!(no_token.status, 401);
    assert!(no_token.header("www-authenticate").starts_with("Bearer"));
    let all = call(&app, "POST", "/auth/logout-all", Some(&a2), None).await;
    assert_eq!(all.status, 204);
    for (access, refresh) in [(&a2, &r2), (&a3, &r3)] {
        assert_eq!(
            call(&app, "GET", "/me", Some(access), None).await.status,
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
    }
    assert_eq!(events(&app, "logout").await, 1);
    assert_eq!(events(&app, "logout_all").await, 1);
}

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

    let weak = post(
        &app,
        "/auth/password/reset",
        None,
        json!({"token": token, "password": "short"}),
    )
    .await;
    assert_eq!(
        weak.status, 422,
        "a refused password does not spend the token"
    );
    let new_password = "a brand new passphrase";
    let reset = post(
        &app,
        "/auth/password/reset",
        None,
        json!({"token": token, "password": new_password}),
    )
    .await;
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
    let again = post(
        &app,
        "/auth/password/reset",
        None,
        json!({"token": token, "password": "yet another passphrase"}),
    )
    .await;
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
            app: app.state.clone(),
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
async fn an_expired_reset_link_is_refused() {
    let app = TestApp::spawn_with(&[("AUTH_PASSWORD_RESET_TTL_SECS", "1")]).await;
    register(&app, "ada@example.com").await;
    post(
        &app,
        "/auth/password/forgot",
        None,
        json!({"email": "ada@example.com"}),
    )
    .await;
    let token = token_in(&mail_to(&app, "ada@example.com", "Reset your password").await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = post(
        &app,
        "/auth/password/reset",
        None,
        json!({"token": token, "password": "a brand new passphrase"}),
    )
    .await;
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

#[tokio::test]
async fn sessions_can_be_listed_and_ended() {
    let app = TestApp::spawn().await;
    let (mine, _) = signed_in(&app, "ada@example.com").await;
    let (other, other_refresh) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    let (stranger, _) = signed_in(&app, "eve@example.com").await;

    let list = call(&app, "GET", "/me/sessions", Some(&mine), None).await;
    assert_eq!(list.status, 200);
    let sessions = list.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], claims(&mine)["sid"]);

    let other_id = claims(&other)["sid"].as_str().unwrap().to_owned();
    let by_stranger = call(
        &app,
        "DELETE",
        &format!("/me/sessions/{other_id}"),
        Some(&stranger),
        None,
    )
    .await;
    assert_eq!(
        by_stranger.status, 404,
        "someone else's session is not found"
    );
    let ended = call(
        &app,
        "DELETE",
        &format!("/me/sessions/{other_id}"),
        Some(&mine),
        None,
    )
    .await;
    assert_eq!(ended.status, 204);
    assert_eq!(
        call(&app, "GET", "/me", Some(&other), None).await.status,
        401
    );
    assert_eq!(
        post(
            &app,
            "/auth/refresh",
            None,
            json!({"refresh_token": other_refresh})
        )
        .await
        .status,
        401
    );
    let list = call(&app, "GET", "/me/sessions", Some(&mine), None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(events(&app, "session_revoked").await, 1);
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
async fn the_create_admin_command_runs_without_stdin() {
    // Runs the real binary. Note: with a CARGO_TARGET_DIR shared by several checkouts of this
    // package, another checkout's build may replace `target/debug/ironclad` during the run.
    let app = TestApp::spawn().await;
    let database: String = {
        let row = app
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT current_database()",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    };
    let mut url = url::Url::parse(
        &std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )
    .unwrap();
    url.set_path(&database);
    let run = |email: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ironclad"))
            .args(["create-admin", "--email", email])
            .env("IRONCLAD_ADMIN_PASSWORD", PASSWORD)
            .env("DATABASE_URL", url.as_str())
            .env("APP_ENV", "test")
            .env("SMTP_URL", "sink")
            .env(
                "TEMPLATES_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            )
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the binary runs")
    };
    let out = run("root@example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !run("root@example.com").status.success(),
        "an existing email is refused"
    );
    assert!(!run("not-an-email").status.success());
    let (admin, _) = tokens_of(&login(&app, "root@example.com", PASSWORD).await);
    assert_eq!(claims(&admin)["role"], "admin");
}

#[tokio::test]
async fn require_role_admits_only_admins_by_their_current_role() {
    let app = TestApp::spawn().await;
    let password = secrecy::SecretString::from(PASSWORD.to_owned());
    ironclad::auth::accounts::create_admin(&app.db, "root@example.com", &password)
        .await
        .unwrap();
    assert!(
        ironclad::auth::accounts::create_admin(&app.db, "root@example.com", &password)
            .await
            .is_err()
    );

    let (admin, _) = tokens_of(&login(&app, "root@example.com", PASSWORD).await);
    assert_eq!(claims(&admin)["role"], "admin");
    let me = call(&app, "GET", "/me", Some(&admin), None).await;
    assert_eq!(me.body["email_verified"], true);
    let list = call(&app, "GET", "/admin/auth-events", Some(&admin), None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "admin_created")
    );

    let (user, _) = signed_in(&app, "ada@example.com").await;
    let refused = call(&app, "GET", "/admin/auth-events", Some(&user), None).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.problem_type(), "urn:ironclad:problem:forbidden");
    // A forged role claim does not help: the guard reads the role from the database.
    let forged = resign(&user, |c| c["role"] = "admin".into());
    assert_eq!(
        call(&app, "GET", "/admin/auth-events", Some(&forged), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(&app, "GET", "/admin/auth-events", None, None)
            .await
            .status,
        401
    );
    // A demoted admin loses access at once, even with an unexpired admin token.
    app.db
        .execute_unprepared("UPDATE users SET role = 'user' WHERE email = 'root@example.com'")
        .await
        .unwrap();
    assert_eq!(
        call(&app, "GET", "/admin/auth-events", Some(&admin), None)
            .await
            .status,
        403
    );
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
