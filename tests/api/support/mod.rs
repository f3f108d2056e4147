//! What the tests share: the app under test ([`app`]), accounts and sign-ins ([`auth`]), billing
//! wired to the fake Stripe ([`billing`]; the fake itself is the `fake_stripe` crate,
//! `tools/fake-stripe`), jobs queued by hand ([`jobs`]). Helpers only one test file uses stay in
//! that file; helpers that one area's files share (`admin/`, `auth_mfa/`, ...) stay in that area's
//! `mod.rs`.
pub mod app;
pub mod auth;
pub mod billing;
pub mod jobs;

pub use app::TestApp;
