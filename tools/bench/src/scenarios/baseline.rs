//! Baseline: `GET /healthz` (no database) — the ceiling the HTTP stack and load generator reach on
//! this machine, against which the other scenarios can be read.
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use ironclad::mail::MailSink;

use crate::{
    env::{BenchDb, Server},
    load,
    report::Section,
};

pub async fn run(db: &BenchDb, requests: usize) -> anyhow::Result<Section> {
    let sink = MailSink::start().await?;
    let server = Server::start(db, &sink, &["serve", "--no-workers"], &[]).await?;
    let make: load::MakeRequest = Arc::new(|_| {
        load::request("GET", "/healthz")
            .body(Full::new(Bytes::new()))
            .unwrap()
    });
    let mut rows = Vec::new();
    for connections in [16, 64] {
        let result = load::run(server.addr, connections, requests, make.clone(), |s| {
            s == 200
        })
        .await?;
        rows.push(result.row(connections));
    }
    server.stop().await?;
    let mut section = Section::new("Baseline: GET /healthz");
    section.line("No database work: the ceiling of the HTTP stack plus load generator sharing this machine's cores.".to_owned());
    section.table(load::HEADER, rows);
    Ok(section)
}
