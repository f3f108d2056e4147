//! Jobs the tests queue by hand.
use ironclad::mail::SendEmail;
use serde_json::json;

/// A welcome email to `to`: a job that runs in a moment and needs nothing but the mailer.
pub fn welcome(to: &str) -> SendEmail {
    SendEmail {
        to: to.into(),
        template: "welcome".into(),
        context: json!({"name": "Ada", "app_url": "https://app.example.com"}),
        message_key: None,
    }
}
