//! What the tests share: the app under test ([`app`]), accounts and sign-ins ([`auth`]), billing
//! wired to the fake Stripe ([`billing`]), jobs queued by hand ([`jobs`]), and the fake of Stripe's
//! API itself ([`fake_stripe`], the `tools/fake-stripe` crate, re-exported so tests name it through
//! here). Helpers only one test file uses stay in that file; helpers that one area's files share
//! (`admin/`, `auth_mfa/`, ...) stay in that area's `mod.rs`.
pub mod app;
pub mod auth;
pub mod billing;
pub mod jobs;

pub use app::TestApp;
pub use fake_stripe;
