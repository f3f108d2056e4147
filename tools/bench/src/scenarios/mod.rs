pub mod auth;
pub mod baseline;
pub mod jobs;
pub mod webhook;
pub mod pgbench;
