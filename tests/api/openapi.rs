//! The OpenAPI document is complete (every route, with schemas and examples) and the docs work offline.
use std::path::Path;

use serde_json::Value;

use crate::support::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn served_spec(app: &TestApp) -> Value {
    let response = app.get("/api-docs/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    let spec = served_spec(&app).await;
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/healthz") && paths.contains_key("/readyz"));
    for (path, item) in paths {
        let concrete = path.replace(['{', '}'], "");
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = status == 405
                || body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no route for"));
            assert!(
                !unrouted,
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
}

#[tokio::test]
async fn every_operation_documents_its_responses_with_examples() {
    let app = TestApp::spawn().await;
    let spec = served_spec(&app).await;
    let schemas = &spec["components"]["schemas"];
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let operation = &item[*method];
            assert!(
                operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path}: no tag"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for (status, response) in responses {
                let Some(content) = response["content"].as_object() else {
                    continue;
                };
                for (media, body) in content {
                    let schema = &body["schema"];
                    let target = schema.get("items").unwrap_or(schema);
                    let example = body.get("example").or_else(|| {
                        let name = target["$ref"].as_str()?.rsplit('/').next()?;
                        schemas[name].get("example")
                    });
                    assert!(
                        example.is_some(),
                        "{method} {path} {status} {media}: no example (schema {schema})"
                    );
                }
            }
        }
    }
}

/// Routes reach the spec only through `#[utoipa::path]` handlers registered with utoipa-actix-web's
/// `service`; this guards the ways around that: an actix route macro without `#[utoipa::path]`, or a
/// hand-made `.route(...)` / `web::resource(...)` outside the docs plumbing in `startup/mod.rs`.
#[test]
fn no_route_is_registered_around_the_spec() {
    let mut problems = Vec::new();
    visit(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut |file, source| {
            let lines: Vec<&str> = source.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let trimmed = line.trim_start();
                let is_route_macro = [
                    "#[get(",
                    "#[post(",
                    "#[put(",
                    "#[patch(",
                    "#[delete(",
                    "#[route(",
                ]
                .iter()
                .any(|m| trimmed.starts_with(m));
                if is_route_macro {
                    let documented = lines[..i]
                        .iter()
                        .rev()
                        .take_while(|l| {
                            !l.trim().is_empty() && !l.trim_start().starts_with("pub async fn")
                        })
                        .any(|l| l.trim_start().starts_with("#[utoipa::path"));
                    if !documented {
                        problems.push(format!(
                            "{}:{}: route without #[utoipa::path]",
                            file.display(),
                            i + 1
                        ));
                    }
                }
                let hand_made = trimmed.contains(".route(\"") || trimmed.contains("web::resource(");
                if hand_made && !(file.ends_with("startup/mod.rs") && trimmed.contains("\"/docs\""))
                {
                    problems.push(format!(
                        "{}:{}: route registered outside the spec",
                        file.display(),
                        i + 1
                    ));
                }
            }
        },
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn visit(dir: &Path, check: &mut dyn FnMut(&Path, &str)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, check);
        } else if path.extension().is_some_and(|e| e == "rs") {
            check(&path, &std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[tokio::test]
async fn swagger_ui_is_served_offline_with_its_assets() {
    let app = TestApp::spawn().await;
    let redirect = app.get("/docs").await;
    assert_eq!(redirect.status(), 301);
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("https://"),
        "the page must not load anything from the internet"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(asset), "page does not reference {asset}");
        let response = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        let body = response.bytes().await.unwrap();
        assert!(body.len() > 100, "{asset} is empty");
        if asset == "swagger-initializer.js" {
            let js = String::from_utf8_lossy(&body);
            assert!(js.contains("/api-docs/openapi.json"), "{js}");
        }
    }
}

#[test]
fn the_cli_document_matches_the_served_routes() {
    let spec = ironclad::startup::openapi_spec(true);
    let json = serde_json::to_value(&spec).unwrap();
    let paths: Vec<&String> = json["paths"].as_object().unwrap().keys().collect();
    assert!(paths.iter().any(|p| *p == "/dev/mail"));
    assert_eq!(json["info"]["title"], "Ironclad API");
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
}

/// `openapi.json` (committed, written by `just openapi`) is the document production serves, so
/// every change to the API shows in the diff, for reviewers and for client generators.
#[test]
fn the_committed_document_is_the_one_production_serves() {
    let served = serde_json::to_value(ironclad::startup::openapi_spec(false)).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).expect("openapi.json is missing: run `just openapi`"),
    )
    .expect("openapi.json is JSON");
    assert!(
        served == committed,
        "openapi.json differs from the document production serves: run `just openapi` and commit it"
    );
    assert!(
        served["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| !p.starts_with("/dev/")),
        "production serves no development routes"
    );
}
