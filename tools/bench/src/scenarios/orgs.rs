//! The organisation guard's cost: `GET /api/v1/orgs/{org}` with a user's token and with an API
//! key, next to `GET /api/v1/me` in the same run, rounds interleaved so drift weighs on all three.
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use ironclad::mail::MailSink;
use serde_json::json;

use super::{auth::call, clients};
use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
};

const EMAIL: &str = "bench-orgs@example.com";
const PASSWORD: &str = "correct horse battery staple 42";

fn get(path: String, bearer: String) -> load::MakeRequest {
    Arc::new(move |_| {
        load::request("GET", &path)
            .header("authorization", &bearer)
            .body(Full::new(Bytes::new()))
            .expect("request")
    })
}

pub async fn run(db: &BenchDb, reads: usize) -> anyhow::Result<Section> {
    let sink = MailSink::start().await?;
    let env: [(&str, String); 0] = [];
    let server = Server::start(db, &sink, &["serve", "--no-workers"], &env).await?;
    let token = super::auth::verified_token(server.addr, db, EMAIL, PASSWORD).await?;
    let body = json!({"name": "Bench Ltd", "slug": "bench-ltd"});
    let (status, org) = call(server.addr, "/api/v1/orgs", Some(&token), body).await?;
    anyhow::ensure!(status == 201, "creating the org answered {status}");
    let org = org["id"].as_str().unwrap_or_default().to_owned();
    let body = json!({"name": "bench", "scopes": ["org:read"]});
    let path = format!("/api/v1/orgs/{org}/api-keys");
    let (status, key) = call(server.addr, &path, Some(&token), body).await?;
    anyhow::ensure!(status == 201, "creating the key answered {status}");
    let key = key["key"].as_str().unwrap_or_default().to_owned();

    let reads_of = [
        (
            "`GET /me`, user token",
            get("/api/v1/me".into(), format!("Bearer {token}")),
        ),
        (
            "`GET /orgs/{org}`, user token",
            get(format!("/api/v1/orgs/{org}"), format!("Bearer {token}")),
        ),
        (
            "`GET /orgs/{org}`, API key",
            get(format!("/api/v1/orgs/{org}"), format!("Bearer {key}")),
        ),
    ];
    let mut rounds: Vec<Vec<load::LoadResult>> = reads_of.iter().map(|_| Vec::new()).collect();
    for _ in 0..load::ROUNDS {
        for (i, (_, make)) in reads_of.iter().enumerate() {
            rounds[i].push(load::run(server.addr, 64, reads, make.clone(), |s| s == 200).await?);
        }
    }
    // The same reads from both clients, at 16, 64 and 256 connections.
    let compared = [
        (
            "`GET /orgs/{org}`, user token",
            clients::compare(
                server.addr,
                &clients::get(format!("/api/v1/orgs/{org}"), Some(&token)),
                reads,
            )
            .await?,
        ),
        (
            "`GET /orgs/{org}`, API key",
            clients::compare(
                server.addr,
                &clients::get(format!("/api/v1/orgs/{org}"), Some(&key)),
                reads,
            )
            .await?,
        ),
    ];
    server.stop().await?;

    let median = |results: &[load::LoadResult]| {
        load::median(results.iter().map(|r| r.throughput()).collect())
    };
    let me = median(&rounds[0]);
    let mut section = Section::new("Organisation reads: GET /api/v1/orgs/{org}");
    section.line(format!(
        "One account owning one organisation (and an `org:read` API key of it), 64 connections, {} rounds; each round runs the three reads in turn, so all three share the machine's drift. The verdicts compare medians. `GET /me` checks the session and reads the account (one query); `GET /orgs/{{org}}` reads the session, the membership, its role and the org in one query (with a key: the key and its org), and answers from it.",
        load::ROUNDS
    ));
    let mut rows = Vec::new();
    for (i, (label, _)) in reads_of.iter().enumerate() {
        for result in &rounds[i] {
            let mut row = vec![label.to_string()];
            row.extend(result.row(64));
            rows.push(row);
        }
    }
    let mut header = vec!["read"];
    header.extend(load::HEADER);
    section.table(&header, rows);
    let errors: usize = rounds.iter().flatten().map(|r| r.errors).sum();
    for (i, label) in [(1, "a user token"), (2, "an API key")] {
        let rate = median(&rounds[i]);
        section.verdict(
            &format!("`GET /orgs/{{org}}` with {label}: ≥ 8,000 requests/s (median {rate:.0})"),
            rate >= 8_000.0,
        );
        section.verdict(
            &format!(
                "`GET /orgs/{{org}}` with {label}: ≥ 0.6 × `GET /me` ({:.2} × of {me:.0})",
                rate / me.max(1.0)
            ),
            rate >= 0.6 * me,
        );
    }
    section.verdict("no errors", errors == 0);
    section.line(format!("Both clients, at 16, 64 and 256 connections: our client sends {reads} requests per row, then wrk runs as long (2 to 10 s)."));
    clients::report(&mut section, &compared);
    Ok(section)
}
