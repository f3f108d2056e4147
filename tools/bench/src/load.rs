//! A small closed-loop HTTP/1.1 load generator: N connections, each sending its next request as
//! soon as the previous answer is read (keep-alive), until the shared request budget is spent.
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Mutex};

/// Builds request number `i` (0-based, unique across connections).
pub type MakeRequest = Arc<dyn Fn(usize) -> Request<Full<Bytes>> + Send + Sync>;

pub struct LoadResult {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
    /// Status code counts, e.g. [(200, 9990), (500, 10)].
    pub statuses: Vec<(u16, usize)>,
}

impl LoadResult {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.latency_us.value_at_quantile(p) as f64 / 1000.0
    }
}

/// Rounds each scenario repeats its headline measurement: this machine is a shared VM whose speed
/// drifts by a tenth or more from one minute to the next, so verdicts go by the median round.
pub const ROUNDS: usize = 3;

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Sends `total` requests over `connections` keep-alive connections to `addr`.
/// `ok` decides which status codes count as success (the rest are errors).
pub async fn run(
    addr: SocketAddr,
    connections: usize,
    total: usize,
    make: MakeRequest,
    ok: fn(u16) -> bool,
) -> anyhow::Result<LoadResult> {
    run_spread(&[addr], connections, total, make, ok).await
}

/// Like [`run`], with connection `c` going to `addrs[c % addrs.len()]` (several servers at once).
pub async fn run_spread(
    addrs: &[SocketAddr],
    connections: usize,
    total: usize,
    make: MakeRequest,
    ok: fn(u16) -> bool,
) -> anyhow::Result<LoadResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Mutex::new((
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
        std::collections::BTreeMap::<u16, usize>::new(),
        0usize,
    )));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addrs[c % addrs.len()];
        let (next, shared, make) = (next.clone(), shared.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let mut errors = 0usize;
            let mut sender = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if sender.is_none() {
                    sender = connect(addr).await.ok();
                }
                let Some(conn) = sender.as_mut() else {
                    errors += 1;
                    continue;
                };
                let sent = Instant::now();
                match send(conn, make(i)).await {
                    Ok(status) => {
                        local.saturating_record(sent.elapsed().as_micros() as u64);
                        *statuses.entry(status).or_default() += 1;
                        if !ok(status) {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        sender = None;
                    }
                }
            }
            let mut guard = shared.lock().await;
            guard.0.add(&local).unwrap();
            for (status, n) in statuses {
                *guard.1.entry(status).or_default() += n;
            }
            guard.2 += errors;
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    let (latency_us, statuses, errors) = Arc::try_unwrap(shared)
        .map_err(|_| anyhow::anyhow!("load tasks still hold results"))?
        .into_inner();
    Ok(LoadResult {
        requests: total,
        errors,
        elapsed,
        latency_us,
        statuses: statuses.into_iter().collect(),
    })
}

/// Builds a chained request from a connection's state ([`run_chained`]).
pub type MakeChained<S> = Arc<dyn Fn(&S) -> Request<Full<Bytes>> + Send + Sync>;
/// The next state from an answer's status and body; `None` stops the connection.
pub type NextState<S> = Arc<dyn Fn(S, u16, &[u8]) -> Option<S> + Send + Sync>;

/// Like [`run`], for requests that depend on the previous answer: connection `c` starts from
/// `states[c]`, builds each request from its state, and `next` makes the next state from the
/// answer's status and body (a rotated refresh token). A connection whose `next` gives `None` stops.
pub async fn run_chained<S: Send + 'static>(
    addr: SocketAddr,
    states: Vec<S>,
    total: usize,
    make: MakeChained<S>,
    next: NextState<S>,
) -> anyhow::Result<LoadResult> {
    let remaining = Arc::new(AtomicUsize::new(total));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for state in states {
        let (remaining, make, next) = (remaining.clone(), make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let (mut sent, mut errors) = (0usize, 0usize);
            let Ok(mut conn) = connect(addr).await else {
                return (latency, statuses, sent, 1);
            };
            let mut state = Some(state);
            while let Some(current) = state.take() {
                if remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                let request = make(&current);
                let begun = Instant::now();
                sent += 1;
                match send_reading(&mut conn, request).await {
                    Ok((status, body)) => {
                        latency.saturating_record(begun.elapsed().as_micros() as u64);
                        *statuses.entry(status).or_default() += 1;
                        state = next(current, status, &body);
                        if state.is_none() || !(200..300).contains(&status) {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (latency, statuses, sent, errors)
        }));
    }
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let (mut requests, mut errors) = (0, 0);
    for task in tasks {
        let (latency, counted, sent, failed) = task.await?;
        latency_us.add(&latency)?;
        for (status, n) in counted {
            *statuses.entry(status).or_default() += n;
        }
        requests += sent;
        errors += failed;
    }
    Ok(LoadResult {
        requests,
        errors,
        elapsed: started.elapsed(),
        latency_us,
        statuses: statuses.into_iter().collect(),
    })
}

async fn connect(addr: SocketAddr) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<u16> {
    Ok(send_reading(sender, request).await?.0)
}

async fn send_reading(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// One request on a fresh connection, given up after `timeout`: `Ok(None)` means it hung.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<Option<u16>> {
    let attempt = async {
        let mut sender = connect(addr).await?;
        send(
            &mut sender,
            request("GET", path).body(Full::new(Bytes::new()))?,
        )
        .await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result.map(Some),
        Err(_) => Ok(None),
    }
}

/// A request builder with the headers every scenario needs.
pub fn request(method: &str, path: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
}

/// Column names matching [`LoadResult::row`].
pub const HEADER: &[&str] = &[
    "connections",
    "requests",
    "errors",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "statuses",
];

impl LoadResult {
    pub fn row(&self, connections: usize) -> Vec<String> {
        vec![
            connections.to_string(),
            self.requests.to_string(),
            self.errors.to_string(),
            format!("{:.0}", self.throughput()),
            format!("{:.2}", self.percentile_ms(0.50)),
            format!("{:.2}", self.percentile_ms(0.95)),
            format!("{:.2}", self.percentile_ms(0.99)),
            format!("{:.2}", self.latency_us.max() as f64 / 1000.0),
            self.statuses
                .iter()
                .map(|(status, n)| format!("{status}×{n}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]
    }
}
