//! The account-takeover and stale-credential paths closed by the security hardening: each test
//! fails without its fix (SECURITY.md maps every threat to its test).
mod admin_routes;
mod ended_sessions;
mod headers;
mod reauthentication;
mod unverified_accounts;
