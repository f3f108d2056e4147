pub mod auth;
pub mod baseline;
pub mod inbox;
pub mod jobs;
pub mod orgs;
pub mod pgbench;
pub mod subscriptions;
pub mod webhook;
