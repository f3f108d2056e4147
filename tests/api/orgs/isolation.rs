//! Tenant isolation, generated from the OpenAPI document: every operation whose path takes an
//! organisation is tried by a member of org A and by a key of org A with org B's ids — B's org
//! itself, and B's objects (members, invitations, keys, orders) under A's path. Every answer is 403 or
//! 404 and carries none of B's data; nothing of B changes.
use serde_json::{Value, json};

use super::{Person, call, org, person};
use crate::support::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The documented request body example of an operation, if any.
fn body_example(spec: &Value, operation: &Value) -> Option<Value> {
    let content = &operation["requestBody"]["content"]["application/json"];
    let name = content["schema"]["$ref"].as_str()?.rsplit('/').next()?;
    spec["components"]["schemas"][name].get("example").cloned()
}

/// Everything of org `id` as rows, to compare before and after.
async fn snapshot(app: &TestApp, id: &str) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let mut rows = Vec::new();
    for sql in [
        format!("SELECT row_to_json(o)::text FROM orgs o WHERE id = '{id}'"),
        format!(
            "SELECT row_to_json(m)::text FROM org_members m WHERE org_id = '{id}' ORDER BY user_id"
        ),
        format!(
            "SELECT row_to_json(i)::text FROM org_invitations i WHERE org_id = '{id}' ORDER BY id"
        ),
        format!(
            "SELECT (to_jsonb(k) - 'last_used_at' - 'last_used_ip')::text FROM org_api_keys k \
             WHERE org_id = '{id}' ORDER BY id"
        ),
        format!("SELECT row_to_json(o)::text FROM orders o WHERE org_id = '{id}' ORDER BY id"),
        format!("SELECT row_to_json(l)::text FROM licenses l WHERE org_id = '{id}' ORDER BY id"),
        format!("SELECT row_to_json(b)::text FROM org_billing b WHERE org_id = '{id}'"),
    ] {
        for row in app
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .unwrap()
        {
            rows.push(row.try_get_by_index::<String>(0).unwrap());
        }
    }
    rows
}

#[tokio::test]
async fn a_member_or_key_of_one_org_reaches_nothing_of_another() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bea = person(&app, "bea@example.com").await;
    let a = org(&app, &ada, "org-a").await;
    let b = org(&app, &bea, "org-b").await;
    let invited = call(
        &app,
        &bea,
        "POST",
        &format!("/orgs/{b}/invitations"),
        Some(json!({"email": "x@example.com", "role": "member"})),
    )
    .await;
    let b_invitation = invited.body["invitation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let all_scopes = json!({"name": "k", "scopes": ["org:read", "org:write", "billing:write"]});
    let b_key = call(
        &app,
        &bea,
        "POST",
        &format!("/orgs/{b}/api-keys"),
        Some(all_scopes.clone()),
    )
    .await;
    let b_key = b_key.body["api_key"]["id"].as_str().unwrap().to_owned();
    let a_key = call(
        &app,
        &ada,
        "POST",
        &format!("/orgs/{a}/api-keys"),
        Some(all_scopes),
    )
    .await;
    let a_key = Person {
        token: a_key.body["key"].as_str().unwrap().to_owned(),
        id: String::new(),
    };
    // B's paid order with its licence, and B's billing email.
    let b_order = "0193a4c1-0000-7000-8000-00000000b0b0";
    app.sql(&format!(
        "INSERT INTO orders (id, org_id, placed_by, checkout_key, currency, amount_total, status)
             VALUES ('{b_order}', '{b}', '{bea_id}', 'b-key', 'usd', 4900, 'fulfilled');
         INSERT INTO order_lines (id, order_id, product_id, product_name, unit_amount, quantity, seats)
             VALUES ('0193a4c1-0000-7000-8000-00000000b0b1', '{b_order}',
                     '0193a4c0-0000-7000-8000-000000000001', 'Ironclad Pro', 4900, 1, 1);
         INSERT INTO licenses (id, order_line_id, order_id, org_id, product_id, license_key, seats)
             VALUES (gen_random_uuid(), '0193a4c1-0000-7000-8000-00000000b0b1', '{b_order}', '{b}',
                     '0193a4c0-0000-7000-8000-000000000001', 'IRON-BBBB-BBBB-BBBB-BBBB', 1);
         INSERT INTO org_billing (org_id, billing_email) VALUES ('{b}', 'books@b.test');",
        bea_id = bea.id
    ))
    .await;
    let secrets_of_b = [
        "org-b",
        "bea@example.com",
        "x@example.com",
        "books@b.test",
        "IRON-BBBB",
        b.as_str(),
        b_invitation.as_str(),
        b_key.as_str(),
        b_order,
    ];

    let spec: Value = app
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let before = snapshot(&app, &b).await;
    let mut tried = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        let Some(path) = template.strip_prefix("/api/v1") else {
            continue;
        };
        if !path.contains("{org}") {
            continue;
        }
        let object = if path.contains("/invitations/") {
            b_invitation.as_str()
        } else if path.contains("/billing/orders/") {
            b_order
        } else {
            b_key.as_str()
        };
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let body = body_example(&spec, &item[*method]);
            // B's org itself; and B's objects under A's org (only paths that name an object).
            let mut targets = vec![(b.as_str(), true)];
            if path.contains("{user}") || path.contains("{id}") {
                targets.push((a.as_str(), false));
            }
            for (org_id, is_b) in targets {
                let concrete = path
                    .replace("{org}", org_id)
                    .replace("{user}", &bea.id)
                    .replace("{id}", object);
                for (who, caller) in [("A's owner", &ada), ("A's key", &a_key)] {
                    let r = call(
                        &app,
                        caller,
                        &method.to_uppercase(),
                        &concrete,
                        body.clone(),
                    )
                    .await;
                    let allowed: &[u16] = if is_b { &[404] } else { &[403, 404] };
                    assert!(
                        allowed.contains(&r.status),
                        "{who}: {method} {concrete}: {} {}",
                        r.status,
                        r.body
                    );
                    let text = r.body.to_string();
                    for secret in secrets_of_b.iter().filter(|s| !concrete.contains(**s)) {
                        assert!(
                            !text.contains(secret),
                            "{who}: {method} {concrete} leaked {secret}: {text}"
                        );
                    }
                    tried += 1;
                }
            }
        }
    }
    assert!(
        tried >= 50,
        "only {tried} attempts: are the org routes documented?"
    );
    assert_eq!(snapshot(&app, &b).await, before, "nothing of B changed");
}
