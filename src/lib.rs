//! Ironclad: a SaaS backend starter. See README.md for the tour.
//!
//! Infrastructure (`config`, `db`, `http`, `jobs`, `mail`, `telemetry`, `metrics`, `housekeeping`)
//! knows no feature layer. Feature layers (`auth`, `orgs`, `billing`, `admin`, `audit_log`, `usage`, `ai`) know infrastructure and at
//! most a small published part of another layer. `startup` is the one composition root: it alone
//! imports every layer. `tests/architecture.rs` holds this to be true.
pub mod admin;
pub mod ai;
pub mod audit_log;
pub mod auth;
pub mod billing;
pub mod config;
pub mod db;
pub mod housekeeping;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod orgs;
pub mod startup;
pub mod telemetry;
pub mod usage;
