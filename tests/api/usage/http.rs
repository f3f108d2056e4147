//! The AI example over HTTP: reserve, call the provider, commit; the 402 at the limit; retries
//! charged once; a failed call charged nothing; the usage view and members' caps.
use fake_llm::FakeLlm;
use serde_json::{Value, json};

use crate::{
    orgs::{Person, call, join, org, person},
    support::{TestApp, auth::Response},
};

async fn spawn() -> (TestApp, FakeLlm) {
    let llm = FakeLlm::start().unwrap();
    let app = TestApp::spawn_with(&[("AI_PROVIDER_URL", llm.url.as_str())]).await;
    (app, llm)
}

async fn complete(app: &TestApp, who: &Person, org: &str, key: &str, body: Value) -> Response {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/orgs/{org}/ai/completions")))
        .bearer_auth(&who.token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    Response {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

fn ai_tokens(usage: &Value) -> &Value {
    usage
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == "ai_tokens")
        .expect("the ai_tokens meter")
}

#[tokio::test]
async fn a_completion_reserves_the_estimate_and_charges_what_the_provider_counted() {
    let (app, llm) = spawn().await;
    let owner = person(&app, "owner@ai.example").await;
    let org = org(&app, &owner, "ai-co").await;
    // 40 characters (10 tokens) + at most 64 → 74 reserved; the fake answers with 32.
    let prompt = "x".repeat(40);
    let r = complete(
        &app,
        &owner,
        &org,
        "k1",
        json!({"prompt": prompt, "max_tokens": 64}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["reserved"], 74);
    assert_eq!(r.body["tokens"]["total_tokens"], 42);
    // The same key again: the first answer, charged once, the provider not called again.
    let again = complete(
        &app,
        &owner,
        &org,
        "k1",
        json!({"prompt": prompt, "max_tokens": 64}),
    )
    .await;
    assert_eq!(
        (again.status, again.header("idempotent-replayed")),
        (200, "true")
    );
    assert_eq!(llm.calls(), 1);
    let usage = call(&app, &owner, "GET", &format!("/orgs/{org}/usage"), None).await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    let meter = ai_tokens(&usage.body);
    assert_eq!(
        (meter["used"].as_i64(), meter["reserved"].as_i64()),
        (Some(42), Some(0))
    );
    assert_eq!(
        (meter["limit"].as_i64(), meter["overage"].as_str()),
        (Some(10_000), Some("hard"))
    );
    // The meter catalogue is public.
    let meters: Value = app.get("/api/v1/usage/meters").await.json().await.unwrap();
    assert_eq!(meters[0]["key"], "ai_tokens");
    assert_eq!(meters[0]["plans"][0]["plan"], "starter");
}

#[tokio::test]
async fn at_the_limit_the_answer_is_a_402_naming_the_meter_and_the_reset() {
    let (app, llm) = spawn().await;
    let owner = person(&app, "limit@ai.example").await;
    let org = org(&app, &owner, "limit-co").await;
    app.sql(&format!(
        "INSERT INTO usage_counters (org_id, meter, period_start, period_end, lim, included, metered, used) \
         VALUES ('{org}', 'ai_tokens', date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', \
            (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC', \
            10000, 10000, false, 9990)"
    ))
    .await;
    let r = complete(
        &app,
        &owner,
        &org,
        "big",
        json!({"prompt": "hello", "max_tokens": 64}),
    )
    .await;
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert_eq!(r.body["type"], "urn:ironclad:problem:usage-limit-reached");
    assert_eq!(
        (r.body["meter"].as_str(), r.body["limit"].as_i64()),
        (Some("ai_tokens"), Some(10_000))
    );
    assert_eq!(r.body["used"], 9990);
    assert!(
        r.body["resets_at"]
            .as_str()
            .unwrap()
            .contains("-01T00:00:00")
    );
    assert_eq!(llm.calls(), 0, "refused before the provider was called");
    // A small one still fits.
    let small = complete(
        &app,
        &owner,
        &org,
        "small",
        json!({"prompt": "hi", "max_tokens": 8}),
    )
    .await;
    assert_eq!(small.status, 200, "{}", small.body);
}

#[tokio::test]
async fn a_failed_provider_call_charges_nothing_and_bad_input_is_a_422() {
    let (app, llm) = spawn().await;
    let owner = person(&app, "fail@ai.example").await;
    let org = org(&app, &owner, "fail-co").await;
    llm.fail_next(1);
    let r = complete(
        &app,
        &owner,
        &org,
        "f1",
        json!({"prompt": "hello", "max_tokens": 64}),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["type"], "urn:ironclad:problem:ai-provider-failed");
    let usage = call(&app, &owner, "GET", &format!("/orgs/{org}/usage"), None).await;
    let meter = ai_tokens(&usage.body);
    assert_eq!(
        (meter["used"].as_i64(), meter["reserved"].as_i64()),
        (Some(0), Some(0))
    );
    for (key, body) in [
        ("e1", json!({"prompt": "  ", "max_tokens": 8})),
        ("e2", json!({"prompt": "hi", "max_tokens": 0})),
        ("e3", json!({"prompt": "hi", "max_tokens": 5000})),
    ] {
        let r = complete(&app, &owner, &org, key, body).await;
        assert_eq!(r.status, 422, "{key}: {}", r.body);
    }
    let r = complete(
        &app,
        &owner,
        &org,
        "e4",
        json!({"prompt": "hi", "temperature": 2}),
    )
    .await;
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.body);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM usage_reservations WHERE org_id = '{org}' AND state = 'open'"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn an_admin_caps_a_members_share_and_plain_members_and_outsiders_cannot() {
    let (app, _llm) = spawn().await;
    let owner = person(&app, "capper@ai.example").await;
    let org = org(&app, &owner, "cap-co").await;
    let member = person(&app, "member@ai.example").await;
    join(&app, &org, &member, "member").await;
    let outsider = person(&app, "outsider@ai.example").await;
    let path = format!("/orgs/{org}/usage/caps/ai_tokens/{}", member.id);

    let r = call(&app, &member, "PUT", &path, Some(json!({"cap": 50}))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call(&app, &outsider, "PUT", &path, Some(json!({"cap": 50}))).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = call(&app, &owner, "PUT", &path, Some(json!({"cap": -1}))).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let nobody = format!("/orgs/{org}/usage/caps/ai_tokens/{}", outsider.id);
    let r = call(&app, &owner, "PUT", &nobody, Some(json!({"cap": 50}))).await;
    assert_eq!(r.status, 404, "not a member: {}", r.body);
    let r = call(
        &app,
        &owner,
        "PUT",
        &format!("/orgs/{org}/usage/caps/gpu/{}", member.id),
        Some(json!({"cap": 5})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["type"].as_str()),
        (404, Some("urn:ironclad:problem:meter-not-found"))
    );

    let r = call(&app, &owner, "PUT", &path, Some(json!({"cap": 50}))).await;
    assert_eq!(r.status, 204, "{}", r.body);
    // 2 + 64 = 66 reserved would pass the member's 50.
    let refused = complete(
        &app,
        &member,
        &org,
        "m1",
        json!({"prompt": "hello", "max_tokens": 64}),
    )
    .await;
    assert_eq!(refused.status, 402, "{}", refused.body);
    assert_eq!(refused.body["scope"], "member");
    let ok = complete(
        &app,
        &member,
        &org,
        "m2",
        json!({"prompt": "hello", "max_tokens": 40}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The owner is not capped.
    let owners = complete(
        &app,
        &owner,
        &org,
        "o1",
        json!({"prompt": "hello", "max_tokens": 64}),
    )
    .await;
    assert_eq!(owners.status, 200, "{}", owners.body);

    let usage = call(&app, &member, "GET", &format!("/orgs/{org}/usage"), None).await;
    let members = &ai_tokens(&usage.body)["members"];
    assert_eq!(members[0]["member_id"], member.id.as_str());
    assert_eq!(
        (members[0]["cap"].as_i64(), members[0]["used"].as_i64()),
        (Some(50), Some(22))
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM org_audit WHERE org_id = '{org}' AND action = 'usage.cap_set'"
        ))
        .await,
        1
    );
    let r = call(&app, &owner, "DELETE", &path, None).await;
    assert_eq!(r.status, 204);
    let later = complete(
        &app,
        &member,
        &org,
        "m3",
        json!({"prompt": "hello", "max_tokens": 64}),
    )
    .await;
    assert_eq!(later.status, 200, "uncapped again: {}", later.body);
}

#[tokio::test]
async fn another_orgs_budget_is_neither_readable_nor_spendable() {
    let (app, llm) = spawn().await;
    let owner = person(&app, "mine@ai.example").await;
    let org = org(&app, &owner, "mine-co").await;
    let outsider = person(&app, "theirs@ai.example").await;
    let _theirs = crate::orgs::org(&app, &outsider, "theirs-co").await;

    let usage = call(&app, &outsider, "GET", &format!("/orgs/{org}/usage"), None).await;
    assert_eq!(usage.status, 404, "{}", usage.body);
    let spent = complete(
        &app,
        &outsider,
        &org,
        "x1",
        json!({"prompt": "hello", "max_tokens": 8}),
    )
    .await;
    assert_eq!(spent.status, 404, "{}", spent.body);
    assert_eq!(llm.calls(), 0);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM usage_reservations WHERE org_id = '{org}'"
        ))
        .await,
        0,
        "nothing reserved on the org the outsider named"
    );
}
