//! Throws malformed input at every documented operation: invalid JSON, wrong types, missing fields,
//! huge bodies, invalid UTF-8, SQL-ish and script-ish strings, hostile path segments, unknown query
//! parameters, oversized headers. Every answer must be a 4xx problem+json (or a success the input
//! was entitled to), never a 5xx, and the database must not change.
use serde_json::{Value, json};

use crate::support::{TestApp, auth};

const HOSTILE_STRINGS: [&str; 4] = [
    "' OR '1'='1' --",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "\u{0000}\u{202e}\u{fffd}",
];

/// One request to throw.
struct Attempt {
    what: String,
    method: String,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    header: Option<(String, String)>,
}

/// Every table's row count (public schema and the job queue): "the database is unchanged". The
/// brute-force counters and the security audit log are left out: recording failed attempts is their job.
async fn snapshot(app: &TestApp) -> Vec<(String, i64)> {
    use sea_orm::ConnectionTrait;
    let tables = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT schemaname || '.' || tablename FROM pg_tables \
             WHERE schemaname IN ('public', 'apalis') AND tablename NOT IN ('seaql_migrations', '_sqlx_migrations', 'workers', 'auth_throttle', 'auth_events') \
             ORDER BY 1",
        ))
        .await
        .unwrap();
    let mut counts = Vec::new();
    for row in tables {
        let table: String = row.try_get_by_index(0).unwrap();
        let n = app.count(&format!("SELECT count(*) FROM {table}")).await;
        counts.push((table, n));
    }
    counts
}

/// The documented request body example of an operation, if any.
fn body_example(spec: &Value, operation: &Value) -> Option<Value> {
    let content = &operation["requestBody"]["content"]["application/json"];
    if let Some(example) = content.get("example") {
        return Some(example.clone());
    }
    let name = content["schema"]["$ref"].as_str()?.rsplit('/').next()?;
    spec["components"]["schemas"][name].get("example").cloned()
}

/// Replaces every leaf of `value` using `leaf`.
fn mutate(value: &Value, leaf: &dyn Fn(&Value) -> Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mutate(v, leaf)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| mutate(v, leaf)).collect()),
        other => leaf(other),
    }
}

