//! Admins: the `create-admin` command, and `require_role` reading the current role from the
//! database.
use sea_orm::ConnectionTrait;

use crate::support::{TestApp, auth::*};

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
    ironclad::auth::users::create_admin(
        &app.db,
        crate::support::auth::new_account("root@example.com", PASSWORD),
    )
    .await
    .unwrap();
    assert!(
        ironclad::auth::users::create_admin(
            &app.db,
            crate::support::auth::new_account("root@example.com", PASSWORD)
        )
        .await
        .is_err()
    );

    let (admin, _) = tokens_of(&login(&app, "root@example.com", PASSWORD).await);
    assert_eq!(claims(&admin)["role"], "admin");
    let me = call(&app, "GET", "/me", Some(&admin), None).await;
    assert_eq!(me.body["email_verified"], true);
    let admin = enable_mfa(&app, &admin).await.access_token;
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
