//! Login (Argon2id-bound) next to the raw Argon2 verify rate of the same parameters on the same
//! cores, and an authenticated read (`GET /api/v1/me`).
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use ironclad::{auth::password, mail::MailSink};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::clients;
use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
};

const EMAIL: &str = "bench-login@example.com";
const READER_EMAIL: &str = "bench-reader@example.com";
const PASSWORD: &str = "correct horse battery staple 42";

/// One POST with a JSON body (and a bearer token, when given): its status and JSON answer.
pub(crate) async fn call(
    addr: std::net::SocketAddr,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut request = load::request("POST", path).header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body.to_string())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Registers `email`, marks it verified (as its link would) and signs in: the access token.
pub(crate) async fn verified_token(
    addr: std::net::SocketAddr,
    db: &BenchDb,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let account = serde_json::json!({"email": email, "password": password});
    let (status, _) = call(addr, "/api/v1/auth/register", None, account.clone()).await?;
    anyhow::ensure!(status == 201, "register answered {status}");
    db.scalar_i64(&format!(
        "WITH v AS (UPDATE users SET email_verified_at = now() WHERE email = '{email}' RETURNING 1) \
         SELECT count(*) FROM v"
    ))
    .await?;
    let (status, tokens) = call(addr, "/api/v1/auth/login", None, account).await?;
    anyhow::ensure!(status == 200, "login answered {status}");
    Ok(tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// How many Argon2id verifications per second this machine does with every core busy.
async fn raw_verify_rate(seconds: u64) -> anyhow::Result<f64> {
    let secret = SecretString::from(PASSWORD);
    let hash = password::hash(&secret).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let tasks: Vec<_> = (0..cores)
        .map(|_| {
            let (secret, hash, done) = (secret.clone(), hash.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    password::verify(&secret, Some(hash.clone()))
                        .await
                        .expect("verify");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(db: &BenchDb, logins: usize, reads: usize) -> anyhow::Result<Vec<Section>> {
    let sink = MailSink::start().await?;
    // The bench is one client hammering one account from one address: lift the brute-force limits.
    let env = [
        (
            "AUTH_LOGIN_MAX_ATTEMPTS_PER_ACCOUNT",
            "1000000000".to_owned(),
        ),
        ("AUTH_LOGIN_MAX_ATTEMPTS_PER_IP", "1000000000".to_owned()),
    ];
    let server = Server::start(db, &sink, &["serve", "--no-workers"], &env).await?;
    let credentials = json!({"email": EMAIL, "password": PASSWORD});
    let (status, _) = call(
        server.addr,
        "/api/v1/auth/register",
        None,
        credentials.clone(),
    )
    .await?;
    anyhow::ensure!(status == 201, "register answered {status}");

    let body = Bytes::from(credentials.to_string());
    let make: load::MakeRequest = Arc::new(move |_| {
        load::request("POST", "/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .expect("request")
    });
    // Same cores, same parameters, no HTTP, no database: the ceiling for login. Measured before and
    // after each login round, and each round compared with the mean of the two, so a drift in the
    // machine's speed meanwhile (a shared VM's does) weighs on both sides of the ratio alike.
    let mut raw = vec![raw_verify_rate(5).await?];
    let mut login_rounds = Vec::new();
    for _ in 0..load::ROUNDS {
        let login = load::run(server.addr, 64, logins, make.clone(), |s| s == 200).await?;
        raw.push(raw_verify_rate(5).await?);
        let ratio = login.throughput() / ((raw[raw.len() - 2] + raw[raw.len() - 1]) / 2.0);
        login_rounds.push((login, ratio));
    }
    let ratio = load::median(login_rounds.iter().map(|(_, ratio)| *ratio).collect());
    let login_errors: usize = login_rounds.iter().map(|(login, _)| login.errors).sum();

    // The read is made by an account of its own: the login bench just left a thousand live sessions
    // on the first one, which no real account has.
    let reader = json!({"email": READER_EMAIL, "password": PASSWORD});
    let (status, _) = call(server.addr, "/api/v1/auth/register", None, reader.clone()).await?;
    anyhow::ensure!(status == 201, "register answered {status}");
    let (status, tokens) = call(server.addr, "/api/v1/auth/login", None, reader).await?;
    anyhow::ensure!(status == 200, "login answered {status}");
    let bearer = format!(
        "Bearer {}",
        tokens["access_token"].as_str().unwrap_or_default()
    );
    let make: load::MakeRequest = Arc::new(move |_| {
        load::request("GET", "/api/v1/me")
            .header("authorization", &bearer)
            .body(Full::new(Bytes::new()))
            .expect("request")
    });
    let mut reads_rounds = Vec::new();
    for _ in 0..load::ROUNDS {
        reads_rounds.push(load::run(server.addr, 64, reads, make.clone(), |s| s == 200).await?);
    }
    // The same three operations from both clients, at 16, 64 and 256 connections.
    let token = tokens["access_token"].as_str().unwrap_or_default();
    let reader = json!({"email": READER_EMAIL, "password": PASSWORD});
    let compared = [
        (
            "`POST /auth/login`",
            clients::compare(
                server.addr,
                &clients::post_json("/api/v1/auth/login", &credentials),
                logins / 3,
            )
            .await?,
        ),
        (
            "`POST /auth/refresh`",
            clients::compare_refresh(server.addr, &reader, reads / 10).await?,
        ),
        (
            "`GET /me`",
            clients::compare(server.addr, &clients::get("/api/v1/me", Some(token)), reads).await?,
        ),
    ];
    server.stop().await?;
    let reads_per_sec = load::median(reads_rounds.iter().map(|r| r.throughput()).collect());
    let read_errors: usize = reads_rounds.iter().map(|r| r.errors).sum();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut login_section = Section::new("Login vs raw Argon2id");
    login_section.line(format!(
        "`POST /api/v1/auth/login` (one account, correct password) at 64 connections, in {} rounds; before the first and after each, the raw Argon2id verify rate (m = {} KiB, t = {}, p = {}) on all {cores} cores with no HTTP or database, in the same process run. Each round is compared with the mean of the raw rates measured around it; the verdict takes the median round.",
        load::ROUNDS,
        password::M_COST_KIB,
        password::T_COST,
        password::P_COST,
    ));
    login_section.table(
        load::HEADER,
        login_rounds
            .iter()
            .map(|(login, _)| login.row(64))
            .collect(),
    );
    login_section.table(
        &[
            "round",
            "login/s",
            "raw verify/s before",
            "raw verify/s after",
            "ratio",
        ],
        login_rounds
            .iter()
            .enumerate()
            .map(|(i, (login, ratio))| {
                vec![
                    (i + 1).to_string(),
                    format!("{:.1}", login.throughput()),
                    format!("{:.1}", raw[i]),
                    format!("{:.1}", raw[i + 1]),
                    format!("{ratio:.2}"),
                ]
            })
            .collect(),
    );
    login_section.verdict(
        &format!("login reaches ≥ 0.8 of the raw verify rate (median {ratio:.2})"),
        ratio >= 0.8 && login_errors == 0,
    );

    let mut me_section = Section::new("Authenticated read: GET /api/v1/me");
    me_section.line("A valid access token on every request (an account with one session), 64 connections. Each request checks the session is still live and reads the account: one query.".to_owned());
    me_section.table(
        load::HEADER,
        reads_rounds.iter().map(|r| r.row(64)).collect(),
    );
    me_section.verdict(
        &format!(
            "≥ 10,000 requests/s (median of {} rounds: {reads_per_sec:.0})",
            load::ROUNDS
        ),
        reads_per_sec >= 10_000.0 && read_errors == 0,
    );

    let mut both = Section::new("Two clients: login, token refresh, GET /me");
    both.line(format!(
        "Each operation at 16, 64 and 256 connections: our client sends its requests ({} logins, {} refreshes, {reads} reads per row), then wrk runs as long (2 to 10 s). A refresh spends the token the previous answer gave (each connection starts from a session of its own; wrk's Lua script chains them the same way).",
        logins / 3,
        reads / 10
    ));
    clients::report(&mut both, &compared);

    Ok(vec![login_section, me_section, both])
}
