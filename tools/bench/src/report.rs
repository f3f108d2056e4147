//! Collects scenario results, prints them, and renders BENCHMARKS.md.
use std::fmt::Write as _;

pub struct Section {
    title: String,
    body: String,
    pub passed: bool,
}

impl Section {
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            body: String::new(),
            passed: true,
        }
    }

    pub fn line(&mut self, text: String) {
        let _ = writeln!(self.body, "{text}\n");
    }

    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        let _ = writeln!(self.body, "| {} |", header.join(" | "));
        let _ = writeln!(self.body, "|{}", "---|".repeat(header.len()));
        for row in rows {
            let _ = writeln!(self.body, "| {} |", row.join(" | "));
        }
        self.body.push('\n');
    }

    /// A PASS/FAIL line: thresholds live in the benchmark's output, not in timed tests.
    pub fn verdict(&mut self, what: &str, ok: bool) {
        self.passed &= ok;
        let _ = writeln!(
            self.body,
            "- **{}** {what}\n",
            if ok { "PASS" } else { "FAIL" }
        );
    }

    pub fn render(&self) -> String {
        format!("## {}\n\n{}", self.title, self.body)
    }
}

pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub postgres: String,
    pub os: String,
}

impl Machine {
    pub async fn detect(db: &crate::env::BenchDb) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let postgres = match db
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SHOW server_version",
            ))
            .await
        {
            Ok(Some(row)) => row.try_get_by_index::<String>(0).unwrap_or_default(),
            _ => "unknown".into(),
        };
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                    l.trim_start_matches("PRETTY_NAME=")
                        .trim_matches('"')
                        .to_owned()
                })
            })
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            postgres,
            os,
        }
    }
}

use sea_orm::ConnectionTrait;

pub fn document(command: &str, machine: &Machine, sections: &[Section]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Produced by `{command}` on {} (UTC). Release build; servers and load generator share the machine over loopback, against a local Postgres.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    );
    let _ = writeln!(
        out,
        "Machine: {} cores, {}, {}; PostgreSQL {}.\n",
        machine.cores, machine.cpu, machine.os, machine.postgres
    );
    let _ = writeln!(
        out,
        "Targets are the ones Ironclad promises (issue #5); a FAIL line is open work, not a flaky test. `--quick` runs a tenth of the load, so its figures are noisier than a full run's.\n"
    );
    for section in sections {
        out.push_str(&section.render());
    }
    out
}
