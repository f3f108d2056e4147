use serde_json::{Value, json};

use super::{Person, call, join, org, person};
use crate::support::{TestApp, auth};

async fn create_key(app: &TestApp, who: &Person, org: &str, scopes: Value) -> auth::Response {
    call(
        app,
        who,
        "POST",
        &format!("/orgs/{org}/api-keys"),
        Some(json!({"name": "CI", "scopes": scopes})),
    )
    .await
}

/// A key used as the bearer token.
fn as_key(key: &str) -> Person {
    Person {
        token: key.to_owned(),
        id: String::new(),
    }
}

#[tokio::test]
async fn a_key_is_shown_once_and_reaches_only_its_orgs_routes_its_scopes_allow() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    let other = org(&app, &ada, "other").await;
    let created = create_key(&app, &ada, &acme, json!(["org:read"])).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ic_test_") && key.len() == 46, "{key}");
    assert_eq!(created.body["api_key"]["last4"], &key[42..]);
    assert_eq!(created.body["api_key"]["scopes"], json!(["org:read"]));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM org_api_keys WHERE key_hash = sha256('{key}'::bytea)"
        ))
        .await,
        1,
        "stored as its SHA-256"
    );
    let listed = call(&app, &ada, "GET", &format!("/orgs/{acme}/api-keys"), None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(
        !listed.body.to_string().contains(&key[8..]),
        "the key is never shown again"
    );

    let bot = as_key(&key);
    let read = call(&app, &bot, "GET", &format!("/orgs/{acme}"), None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["role"], Value::Null, "a key is not a member");
    assert_eq!(
        call(&app, &bot, "GET", &format!("/orgs/{acme}/members"), None)
            .await
            .status,
        200
    );
    // Beyond its scopes: 403; another org: 404, as for any outsider.
    for (method, path, body) in [
        (
            "PATCH",
            format!("/orgs/{acme}"),
            Some(json!({"name": "Bot"})),
        ),
        ("GET", format!("/orgs/{acme}/api-keys"), None),
        (
            "POST",
            format!("/orgs/{acme}/api-keys"),
            Some(json!({"name": "x", "scopes": ["org:read"]})),
        ),
        (
            "POST",
            format!("/orgs/{acme}/invitations"),
            Some(json!({"email": "x@example.com", "role": "member"})),
        ),
        ("DELETE", format!("/orgs/{acme}/members/{}", ada.id), None),
    ] {
        let r = call(&app, &bot, method, &path, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    assert_eq!(
        call(&app, &bot, "GET", &format!("/orgs/{other}"), None)
            .await
            .status,
        404
    );
    // Never a person: account, org-list and admin routes refuse it.
    for path in [
        "/me",
        "/me/sessions",
        "/orgs",
        "/admin/jobs/dead",
        "/billing/orders",
    ] {
        let r = call(&app, &bot, "GET", path, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM orgs WHERE name = 'Bot'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_scoped_key_writes_and_is_audited_as_itself() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    let created = create_key(&app, &ada, &acme, json!(["org:read", "org:write"])).await;
    let (key, id) = (
        created.body["key"].as_str().unwrap(),
        created.body["api_key"]["id"].as_str().unwrap(),
    );
    let renamed = call(
        &app,
        &as_key(key),
        "PATCH",
        &format!("/orgs/{acme}"),
        Some(json!({"name": "Acme Bot"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM org_audit WHERE action = 'org.updated' AND actor_api_key_id = '{id}' AND actor_user_id IS NULL")).await,
        1
    );
    // Its use is recorded, from a new address once, then at most once a minute.
    app.eventually(
        &format!(
            "SELECT count(*) FROM org_api_keys WHERE id = '{id}' AND last_used_at IS NOT NULL"
        ),
        1,
    )
    .await;
    app.eventually(&format!("SELECT count(*) FROM org_audit WHERE action = 'api_key.new_address' AND actor_api_key_id = '{id}'"), 1).await;
    let first_use = app.count(&format!("SELECT extract(epoch FROM last_used_at)::bigint * 1000000 + extract(microseconds FROM last_used_at)::bigint FROM org_api_keys WHERE id = '{id}'")).await;
    for _ in 0..3 {
        assert_eq!(
            call(&app, &as_key(key), "GET", &format!("/orgs/{acme}"), None)
                .await
                .status,
            200
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let later = app.count(&format!("SELECT extract(epoch FROM last_used_at)::bigint * 1000000 + extract(microseconds FROM last_used_at)::bigint FROM org_api_keys WHERE id = '{id}'")).await;
    assert_eq!(first_use, later, "not written again within the minute");
    assert_eq!(
        app.count("SELECT count(*) FROM org_audit WHERE action = 'api_key.new_address'")
            .await,
        1
    );
}

#[tokio::test]
async fn revoked_expired_and_mistyped_keys_get_401() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    let path = format!("/orgs/{acme}");
    let first = create_key(&app, &ada, &acme, json!(["org:read"])).await;
    let key = first.body["key"].as_str().unwrap().to_owned();
    // One character off: the checksum fails, so no lookup is needed to refuse it.
    let mut typo = key.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let refused = call(&app, &as_key(&typo), "GET", &path, None).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.body["detail"], "the API key is not valid");

    let id = first.body["api_key"]["id"].as_str().unwrap();
    assert_eq!(
        call(
            &app,
            &ada,
            "DELETE",
            &format!("/orgs/{acme}/api-keys/{id}"),
            None
        )
        .await
        .status,
        204
    );
    let revoked = call(&app, &as_key(&key), "GET", &path, None).await;
    assert_eq!(
        (revoked.status, revoked.body["detail"].as_str()),
        (401, Some("the API key has been revoked"))
    );
    assert_eq!(
        call(
            &app,
            &ada,
            "DELETE",
            &format!("/orgs/{acme}/api-keys/{id}"),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(&app, &ada, "GET", &format!("/orgs/{acme}/api-keys"), None)
            .await
            .body,
        json!([])
    );

    let second = create_key(&app, &ada, &acme, json!(["org:read"])).await;
    let key = second.body["key"].as_str().unwrap();
    app.sql(&format!(
        "UPDATE org_api_keys SET expires_at = now() - interval '1 second' WHERE id = '{}'",
        second.body["api_key"]["id"].as_str().unwrap()
    ))
    .await;
    let expired = call(&app, &as_key(key), "GET", &path, None).await;
    assert_eq!(
        (expired.status, expired.body["detail"].as_str()),
        (401, Some("the API key has expired"))
    );
    let past = call(
        &app,
        &ada,
        "POST",
        &format!("/orgs/{acme}/api-keys"),
        Some(json!({"name": "x", "scopes": ["org:read"], "expires_at": "2020-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(past.status, 422, "{}", past.body);
    let unknown = create_key(&app, &ada, &acme, json!(["everything"])).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let none = create_key(&app, &ada, &acme, json!([])).await;
    assert_eq!(none.status, 422, "{}", none.body);
}

#[tokio::test]
async fn only_admins_create_keys_and_with_a_fresh_second_factor_when_enrolled() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bob, "member").await;
    assert_eq!(
        create_key(&app, &bob, &acme, json!(["org:read"]))
            .await
            .status,
        403
    );
    let mfa = auth::enable_mfa(&app, &ada.token).await;
    let stale = create_key(&app, &ada, &acme, json!(["org:read"])).await;
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert_eq!(stale.problem_type(), "urn:ironclad:problem:mfa-required");
    let fresh = Person {
        token: mfa.access_token,
        id: ada.id.clone(),
    };
    assert_eq!(
        create_key(&app, &fresh, &acme, json!(["billing:write"]))
            .await
            .status,
        201
    );
    assert_eq!(
        app.count("SELECT count(*) FROM org_audit WHERE action = 'api_key.created'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_account_with_an_unverified_email_mints_no_key() {
    // A key may buy for its org: minting one needs what buying needs, a verified address.
    let app = TestApp::spawn().await;
    let (token, _) = auth::signed_in_unverified(&app, "new@example.com").await;
    let id = auth::claims(&token)["sub"].as_str().unwrap().to_owned();
    let personal = app.personal_org(id.parse().unwrap()).await.to_string();
    let r = create_key(
        &app,
        &Person { token, id },
        &personal,
        json!(["billing:write"]),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.problem_type(),
        "urn:ironclad:problem:email-verification-required"
    );
    assert_eq!(app.count("SELECT count(*) FROM org_api_keys").await, 0);
}