fn attempts_for(
    spec: &Value,
    method: &str,
    path: &str,
    operation: &Value,
    body_limit: usize,
) -> Vec<Attempt> {
    let concrete = |segment: &str| {
        path.split('/')
            .map(|part| {
                if part.starts_with('{') {
                    segment.to_owned()
                } else {
                    part.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let base_path = concrete("00000000-0000-0000-0000-000000000000");
    let attempt = |what: &str, path: String, content_type: &'static str, body: Vec<u8>| Attempt {
        what: what.to_owned(),
        method: method.to_uppercase(),
        path,
        content_type,
        body,
        header: None,
    };
    let mut list = vec![
        attempt(
            "unknown query parameters",
            format!("{base_path}?unknown=1&limit=-5&offset=abc&page[]=x"),
            "application/json",
            Vec::new(),
        ),
        Attempt {
            header: Some(("x-padding".into(), "a".repeat(8 * 1024))),
            ..attempt(
                "an 8 KiB header",
                base_path.clone(),
                "application/json",
                Vec::new(),
            )
        },
    ];
    if path.contains('{') {
        for hostile in [
            "' OR 1=1--",
            "%2e%2e%2f%2e%2e%2fetc",
            "9999999999999999999999",
            &"x".repeat(2000),
        ] {
            list.push(attempt(
                "a hostile path segment",
                concrete(hostile),
                "application/json",
                Vec::new(),
            ));
        }
    }
    if matches!(method, "post" | "put" | "patch" | "delete") {
        let json = "application/json";
        list.push(attempt(
            "truncated JSON",
            base_path.clone(),
            json,
            b"{\"a\":".to_vec(),
        ));
        for body in ["[]", "42", "\"text\"", "null", "{}"] {
            list.push(attempt(
                "a body of the wrong shape",
                base_path.clone(),
                json,
                body.as_bytes().to_vec(),
            ));
        }
        list.push(attempt(
            "invalid UTF-8",
            base_path.clone(),
            json,
            b"{\"email\": \"\xff\xfe\xfd\"}".to_vec(),
        ));
        list.push(attempt(
            "a body over the limit",
            base_path.clone(),
            json,
            vec![b' '; body_limit + 1],
        ));
        list.push(attempt(
            "form-encoded instead of JSON",
            base_path.clone(),
            "application/x-www-form-urlencoded",
            b"a=1".to_vec(),
        ));
        if let Some(example) = body_example(spec, operation) {
            for hostile in HOSTILE_STRINGS {
                let body = mutate(&example, &|v| {
                    if v.is_string() {
                        json!(hostile)
                    } else {
                        v.clone()
                    }
                });
                list.push(attempt(
                    &format!("strings replaced by {hostile:?}"),
                    base_path.clone(),
                    json,
                    body.to_string().into_bytes(),
                ));
            }
            let swapped = mutate(&example, &|v| match v {
                Value::String(_) => json!(12345),
                Value::Number(_) | Value::Bool(_) => json!("not-a-number"),
                other => other.clone(),
            });
            list.push(attempt(
                "every field of the wrong type",
                base_path.clone(),
                json,
                swapped.to_string().into_bytes(),
            ));
            let huge = mutate(&example, &|v| {
                if v.is_string() {
                    json!("x".repeat(100_000))
                } else {
                    v.clone()
                }
            });
            list.push(attempt(
                "100 KB strings",
                base_path.clone(),
                json,
                huge.to_string().into_bytes(),
            ));
        }
    }
    list
}

#[tokio::test]
async fn bad_input_gets_a_4xx_problem_and_changes_nothing() {
    let app = TestApp::spawn().await;
    // Signed in, so the input reaches the handlers instead of stopping at 401.
    let (access, _) = auth::signed_in(&app, "fuzzer@example.com").await;
    // The sign-up's verification email is the one job of the setup: let it land before the snapshot,
    // or its delivery record would count as a change made by the bad input.
    auth::mail_to(&app, "fuzzer@example.com", "Verify your email").await;
    let spec: Value = app
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let body_limit = app.layers.config.http.body_limit;
    let before = snapshot(&app).await;
    let mut failures = Vec::new();
    let mut sent = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for attempt in attempts_for(&spec, method, path, operation, body_limit) {
                let mut request = app
                    .client
                    .request(attempt.method.parse().unwrap(), app.url(&attempt.path))
                    .header("content-type", attempt.content_type)
                    .bearer_auth(&access)
                    .body(attempt.body);
                if let Some((name, value)) = &attempt.header {
                    request = request.header(name, value);
                }
                let response = request.send().await.unwrap();
                sent += 1;
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let label = format!("{} {} with {}", attempt.method, path, attempt.what);
                if status >= 500 {
                    failures.push(format!("{label}: {status}"));
                } else if status >= 400 && content_type != "application/problem+json" {
                    failures.push(format!(
                        "{label}: {status} as {content_type:?}, not problem+json"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        snapshot(&app).await,
        before,
        "bad input changed the database"
    );
    assert!(sent > 20, "only {sent} requests were thrown");
}

/// serde reads a struct from an array as readily as from an object (`[null, null]` was a valid
/// `PATCH /orgs/{org}`, `["ada@…", "…"]` a login): every body here is an object, so an array, a
/// string or a number is 400 `invalid-body` before any handler, and changes nothing.
#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused_before_any_handler() {
    let app = TestApp::spawn().await;
    let (token, _) = auth::signed_in(&app, "owner@example.com").await;
    let org = auth::post(
        &app,
        "/orgs",
        Some(&token),
        json!({"name": "Acme", "slug": "acme"}),
    )
    .await;
    assert_eq!(org.status, 201, "{}", org.body);
    let path = format!("/api/v1/orgs/{}", org.body["id"].as_str().unwrap());
    let before = snapshot(&app).await;
    let credentials = json!(["owner@example.com", auth::PASSWORD]).to_string();
    for (method, path, body) in [
        ("PATCH", path.as_str(), "[null, null]".to_owned()),
        ("POST", "/api/v1/auth/login", credentials),
        ("POST", "/api/v1/auth/login", "  \n \"text\"".to_owned()),
        ("POST", "/api/v1/auth/register", "42".to_owned()),
    ] {
        let answer = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{method} {path} {body}");
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(
            problem["type"], "urn:ironclad:problem:invalid-body",
            "{body}"
        );
    }
    assert_eq!(snapshot(&app).await, before);
    // An object, after whitespace, still goes through.
    let renamed = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("\n  {\"name\": \"Acme Group\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
}
