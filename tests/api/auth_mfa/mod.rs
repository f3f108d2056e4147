//! TOTP MFA and the `require_mfa` guard over real HTTP. Codes are computed from the secret the
//! enrolment returned, like an authenticator app would. Within one test the codes of the current
//! and the next 30 s step are usable (±1 step); each is accepted once.
mod enrolment;
mod recovery_codes;
mod second_factor;
mod step_up;

use serde_json::json;

use crate::support::{
    TestApp,
    auth::{Response, call},
};

const BILLING: &str = "/billing/email";

/// Changes the billing email: a route behind `require_mfa`.
async fn change_billing(app: &TestApp, token: Option<&str>) -> Response {
    call(
        app,
        "PUT",
        BILLING,
        token,
        Some(json!({"email": "Invoices@Example.com"})),
    )
    .await
}
