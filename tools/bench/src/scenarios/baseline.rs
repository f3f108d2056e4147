//! Baseline: `GET /healthz` (no database) — the ceiling the HTTP stack and each load generator
//! reach on this machine, against which the other scenarios can be read.
use ironclad::mail::MailSink;

use super::clients;
use crate::{
    env::{BenchDb, Server},
    report::Section,
};

pub async fn run(db: &BenchDb, requests: usize) -> anyhow::Result<Section> {
    let sink = MailSink::start().await?;
    let server = Server::start(db, &sink, &["serve", "--no-workers"], &[]).await?;
    let pairs = clients::compare(server.addr, &clients::get("/healthz", None), requests).await?;
    server.stop().await?;
    let mut section = Section::new("Baseline: GET /healthz");
    section.line(format!("No database work: the ceiling of the HTTP stack plus a load generator sharing this machine's cores. Our client sends {requests} requests per row, then wrk runs as long (2 to 10 s)."));
    clients::report(&mut section, &[("`GET /healthz`", pairs)]);
    Ok(section)
}
