//! The same requests from two clients: ours (`load.rs`) and wrk, a load generator the project did
//! not write (Debian's `wrk`, scripted in Lua: `tools/bench/wrk/`). Ours once hid a 40 ms stall
//! that every real client hit (sqlx 0.9.0 stopped setting TCP_NODELAY, so a statement spanning
//! several TCP segments waited for Postgres' delayed ACK, and our client's request pattern happened
//! not to trigger it): a scenario whose two figures disagree by more than [`AGREE`] FAILs.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::Full;
use serde_json::Value;

use super::auth::call;
use crate::{
    load::{self, LoadResult},
    report::Section,
    wrk::{self, WrkRequest, WrkResult},
};

/// The connection counts every compared scenario runs at.
pub const LEVELS: [usize; 3] = [16, 64, 256];

/// The most the two clients' throughputs may differ: the larger over the smaller.
pub const AGREE: f64 = 1.5;

/// One connection count measured by both clients, one after the other.
pub struct Pair {
    pub connections: usize,
    pub ours: LoadResult,
    pub wrk: WrkResult,
}

impl Pair {
    /// The larger throughput over the smaller (1.0: the same).
    pub fn disagreement(&self) -> f64 {
        let (a, b) = (self.ours.throughput(), self.wrk.throughput());
        a.max(b) / a.min(b).max(1e-9)
    }
}

/// `GET path`, with a bearer token when given: the same every time, for both clients.
pub fn get(path: impl Into<String>, bearer: Option<&str>) -> WrkRequest {
    WrkRequest {
        method: "GET",
        path: path.into(),
        headers: bearer
            .map(|token| vec![("Authorization".to_owned(), format!("Bearer {token}"))])
            .unwrap_or_default(),
        body: Bytes::new(),
    }
}

/// `POST path` with a JSON body: the same every time, for both clients.
pub fn post_json(path: impl Into<String>, body: &Value) -> WrkRequest {
    WrkRequest {
        method: "POST",
        path: path.into(),
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        body: Bytes::from(body.to_string()),
    }
}

/// The same request, as our client sends it.
fn as_ours(fixed: &WrkRequest) -> load::MakeRequest {
    let fixed = fixed.clone();
    Arc::new(move |_| {
        let mut request = load::request(fixed.method, &fixed.path);
        for (name, value) in &fixed.headers {
            request = request.header(name, value);
        }
        request
            .body(Full::new(fixed.body.clone()))
            .expect("request")
    })
}

fn success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The same client time for both: wrk runs as long as ours took, within 2 to 10 s.
fn wrk_time(ours: &LoadResult) -> Duration {
    ours.elapsed
        .clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// At each of [`LEVELS`]: `requests` sent by ours, then wrk for as long.
pub async fn compare(
    addr: SocketAddr,
    fixed: &WrkRequest,
    requests: usize,
) -> anyhow::Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    for connections in LEVELS {
        let ours = load::run(addr, connections, requests, as_ours(fixed), success).await?;
        let wrk = wrk::for_duration(addr, connections, wrk_time(&ours), fixed).await?;
        pairs.push(Pair {
            connections,
            ours,
            wrk,
        });
    }
    Ok(pairs)
}

/// Token refresh, where every request spends the token the previous answer gave (rotation; a
/// token presented twice ends its session): each connection of each client starts from a session
/// of its own, signed in with `credentials` first.
pub async fn compare_refresh(
    addr: SocketAddr,
    credentials: &Value,
    requests: usize,
) -> anyhow::Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    for connections in LEVELS {
        let tokens = refresh_tokens(addr, credentials, connections).await?;
        let make: load::MakeChained<String> = Arc::new(|token: &String| {
            let body = serde_json::json!({ "refresh_token": token }).to_string();
            load::request("POST", "/api/v1/auth/refresh")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("request")
        });
        let next: load::NextState<String> = Arc::new(|_, status, body| {
            let pair: Value = serde_json::from_slice(body).ok()?;
            success(status)
                .then(|| pair["refresh_token"].as_str().map(str::to_owned))
                .flatten()
        });
        let ours = load::run_chained(addr, tokens, requests, make, next).await?;
        let tokens = refresh_tokens(addr, credentials, connections).await?;
        let wrk = wrk::refresh(addr, connections, wrk_time(&ours), &tokens).await?;
        pairs.push(Pair {
            connections,
            ours,
            wrk,
        });
    }
    Ok(pairs)
}

/// `count` fresh sessions' refresh tokens (8 sign-ins at a time: each is an Argon2id verify).
async fn refresh_tokens(
    addr: SocketAddr,
    credentials: &Value,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    stream::iter(0..count)
        .map(|_| async {
            let (status, pair) =
                call(addr, "/api/v1/auth/login", None, credentials.clone()).await?;
            anyhow::ensure!(status == 200, "login answered {status}");
            pair["refresh_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("login gave no refresh token"))
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

pub const HEADER: &[&str] = &[
    "what",
    "connections",
    "ours req/s",
    "ours p50 ms",
    "ours p99 ms",
    "ours errors",
    "wrk req/s",
    "wrk p50 ms",
    "wrk p99 ms",
    "wrk errors",
    "larger ÷ smaller",
];

pub fn rows(what: &str, pairs: &[Pair]) -> Vec<Vec<String>> {
    pairs
        .iter()
        .map(|pair| {
            vec![
                what.to_owned(),
                pair.connections.to_string(),
                format!("{:.0}", pair.ours.throughput()),
                format!("{:.2}", pair.ours.percentile_ms(0.50)),
                format!("{:.2}", pair.ours.percentile_ms(0.99)),
                pair.ours.errors.to_string(),
                format!("{:.0}", pair.wrk.throughput()),
                format!("{:.2}", pair.wrk.p50_ms),
                format!("{:.2}", pair.wrk.p99_ms),
                pair.wrk.errors.to_string(),
                format!("{:.2}", pair.disagreement()),
            ]
        })
        .collect()
}

/// One table of every operation's pairs, then each operation's verdict.
pub fn report(section: &mut Section, compared: &[(&str, Vec<Pair>)]) {
    let rows = compared
        .iter()
        .flat_map(|(what, pairs)| rows(what, pairs))
        .collect();
    section.table(HEADER, rows);
    for (what, pairs) in compared {
        verdict(section, what, pairs);
    }
}

/// PASS when the two clients agree within [`AGREE`] at every level and neither saw an error.
pub fn verdict(section: &mut Section, what: &str, pairs: &[Pair]) {
    let worst = pairs.iter().map(Pair::disagreement).fold(1.0, f64::max);
    let errors: u64 = pairs
        .iter()
        .map(|p| p.ours.errors as u64 + p.wrk.errors)
        .sum();
    section.verdict(
        &format!(
            "{what}: our client and wrk within {AGREE}× at 16, 64 and 256 connections (worst {worst:.2}×), {errors} errors"
        ),
        worst <= AGREE && errors == 0,
    );
}
