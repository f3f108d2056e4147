//! Every operator route, as the OpenAPI document lists them, needs the admin role *and* a fresh
//! second factor; a new `/admin` route is covered without anyone adding it to a list.
use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn every_admin_route_needs_the_role_and_a_fresh_second_factor() {
    let app = TestApp::spawn().await;
    let fresh = admin_token(&app).await;
    let stale = resign(&fresh, |c| c["mfa_time"] = (now() - 301).into());
    ironclad::auth::users::create_admin(&app.db, new_account("ops@example.com", PASSWORD))
        .await
        .unwrap();
    let (admin_without_mfa, _) = tokens_of(&login(&app, "ops@example.com", PASSWORD).await);
    let (user, _) = signed_in(&app, "ada@example.com").await;
    let user = enable_mfa(&app, &user).await.access_token;

    let routes = bearer_operations(&app, "/admin").await;
    assert!(
        routes.iter().any(|(_, path)| path == "/admin/auth-events"),
        "{routes:?}"
    );
    for (method, path) in &routes {
        let r = call(&app, method, path, None, None).await;
        assert_eq!(r.status, 401, "anonymous {method} {path}");
        let r = call(&app, method, path, Some(&user), None).await;
        assert_eq!(r.status, 403, "user {method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:forbidden");
        let r = call(&app, method, path, Some(&admin_without_mfa), None).await;
        assert_eq!(
            r.status, 403,
            "admin without MFA {method} {path}: {}",
            r.body
        );
        assert_eq!(
            r.problem_type(),
            "urn:ironclad:problem:mfa-enrolment-required"
        );
        let r = call(&app, method, path, Some(&stale), None).await;
        assert_eq!(r.status, 401, "stale admin {method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:mfa-required");
    }
    // And the fresh admin gets through (the audit trail, say).
    admin(&app, "GET", "/auth-events", &fresh).await;
}
