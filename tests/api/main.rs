//! Integration tests: the real app over real HTTP against real Postgres. One binary (fast to link),
//! one module per area.
mod errors;
mod health;
mod helpers;
mod jobs;
mod mail;
mod metrics;
mod openapi;
