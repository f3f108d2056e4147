//! Integration tests: the real app over real HTTP against real Postgres. One binary (fast to link),
//! one module per area.
mod auth;
mod auth_mfa;
mod auth_support;
mod errors;
mod health;
mod helpers;
mod jobs;
mod mail;
mod openapi;
