//! Usage budgets under a killed process: a server holding reservations (its completions waiting on
//! a slow LLM) is killed with SIGKILL. Its reservations hold their amount until their TTL, then the
//! next reserve reclaims them; nothing is committed for the dead work, nothing counted twice.
use std::time::Duration;

use bytes::Bytes;
use fake_llm::FakeLlm;
use http_body_util::Full;
use ironclad::mail::MailSink;
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::send_one;
use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
    scenarios::{auth::verified_token, usage::UNBALANCED_COUNTERS},
};

const EMAIL: &str = "chaos-usage@example.com";
const PASSWORD: &str = "correct horse battery staple 42";
const TTL_SECS: u64 = 3;
/// "hello" (2 tokens) and at most 8 more: 10 reserved per completion.
const ESTIMATE: i64 = 10;

fn completion(org: &str, token: &str, key: &str, max_tokens: u32) -> hyper::Request<Full<Bytes>> {
    load::request("POST", &format!("/api/v1/orgs/{org}/ai/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from(
            json!({"prompt": "hello", "max_tokens": max_tokens}).to_string(),
        )))
        .expect("request")
}

pub async fn kill_server_mid_reservation(requests: usize) -> anyhow::Result<Section> {
    let db = BenchDb::create().await?;
    let sink = MailSink::start().await?;
    let llm = FakeLlm::start()?;
    // The budget: 1,000 tokens a month, room for 100 completions' estimates.
    db.db
        .execute_unprepared("UPDATE usage_meters SET free_included = 1000 WHERE key = 'ai_tokens'")
        .await?;
    let env = [
        ("AI_PROVIDER_URL", llm.url.clone()),
        ("USAGE_RESERVATION_TTL_SECS", TTL_SECS.to_string()),
    ];
    let first = Server::start(&db, &sink, &["serve", "--no-workers"], &env).await?;
    let token = verified_token(first.addr, &db, EMAIL, PASSWORD).await?;
    let org: String = {
        let row = db
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT o.id::text FROM orgs o JOIN users u ON u.id = o.personal_for WHERE u.email = '{EMAIL}'"
                ),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no personal org"))?;
        row.try_get_by_index(0)?
    };

    // The model is slow: every completion holds its reservation while it waits.
    llm.delay(Duration::from_secs(30));
    let in_flight: Vec<_> = (0..requests)
        .map(|i| {
            let request = completion(&org, &token, &format!("doomed-{i}"), 8);
            let addr = first.addr;
            tokio::spawn(async move { send_one(addr, request).await })
        })
        .collect();
    let held_sql = "SELECT count(*) FROM usage_reservations WHERE state = 'open'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while db.scalar_i64(held_sql).await? < requests as i64 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = db.scalar_i64(held_sql).await?;
    first.kill().await?;
    for request in in_flight {
        let _ = request.await;
    }
    llm.delay(Duration::ZERO);

    // Another server. While the dead reservations hold, a completion needing more than is left
    // is refused; once their TTL passes, the same one is granted (the reserve reclaims them).
    let second = Server::start(&db, &sink, &["serve", "--no-workers"], &env).await?;
    let left = 1000 - held * ESTIMATE;
    // The prompt's 2 tokens plus this many: one more than is left while the dead hold.
    let wanting = u32::try_from((left - 1).clamp(1, 4_000)).unwrap_or(1);
    let early = send_one(second.addr, completion(&org, &token, "early", wanting)).await?;
    tokio::time::sleep(Duration::from_secs(TTL_SECS + 1)).await;
    let late = send_one(second.addr, completion(&org, &token, "late", wanting)).await?;
    second.stop().await?;

    let expired = db
        .scalar_i64("SELECT count(*) FROM usage_reservations WHERE key LIKE '%doomed-%' AND state = 'expired'")
        .await?;
    let committed_doomed = db
        .scalar_i64("SELECT count(*) FROM usage_reservations WHERE key LIKE '%doomed-%' AND state = 'committed'")
        .await?;
    let used = db
        .scalar_i64("SELECT coalesce(sum(used), 0)::bigint FROM usage_counters")
        .await?;
    let committed = db
        .scalar_i64("SELECT coalesce(sum(actual), 0)::bigint FROM usage_reservations WHERE state = 'committed'")
        .await?;
    let unbalanced = db.scalar_i64(UNBALANCED_COUNTERS).await?;
    db.drop_database().await?;

    let mut section = Section::new("Chaos: server killed holding usage reservations");
    section.line(format!(
        "{requests} AI completions (10 tokens reserved each, of a 1,000-token budget) sent to a `serve` whose LLM takes 30 s; once {held} reservations were held, the server was killed with SIGKILL. A second server (`USAGE_RESERVATION_TTL_SECS={TTL_SECS}`) then asked for one completion needing one token more than the dead reservations left: at once ({early}), and after the TTL ({late})."
    ));
    section.table(
        &[
            "held when killed",
            "expired (reclaimed)",
            "committed for dead work",
            "used",
            "committed",
            "counters ≠ their reservations",
        ],
        vec![vec![
            held.to_string(),
            expired.to_string(),
            committed_doomed.to_string(),
            used.to_string(),
            committed.to_string(),
            unbalanced.to_string(),
        ]],
    );
    section.verdict(
        "the dead reservations held until their TTL (402 before it), then the next reserve reclaimed every one (200 after)",
        held == requests as i64 && early == 402 && late == 200 && expired == held,
    );
    section.verdict(
        "nothing counted twice: used = the committed sum, no dead work committed, every counter equal to its reservations",
        used == committed && committed_doomed == 0 && unbalanced == 0,
    );
    Ok(section)
}
