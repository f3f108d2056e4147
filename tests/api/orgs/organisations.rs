use serde_json::json;
use uuid::Uuid;

use super::{call, join, org, person};
use crate::support::TestApp;

#[tokio::test]
async fn every_account_has_a_personal_org_it_owns_and_keeps() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let listed = call(&app, &ada, "GET", "/orgs", None).await;
    assert_eq!(listed.status, 200);
    let orgs = listed.body.as_array().unwrap();
    assert_eq!(orgs.len(), 1, "{}", listed.body);
    assert_eq!(orgs[0]["personal"], true);
    assert_eq!(orgs[0]["role"], "owner");
    assert_eq!(orgs[0]["members"], 1);
    let personal = orgs[0]["id"].as_str().unwrap();

    let deleted = call(&app, &ada, "DELETE", &format!("/orgs/{personal}"), None).await;
    assert_eq!(deleted.status, 409, "{}", deleted.body);
    assert_eq!(deleted.problem_type(), "urn:ironclad:problem:personal-org");
    let left = call(
        &app,
        &ada,
        "DELETE",
        &format!("/orgs/{personal}/members/{}", ada.id),
        None,
    )
    .await;
    assert_eq!(left.status, 409, "{}", left.body);
    // Renaming is fine.
    let renamed = call(
        &app,
        &ada,
        "PATCH",
        &format!("/orgs/{personal}"),
        Some(json!({"name": "Ada's"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Ada's");
    // The trigger made exactly one per account, for every account.
    assert_eq!(
        app.count("SELECT count(*) FROM users u WHERE (SELECT count(*) FROM orgs o WHERE o.personal_for = u.id) <> 1").await,
        0
    );
}

#[tokio::test]
async fn an_org_is_created_listed_renamed_and_deleted_by_its_owner() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let created = call(
        &app,
        &ada,
        "POST",
        "/orgs",
        Some(json!({"name": "Acme Ltd."})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["slug"], "acme-ltd", "made from the name");
    assert_eq!(created.body["role"], "owner");
    assert_eq!(created.body["personal"], false);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), format!("/api/v1/orgs/{id}"));

    let taken = call(
        &app,
        &ada,
        "POST",
        "/orgs",
        Some(json!({"name": "Other", "slug": "acme-ltd"})),
    )
    .await;
    assert_eq!(taken.status, 409);
    assert_eq!(taken.problem_type(), "urn:ironclad:problem:slug-taken");
    for bad in [
        json!({"name": "  "}),
        json!({"name": "X", "slug": "Not A Slug"}),
        json!({"name": "日本"}),
    ] {
        let r = call(&app, &ada, "POST", "/orgs", Some(bad.clone())).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    let unknown = call(
        &app,
        &ada,
        "POST",
        "/orgs",
        Some(json!({"name": "X", "colour": "red"})),
    )
    .await;
    assert_eq!(
        unknown.status, 400,
        "unknown fields are refused: {}",
        unknown.body
    );

    let listed = call(&app, &ada, "GET", "/orgs", None).await;
    let slugs: Vec<_> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slugs.len(), 2);
    assert_eq!(slugs[1], "acme-ltd", "personal first");

    let renamed = call(
        &app,
        &ada,
        "PATCH",
        &format!("/orgs/{id}"),
        Some(json!({"name": "Acme Group", "slug": "acme"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        (renamed.body["name"].as_str(), renamed.body["slug"].as_str()),
        (Some("Acme Group"), Some("acme"))
    );
    let other = org(&app, &ada, "other-org").await;
    let clash = call(
        &app,
        &ada,
        "PATCH",
        &format!("/orgs/{other}"),
        Some(json!({"slug": "acme"})),
    )
    .await;
    assert_eq!(clash.status, 409, "{}", clash.body);

    let deleted = call(&app, &ada, "DELETE", &format!("/orgs/{id}"), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(
        call(&app, &ada, "GET", &format!("/orgs/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&app, &ada, "DELETE", &format!("/orgs/{id}"), None)
            .await
            .status,
        404
    );
    // Its slug is free again; its row and audit trail stay.
    assert_eq!(org(&app, &ada, "acme").await.len(), 36);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM org_audit WHERE org_id = '{id}'"
        ))
        .await,
        3
    );
}

#[tokio::test]
async fn outsiders_get_404_and_members_403_for_what_their_role_may_not() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    let members = format!("/orgs/{acme}/members");
    let ada_member = format!("{members}/{}", ada.id);
    let outsider_attempts = [
        ("GET", format!("/orgs/{acme}"), None),
        (
            "PATCH",
            format!("/orgs/{acme}"),
            Some(json!({"name": "Mine"})),
        ),
        ("DELETE", format!("/orgs/{acme}"), None),
        ("GET", members.clone(), None),
        ("PATCH", ada_member.clone(), Some(json!({"role": "member"}))),
        ("DELETE", ada_member.clone(), None),
    ];
    for (method, path, body) in &outsider_attempts {
        let r = call(&app, &bob, method, path, body.clone()).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.problem_type(), "urn:ironclad:problem:org-not-found");
    }
    // An org that does not exist answers the same, and so does a path that is not an id.
    for path in [
        format!("/orgs/{}", Uuid::new_v4()),
        "/orgs/acme".to_owned(),
        "/orgs/%27%20OR%201=1".to_owned(),
    ] {
        let r = call(&app, &bob, "GET", &path, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    assert_eq!(
        super::role_of(&app, &acme, &ada).await.as_deref(),
        Some("owner"),
        "nothing changed"
    );

    join(&app, &acme, &bob, "member").await;
    assert_eq!(
        call(&app, &bob, "GET", &format!("/orgs/{acme}"), None)
            .await
            .body["role"],
        "member"
    );
    assert_eq!(
        call(&app, &bob, "GET", &members, None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for (method, path, body) in [
        (
            "PATCH",
            format!("/orgs/{acme}"),
            Some(json!({"name": "Mine"})),
        ),
        ("DELETE", format!("/orgs/{acme}"), None),
        ("PATCH", ada_member.clone(), Some(json!({"role": "member"}))),
        (
            "PATCH",
            format!("{members}/{}", bob.id),
            Some(json!({"role": "owner"})),
        ),
        ("DELETE", ada_member.clone(), None),
    ] {
        let r = call(&app, &bob, method, &path, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(
            r.problem_type(),
            "urn:ironclad:problem:org-permission-required"
        );
    }
    // Anonymous callers are told to sign in, before anything about the org.
    let anonymous =
        crate::support::auth::call(&app, "GET", &format!("/orgs/{acme}"), None, None).await;
    assert_eq!(anonymous.status, 401);
    // A deleted org is gone for every member at once.
    assert_eq!(
        call(&app, &ada, "DELETE", &format!("/orgs/{acme}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        call(&app, &bob, "GET", &format!("/orgs/{acme}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&app, &bob, "GET", "/orgs", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_unverified_account_cannot_create_an_org() {
    let app = TestApp::spawn().await;
    let (token, _) = crate::support::auth::signed_in_unverified(&app, "eve@example.com").await;
    let r = crate::support::auth::post(&app, "/orgs", Some(&token), json!({"name": "Squat"})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:email-verification-required"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM orgs WHERE personal_for IS NULL")
            .await,
        0
    );
}
