//! Who may use the operator tools: admins only, with a fresh second factor.
use crate::support::{
    auth::{PASSWORD, call, enable_mfa, login, now, resign, signed_in, tokens_of},
    billing::BillingApp,
};

const ROUTES: [(&str, &str); 6] = [
    ("GET", "/admin/jobs/dead"),
    ("POST", "/admin/jobs/dead/retry"),
    ("GET", "/admin/webhook-events"),
    ("POST", "/admin/webhook-events/evt_nope/replay"),
    ("GET", "/admin/stuck-orders"),
    ("POST", "/admin/stuck-orders/reconcile"),
];

#[tokio::test]
async fn operator_tools_need_the_admin_role_and_a_fresh_second_factor() {
    let app = BillingApp::spawn().await;
    ironclad::auth::users::create_admin(
        &app.db,
        crate::support::auth::new_account("root@example.com", PASSWORD),
    )
    .await
    .unwrap();
    let (no_mfa, _) = tokens_of(&login(&app, "root@example.com", PASSWORD).await);
    let fresh = enable_mfa(&app, &no_mfa).await.access_token;
    let stale = resign(&fresh, |c| c["mfa_time"] = (now() - 301).into());
    // A user with a fresh second factor is still not an admin.
    let (user, _) = signed_in(&app, "ada@example.com").await;
    let user = enable_mfa(&app, &user).await.access_token;

    for (method, path) in ROUTES {
        let anonymous = call(&app, method, path, None, None).await;
        assert_eq!(anonymous.status, 401, "{method} {path}");
        let r = call(&app, method, path, Some(&user), None).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:forbidden");
        let r = call(&app, method, path, Some(&stale), None).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:mfa-required");
        let r = call(&app, method, path, Some(&fresh), None).await;
        let expected = if path.contains("evt_nope") { 404 } else { 200 };
        assert_eq!(r.status, expected, "{method} {path}: {}", r.body);
    }
    // The admin's token from before MFA was enabled: aal1, so a step-up is asked for.
    let r = call(&app, "GET", "/admin/jobs/dead", Some(&no_mfa), None).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // An admin who never enrolled is told to enrol first.
    ironclad::auth::users::create_admin(
        &app.db,
        crate::support::auth::new_account("ops@example.com", PASSWORD),
    )
    .await
    .unwrap();
    let (unenrolled, _) = tokens_of(&login(&app, "ops@example.com", PASSWORD).await);
    let r = call(&app, "GET", "/admin/jobs/dead", Some(&unenrolled), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:mfa-enrolment-required"
    );
    // Refused requests did nothing.
    // Only the admitted requests left a trace (the two POSTs that found something to do, or not).
    assert_eq!(app.count("SELECT count(*) FROM admin_actions").await, 2);
}
