//! Every operator route, as the OpenAPI document lists them, needs the admin role *and* a fresh
//! second factor; a new `/admin` route is covered without anyone adding it to a list.
use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn every_admin_route_needs_the_role_and_a_fresh_second_factor() {
    let app = TestApp::spawn().await;
    let fresh = admin_token(&app).await;
    let outsiders = Outsiders::sign_in(&app, &fresh).await;
    let routes = bearer_operations(&app, "/admin").await;
    assert!(
        routes.iter().any(|(_, path)| path == "/admin/auth-events"),
        "{routes:?}"
    );
    for (method, path) in &routes {
        outsiders.assert_refused(&app, method, path).await;
    }
    // And the fresh admin gets through (the audit trail, say).
    admin(&app, "GET", "/auth-events", &fresh).await;
}
