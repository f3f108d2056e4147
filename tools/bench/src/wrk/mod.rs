//! Runs wrk (Debian's `wrk`, 4.x), a load generator the project did not write, so scenarios are
//! measured by a second client beside ours (`load.rs`). The Lua scripts in `tools/bench/wrk/` are
//! compiled in and written, with the requests, to a fresh temporary directory per run, so the
//! bench works from any directory. Each script prints one `WRK_JSON {...}` line, parsed here.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use serde_json::Value;

const REQUESTS_LUA: &str = include_str!("../../wrk/requests.lua");
const REFRESH_LUA: &str = include_str!("../../wrk/refresh.lua");
const SUMMARY_LUA: &str = include_str!("../../wrk/summary.lua");

/// Bounds a [`once`] run: requests.lua ends it as soon as the last answer is in, so this only
/// matters when the server hangs (or a run is too big for it, which [`once`] reports).
const ONCE_DEADLINE: Duration = Duration::from_secs(600);

/// wrk's `--timeout`: slower answers are counted as timeout errors and left out of the latency
/// figures (wrk does not give up on them, though: the connection waits on).
const TIMEOUT: &str = "10s";

/// This machine's cores: wrk runs one event loop per thread.
const MAX_THREADS: usize = 2;

/// One HTTP request as wrk sends it. wrk adds `Host` and (when there is a body, or the method is
/// not GET, HEAD or DELETE) `Content-Length` itself.
#[derive(Clone)]
pub struct WrkRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

pub struct WrkResult {
    /// Answers received, whatever their status.
    pub requests: u64,
    /// Answers with a status ≥ 400 (wrk's "status" errors; the rest count as success).
    pub status_errors: u64,
    /// `status_errors` plus wrk's connect, read, write and timeout errors.
    pub errors: u64,
    pub elapsed: Duration,
    // The scripts also report p90, p99.9 and the mean (see `raw`): add fields when a table shows
    // them, as an unread field fails `just lint`.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The latencies include wrk's coordinated-omission correction (made-up samples, see
    /// `wrk/summary.lua`), which could not be taken back out: not comparable with ours.
    pub latency_corrected: bool,
    /// Refresh only: requests that found no token to send (after failed refreshes).
    pub starved: u64,
    /// [`once`] only: requests sent.
    pub sent_once: u64,
    /// wrk's stdout, for debugging.
    pub raw: String,
}

impl WrkResult {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The columns of [`crate::load::HEADER`]. wrk only tells statuses below 400 from the rest.
    pub fn row(&self, connections: usize) -> Vec<String> {
        let mut statuses = Vec::new();
        let ok = self.requests.saturating_sub(self.status_errors);
        if ok > 0 {
            statuses.push(format!("<400×{ok}"));
        }
        if self.status_errors > 0 {
            statuses.push(format!("≥400×{}", self.status_errors));
        }
        if self.starved > 0 {
            statuses.push(format!("starved×{}", self.starved));
        }
        if self.latency_corrected {
            statuses.push("(latency CO-corrected)".to_owned());
        }
        vec![
            connections.to_string(),
            self.requests.to_string(),
            self.errors.to_string(),
            format!("{:.0}", self.throughput()),
            format!("{:.2}", self.p50_ms),
            format!("{:.2}", self.p95_ms),
            format!("{:.2}", self.p99_ms),
            format!("{:.2}", self.max_ms),
            statuses.join(" "),
        ]
    }
}

fn not_installed() -> anyhow::Error {
    anyhow!("wrk is not on PATH: install it with `apt-get install wrk` (wrk 4.x, LuaJIT scripting)")
}

/// Fails unless a wrk 4.x is on PATH (the scripts rely on 4.x's Lua API and histogram layout).
pub fn ensure_installed() -> anyhow::Result<()> {
    // `wrk -v` prints e.g. "wrk debian/4.1.0-3+b2 [epoll] Copyright ...", then, given no URL, its
    // usage with exit status 1: only the output tells.
    let output = std::process::Command::new("wrk")
        .arg("-v")
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_installed(),
            _ => anyhow::Error::new(e).context("running `wrk -v`"),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let version = stdout
        .strip_prefix("wrk ")
        .and_then(|rest| rest.split_whitespace().next())
        .map(|v| v.rsplit('/').next().unwrap_or(v))
        .ok_or_else(|| anyhow!("`wrk -v` printed no version: {}", stdout.trim()))?;
    if !version.starts_with("4.") {
        bail!("wrk {version} found, the bench's scripts need wrk 4.x (`apt-get install wrk`)");
    }
    Ok(())
}

