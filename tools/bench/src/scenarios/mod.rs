pub mod auth;
pub mod baseline;
pub mod inbox;
pub mod jobs;
pub mod pgbench;
pub mod webhook;
