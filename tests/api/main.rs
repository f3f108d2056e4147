//! Integration tests: the real app over real HTTP against real Postgres. One binary (fast to link),
//! one module per area.
mod admin;
mod auth;
mod auth_mfa;
mod bad_input;
mod billing;
mod billing_cancel;
mod billing_http;
mod billing_operator;
mod billing_properties;
mod billing_webhooks;
mod dev_loop;
mod errors;
mod health;
mod housekeeping;
mod idempotency;
mod jobs;
mod mail;
mod metrics;
mod migrations;
mod openapi;
mod orgs;
mod security;
mod subscriptions;
mod support;
mod telemetry;
mod usage;
