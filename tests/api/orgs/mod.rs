//! Organisations: personal orgs, creating and managing orgs, members and roles, the guard's
//! answers to outsiders, and the races around the last owner.
mod api_keys;
mod billing;
mod invitations;
mod isolation;
mod members;
mod organisations;

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    auth::{self, Response},
};

/// A signed-in, verified user: their access token and user id.
pub struct Person {
    pub token: String,
    pub id: String,
}

pub async fn person(app: &TestApp, email: &str) -> Person {
    let (token, _) = auth::signed_in(app, email).await;
    let id = auth::claims(&token)["sub"].as_str().unwrap().to_owned();
    Person { token, id }
}

pub async fn call(
    app: &TestApp,
    who: &Person,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Response {
    auth::call(app, method, path, Some(&who.token), body).await
}

/// A new organisation owned by `owner`: its id.
pub async fn org(app: &TestApp, owner: &Person, slug: &str) -> String {
    let r = call(
        app,
        owner,
        "POST",
        "/orgs",
        Some(json!({"name": slug, "slug": slug})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Makes `who` a member of `org` with `role` (what accepting an invitation does).
pub async fn join(app: &TestApp, org: &str, who: &Person, role: &str) {
    app.sql(&format!(
        "INSERT INTO org_members (org_id, user_id, role) VALUES ('{org}', '{}', '{role}')",
        who.id
    ))
    .await;
}

pub async fn role_of(app: &TestApp, org: &str, who: &Person) -> Option<String> {
    let n = |role: &str| {
        format!(
            "SELECT count(*) FROM org_members WHERE org_id = '{org}' AND user_id = '{}' AND role = '{role}'",
            who.id
        )
    };
    for role in ["owner", "admin", "member"] {
        if app.count(&n(role)).await == 1 {
            return Some(role.to_owned());
        }
    }
    None
}
