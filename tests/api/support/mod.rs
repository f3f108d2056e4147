//! What the tests share: the app under test ([`app`]), accounts and sign-ins ([`auth`]), billing
//! with its fake Stripe ([`billing`]), jobs queued by hand ([`jobs`]), and the one fake of Stripe's
//! API itself ([`fake_stripe`], the `tools/fake-stripe` crate). Helpers only one test file uses stay in that file; helpers one area's
//! files share (say `admin/`) stay in that area's `mod.rs`.
pub mod app;
pub mod auth;
pub mod billing;
pub mod jobs;

pub(crate) use crate::fake_stripe;
pub use app::TestApp;