/// Sends every request exactly once over `connections`; the run ends when the last answer is in.
pub async fn once(
    addr: SocketAddr,
    connections: usize,
    requests: &[WrkRequest],
) -> anyhow::Result<WrkResult> {
    anyhow::ensure!(!requests.is_empty(), "wrk::once was given no requests");
    let lines = encode_requests(requests)?;
    let result = run(addr, connections, ONCE_DEADLINE, Script::Once, &lines).await?;
    if result.sent_once != requests.len() as u64 {
        bail!(
            "wrk sent {} of {} requests before its {} s deadline:\n{}",
            result.sent_once,
            requests.len(),
            ONCE_DEADLINE.as_secs(),
            result.raw
        );
    }
    Ok(result)
}

/// Sends `request` over and over on `connections` for `duration` (whole seconds: wrk's `-d`).
pub async fn for_duration(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    request: &WrkRequest,
) -> anyhow::Result<WrkResult> {
    let line = encode_requests(std::slice::from_ref(request))?;
    run(addr, connections, duration, Script::Cycle, &line).await
}

/// Refreshes for `duration`, each request spending the refresh token the previous answer on its
/// thread gave. `tokens` (one per session, at least one per connection) are used up.
pub async fn refresh(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    tokens: &[String],
) -> anyhow::Result<WrkResult> {
    anyhow::ensure!(
        tokens.len() >= connections,
        "wrk::refresh needs a token per connection: {} tokens for {connections} connections",
        tokens.len()
    );
    // refresh.lua pastes each token into a JSON string and finds the next with a Lua pattern.
    let plain = |b: u8| b.is_ascii_graphic() && b != b'"' && b != b'\\';
    let mut lines = String::new();
    for token in tokens {
        anyhow::ensure!(
            !token.is_empty() && token.bytes().all(plain),
            "refresh token {token:?} is not plain printable ASCII"
        );
        lines.push_str(token);
        lines.push('\n');
    }
    run(
        addr,
        connections,
        duration,
        Script::Refresh,
        lines.as_bytes(),
    )
    .await
}

#[derive(Clone, Copy)]
enum Script {
    Once,
    Cycle,
    Refresh,
}

/// wrk gives each thread `connections / threads` connections, rounding down: two threads only
/// when that drops none (and never more threads than connections, which wrk refuses).
fn threads_for(connections: usize) -> usize {
    if connections >= MAX_THREADS && connections.is_multiple_of(MAX_THREADS) {
        MAX_THREADS
    } else {
        1
    }
}

async fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    script: Script,
    input: &[u8],
) -> anyhow::Result<WrkResult> {
    anyhow::ensure!(connections > 0, "wrk needs at least one connection");
    let threads = threads_for(connections);
    let seconds = duration.as_secs_f64().round().max(1.0) as u64;
    let dir = TempDir::new()?;
    dir.write("summary.lua", SUMMARY_LUA.as_bytes())?;
    let script_path = match script {
        Script::Refresh => dir.write("refresh.lua", REFRESH_LUA.as_bytes())?,
        Script::Once | Script::Cycle => dir.write("requests.lua", REQUESTS_LUA.as_bytes())?,
    };
    let input_path = dir.write("input.txt", input)?;

    let mut args: Vec<String> = vec![
        "-t".into(),
        threads.to_string(),
        "-c".into(),
        connections.to_string(),
        "-d".into(),
        format!("{seconds}s"),
        "--timeout".into(),
        TIMEOUT.into(),
        "-s".into(),
        script_path.display().to_string(),
        format!("http://{addr}"),
        // The scripts cannot see -t and -c, so they are told again after the file.
        "--".into(),
        input_path.display().to_string(),
    ];
    match script {
        Script::Once => args.push("once".into()),
        Script::Cycle => args.push("cycle".into()),
        Script::Refresh => {}
    }
    args.extend([threads.to_string(), connections.to_string()]);

    let mut command = tokio::process::Command::new("wrk");
    // Dropping the future (the timeout below, or a cancelled scenario) kills wrk.
    command.args(&args).kill_on_drop(true);
    // wrk stops within -d plus its 100 ms polling interval; the margin is for done()'s histogram
    // pass and a loaded machine.
    let output = tokio::time::timeout(Duration::from_secs(seconds + 60), command.output())
        .await
        .map_err(|_| anyhow!("wrk {} did not finish in time", args.join(" ")))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_installed(),
            _ => anyhow::Error::new(e).context("starting wrk"),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "wrk {} failed ({}): {}\n{stdout}",
            args.join(" "),
            output.status,
            stderr.trim()
        );
    }
    parse_output(stdout).with_context(|| format!("wrk {}: {}", args.join(" "), stderr.trim()))
}

