//! Ironclad: a SaaS backend starter. See README.md for the tour.
pub mod admin;
pub mod auth;
pub mod billing;
pub mod config;
pub mod db;
pub mod housekeeping;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod startup;
pub mod telemetry;
