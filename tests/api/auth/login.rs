//! Logging in with a password: working tokens, one answer for a wrong password and an unknown
//! email, old password hashes upgraded.
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::support::{TestApp, auth::*};

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