/// A directory of its own under the system's temp dir, removed when dropped (also on errors).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("ironclad-wrk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn write(&self, name: &str, contents: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// requests.lua's input: `METHOD \t PATH \t Name: value \x1f Name: value \t BODY \n` per request.
fn encode_requests(requests: &[WrkRequest]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        check(request).with_context(|| {
            format!(
                "request {i} ({} {}) cannot go to wrk",
                request.method, request.path
            )
        })?;
        out.extend_from_slice(request.method.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(request.path.as_bytes());
        out.push(b'\t');
        for (j, (name, value)) in request.headers.iter().enumerate() {
            if j > 0 {
                out.push(0x1f);
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\t');
        out.extend_from_slice(&request.body);
        out.push(b'\n');
    }
    Ok(out)
}

/// Tabs, newlines and \x1f would break the line format; other control bytes (CR above all)
/// would break the HTTP request wrk builds from it.
fn check(request: &WrkRequest) -> anyhow::Result<()> {
    let method = request.method;
    anyhow::ensure!(
        !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()),
        "method {method:?} is not an upper-case word"
    );
    let path = &request.path;
    anyhow::ensure!(
        path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80),
        "path {path:?} must start with / and hold no spaces or control bytes"
    );
    for (name, value) in &request.headers {
        anyhow::ensure!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
            "header name {name:?} is not a token"
        );
        anyhow::ensure!(
            !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length"),
            "header {name} is set by wrk itself"
        );
        anyhow::ensure!(
            value.bytes().all(|b| b == b' ' || !b.is_ascii_control()),
            "header {name} has a control byte (tab, newline, \\x1f, ...) in {value:?}"
        );
    }
    anyhow::ensure!(
        !request
            .body
            .iter()
            .any(|&b| matches!(b, b'\t' | b'\n' | 0x1f)),
        "body has a tab, newline or \\x1f (send compact JSON)"
    );
    Ok(())
}

/// Reads the scripts' `WRK_JSON {...}` line out of wrk's stdout.
fn parse_output(stdout: String) -> anyhow::Result<WrkResult> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("WRK_JSON "))
        .ok_or_else(|| anyhow!("wrk printed no WRK_JSON line:\n{stdout}"))?;
    let json: Value = serde_json::from_str(line).context("the WRK_JSON line is not JSON")?;
    let number = |path: &[&str]| -> anyhow::Result<f64> {
        path.iter()
            .try_fold(&json, |value, key| value.get(*key))
            .and_then(Value::as_f64)
            .ok_or_else(|| anyhow!("WRK_JSON has no number at {}: {line}", path.join(".")))
    };
    let count = |path: &[&str]| number(path).map(|n| n as u64);
    let ms = |key: &str| number(&["latency_us", key]).map(|us| us / 1000.0);
    let status_errors = count(&["errors", "status"])?;
    let mut errors = status_errors;
    for kind in ["connect", "read", "write", "timeout"] {
        errors += count(&["errors", kind])?;
    }
    Ok(WrkResult {
        requests: count(&["requests"])?,
        status_errors,
        errors,
        elapsed: Duration::from_micros(count(&["duration_us"])?),
        p50_ms: ms("p50")?,
        p95_ms: ms("p95")?,
        p99_ms: ms("p99")?,
        max_ms: ms("max")?,
        latency_corrected: json
            .get("latency_corrected")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        starved: count(&["starved"])?,
        sent_once: count(&["sent_once"])?,
        raw: stdout,
    })
}

#[cfg(test)]
mod tests;
