use serde_json::json;

use super::{Person, call, join, org, person, role_of};
use crate::support::{TestApp, auth};

fn member_path(org: &str, who: &Person) -> String {
    format!("/orgs/{org}/members/{}", who.id)
}

/// `who` sets `target`'s role in `org`.
async fn set_role(
    app: &TestApp,
    who: &Person,
    org: &str,
    target: &Person,
    role: &str,
) -> auth::Response {
    let path = member_path(org, target);
    call(app, who, "PATCH", &path, Some(json!({"role": role}))).await
}

#[tokio::test]
async fn admins_manage_members_and_only_owners_touch_ownership() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    let cy = person(&app, "cy@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bob, "admin").await;
    join(&app, &acme, &cy, "member").await;

    let promoted = set_role(&app, &bob, &acme, &cy, "admin").await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.body["role"], "admin");
    assert_eq!(promoted.body["email"], "cy@example.com");
    let to_owner = set_role(&app, &bob, &acme, &cy, "owner").await;
    assert_eq!(to_owner.status, 403, "{}", to_owner.body);
    let demote_owner = set_role(&app, &bob, &acme, &ada, "member").await;
    assert_eq!(demote_owner.status, 403, "{}", demote_owner.body);
    let remove_owner = call(&app, &bob, "DELETE", &member_path(&acme, &ada), None).await;
    assert_eq!(remove_owner.status, 403, "{}", remove_owner.body);
    let bad_role = set_role(&app, &bob, &acme, &cy, "god").await;
    assert_eq!(bad_role.status, 400, "{}", bad_role.body);

    // The owner hands over: Cy becomes an owner, then Ada steps down.
    let handed = set_role(&app, &ada, &acme, &cy, "owner").await;
    assert_eq!(handed.status, 200, "{}", handed.body);
    let stepped_down = set_role(&app, &ada, &acme, &ada, "member").await;
    assert_eq!(stepped_down.status, 200, "{}", stepped_down.body);
    assert_eq!(role_of(&app, &acme, &ada).await.as_deref(), Some("member"));
    // Ada's old authority is gone at once.
    let r = call(
        &app,
        &ada,
        "PATCH",
        &format!("/orgs/{acme}"),
        Some(json!({"name": "Mine"})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // An admin removes a member; the removed member is an outsider from the next request on.
    let removed = call(&app, &bob, "DELETE", &member_path(&acme, &ada), None).await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!(
        call(&app, &ada, "GET", &format!("/orgs/{acme}"), None)
            .await
            .status,
        404
    );
    let unknown = call(&app, &bob, "DELETE", &member_path(&acme, &ada), None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.problem_type(),
        "urn:ironclad:problem:member-not-found"
    );
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM org_audit WHERE org_id = '{acme}' AND action IN ('member.role_changed', 'member.removed')")).await,
        4
    );
}

#[tokio::test]
async fn members_may_leave_but_the_last_owner_may_not() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bob, "member").await;

    for attempt in [
        call(&app, &ada, "DELETE", &member_path(&acme, &ada), None).await,
        set_role(&app, &ada, &acme, &ada, "admin").await,
    ] {
        assert_eq!(attempt.status, 409, "{}", attempt.body);
        assert_eq!(attempt.problem_type(), "urn:ironclad:problem:last-owner");
    }
    let left = call(&app, &bob, "DELETE", &member_path(&acme, &bob), None).await;
    assert_eq!(left.status, 204, "{}", left.body);
    assert_eq!(role_of(&app, &acme, &bob).await, None);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM org_audit WHERE org_id = '{acme}' AND action = 'member.left'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    for round in 0..8 {
        let acme = org(&app, &ada, &format!("acme-{round}")).await;
        join(&app, &acme, &bob, "owner").await;
        let (a, b) = if round % 2 == 0 {
            (&ada, &bob)
        } else {
            (&bob, &ada)
        };
        // Both at once: whichever runs second finds one owner left.
        let (a_demotes_b, b_demotes_a) = (member_path(&acme, b), member_path(&acme, a));
        let demotion = || Some(json!({"role": "member"}));
        let answers = tokio::join!(
            call(&app, a, "PATCH", &a_demotes_b, demotion()),
            call(&app, b, "PATCH", &b_demotes_a, demotion()),
        );
        let answers = [answers.0, answers.1];
        let statuses: Vec<_> = answers.iter().map(|r| r.status).collect();
        assert!(statuses.contains(&200), "round {round}: {statuses:?}");
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM org_members WHERE org_id = '{acme}' AND role = 'owner'"
            ))
            .await,
            1,
            "round {round}: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn handing_over_ownership_needs_a_fresh_second_factor_when_mfa_is_on() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bob, "admin").await;
    let mfa = auth::enable_mfa(&app, &ada.token).await;
    // The token from before the second factor is aal1: refused with a step-up challenge.
    for (method, path, body) in [
        (
            "PATCH",
            member_path(&acme, &bob),
            Some(json!({"role": "owner"})),
        ),
        ("DELETE", format!("/orgs/{acme}"), None),
    ] {
        let r = call(&app, &ada, method, &path, body).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:mfa-required");
    }
    assert_eq!(role_of(&app, &acme, &bob).await.as_deref(), Some("admin"));
    // Changes that do not touch ownership need no step-up.
    let demoted = set_role(&app, &ada, &acme, &bob, "member").await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    // With the fresh aal2 token it goes through; Bob has no MFA and needs none.
    let fresh = Person {
        token: mfa.access_token.clone(),
        id: ada.id.clone(),
    };
    let handed = set_role(&app, &fresh, &acme, &bob, "owner").await;
    assert_eq!(handed.status, 200, "{}", handed.body);
    let back = set_role(&app, &bob, &acme, &ada, "member").await;
    assert_eq!(back.status, 200, "{}", back.body);
    let deleted = call(&app, &bob, "DELETE", &format!("/orgs/{acme}"), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
}
