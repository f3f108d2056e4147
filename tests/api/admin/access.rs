//! Who may use the operator tools: admins only, with a fresh second factor.
use crate::support::{
    TestApp,
    auth::{PASSWORD, assert_operator_only, call, enable_mfa, login, new_account, tokens_of},
};

#[tokio::test]
async fn operator_tools_need_the_admin_role_and_a_fresh_second_factor() {
    let app = TestApp::spawn().await;
    let routes = [
        ("GET", "/admin/jobs/dead", 200),
        ("POST", "/admin/jobs/dead/retry", 200),
    ];
    assert_operator_only(&app, &routes).await;

    // An admin's token from before MFA was enabled: aal1, so a step-up is asked for.
    ironclad::auth::users::create_admin(&app.db, new_account("ops@example.com", PASSWORD))
        .await
        .unwrap();
    let (no_mfa, _) = tokens_of(&login(&app, "ops@example.com", PASSWORD).await);
    // An admin who never enrolled is told to enrol first.
    let r = call(&app, "GET", "/admin/jobs/dead", Some(&no_mfa), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:mfa-enrolment-required"
    );
    // Enrolled since, the same aal1 token is asked to step up.
    enable_mfa(&app, &no_mfa).await;
    let r = call(&app, "GET", "/admin/jobs/dead", Some(&no_mfa), None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.problem_type(), "urn:ironclad:problem:mfa-required");

    // Only the admitted requests left a trace (the POST that found nothing to retry).
    assert_eq!(app.count("SELECT count(*) FROM admin_actions").await, 1);
}
