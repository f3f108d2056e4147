//! The auth layer's one error type, mapped once to problem+json.
use std::time::Duration;

use actix_web::http::{StatusCode, header};

use crate::http::problem::{self, Problem};

/// Problem types of the auth layer. Clients branch on these, never on titles.
pub mod types {
    pub const INVALID_CREDENTIALS: &str = "urn:ironclad:problem:invalid-credentials";
    pub const UNAUTHENTICATED: &str = "urn:ironclad:problem:unauthenticated";
    pub const MFA_REQUIRED: &str = "urn:ironclad:problem:mfa-required";
    pub const MFA_ENROLMENT_REQUIRED: &str = "urn:ironclad:problem:mfa-enrolment-required";
    pub const INVALID_MFA_CODE: &str = "urn:ironclad:problem:invalid-mfa-code";
    pub const INVALID_MFA_TOKEN: &str = "urn:ironclad:problem:invalid-mfa-token";
    pub const INVALID_REFRESH_TOKEN: &str = "urn:ironclad:problem:invalid-refresh-token";
    pub const INVALID_EMAIL_TOKEN: &str = "urn:ironclad:problem:invalid-or-expired-token";
    pub const RATE_LIMITED: &str = "urn:ironclad:problem:rate-limited";
    pub const FORBIDDEN: &str = "urn:ironclad:problem:forbidden";
    pub const MFA_ALREADY_ENABLED: &str = "urn:ironclad:problem:mfa-already-enabled";
    pub const MFA_NOT_PENDING: &str = "urn:ironclad:problem:mfa-enrolment-not-started";
    pub const EMAIL_VERIFICATION_REQUIRED: &str =
        "urn:ironclad:problem:email-verification-required";
}

/// Where a client goes to raise its session to `aal2`.
pub const STEP_UP_PATH: &str = "/api/v1/auth/step-up";
/// Where a client asks for a new email verification link.
pub const RESEND_VERIFICATION_PATH: &str = "/api/v1/auth/verify-email/resend";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email or password; deliberately the same for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// `POST /me/password` with a wrong current password (the bearer token itself is fine).
    #[error("current password is wrong")]
    WrongCurrentPassword,
    #[error("invalid {field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    /// No bearer token at all.
    #[error("no bearer token")]
    MissingToken,
    /// An unusable bearer token, or its session has ended.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// MFA is on but this token is `aal1` or its MFA is older than the route's window (RFC 9470).
    #[error("step-up authentication required")]
    MfaRequired { max_age: Duration },
    #[error("MFA enrolment required")]
    MfaEnrolmentRequired,
    /// The account's email address is not verified yet, and this action needs it to be.
    #[error("email verification required")]
    EmailVerificationRequired,
    #[error("invalid MFA code")]
    InvalidMfaCode,
    #[error("invalid or expired MFA token")]
    InvalidMfaToken,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("invalid or expired token")]
    InvalidEmailToken,
    #[error("too many attempts")]
    RateLimited { retry_after: Duration },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("MFA is already enabled")]
    MfaAlreadyEnabled,
    #[error("no MFA enrolment in progress")]
    MfaNotPending,
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for AuthError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<super::password::PasswordError> for AuthError {
    fn from(e: super::password::PasswordError) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<super::totp::TotpError> for AuthError {
    fn from(e: super::totp::TotpError) -> Self {
        Self::Unexpected(e.into())
    }
}

impl AuthError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            field,
            message: message.into(),
        }
    }

    pub fn to_problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            Self::InvalidCredentials => Problem::new(
                S::UNAUTHORIZED,
                types::INVALID_CREDENTIALS,
                "Invalid email or password",
            ),
            Self::WrongCurrentPassword => Problem::new(
                S::FORBIDDEN,
                types::INVALID_CREDENTIALS,
                "The current password is wrong",
            ),
            Self::Validation { field, message } => problem::invalid_field(field, message),
            Self::MissingToken => Problem::new(
                S::UNAUTHORIZED,
                types::UNAUTHENTICATED,
                "Authentication required",
            )
            .with_detail("send an access token: Authorization: Bearer <token>")
            .with_header(header::WWW_AUTHENTICATE, r#"Bearer realm="ironclad""#),
            Self::Unauthenticated(detail) => Problem::new(
                S::UNAUTHORIZED,
                types::UNAUTHENTICATED,
                "Authentication required",
            )
            .with_detail(detail.clone())
            .with_header(
                header::WWW_AUTHENTICATE,
                &format!(
                    r#"Bearer error="invalid_token", error_description="{}""#,
                    detail.replace('"', "'")
                ),
            ),
            Self::MfaRequired { max_age } => Problem::new(
                S::UNAUTHORIZED,
                types::MFA_REQUIRED,
                "A recent second-factor verification is required",
            )
            .with_detail(format!(
                "verify a TOTP or recovery code at POST {STEP_UP_PATH}, then retry with the new access token"
            ))
            .with_extension("step_up_url", STEP_UP_PATH)
            .with_extension("max_age", max_age.as_secs())
            .with_header(
                header::WWW_AUTHENTICATE,
                &format!(
                    r#"Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="aal2", max_age="{}""#,
                    max_age.as_secs()
                ),
            ),
            Self::MfaEnrolmentRequired => Problem::new(
                S::FORBIDDEN,
                types::MFA_ENROLMENT_REQUIRED,
                "Enable multi-factor authentication first",
            )
            .with_detail("enrol an authenticator at POST /api/v1/me/mfa/totp to use this action"),
            Self::EmailVerificationRequired => Problem::new(
                S::FORBIDDEN,
                types::EMAIL_VERIFICATION_REQUIRED,
                "Verify your email address first",
            )
            .with_detail(format!(
                "follow the link we emailed you, or ask for a new one at POST {RESEND_VERIFICATION_PATH}"
            )),
            Self::InvalidMfaCode => Problem::new(
                S::UNAUTHORIZED,
                types::INVALID_MFA_CODE,
                "The code is not valid",
            )
            .with_detail("wrong, expired or already used TOTP or recovery code"),
            Self::InvalidMfaToken => Problem::new(
                S::UNAUTHORIZED,
                types::INVALID_MFA_TOKEN,
                "The MFA token is invalid or expired; log in again",
            ),
            Self::InvalidRefreshToken => Problem::new(
                S::UNAUTHORIZED,
                types::INVALID_REFRESH_TOKEN,
                "The refresh token is invalid, expired or revoked; log in again",
            ),
            Self::InvalidEmailToken => Problem::new(
                S::BAD_REQUEST,
                types::INVALID_EMAIL_TOKEN,
                "The link is invalid, expired or already used",
            ),
            Self::RateLimited { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                Problem::new(S::TOO_MANY_REQUESTS, types::RATE_LIMITED, "Too many attempts")
                    .with_detail(format!("try again in {secs} seconds"))
                    .with_header(header::RETRY_AFTER, &secs.to_string())
            }
            Self::Forbidden(detail) => {
                Problem::new(S::FORBIDDEN, types::FORBIDDEN, "Not allowed").with_detail(detail.clone())
            }
            Self::MfaAlreadyEnabled => Problem::new(
                S::CONFLICT,
                types::MFA_ALREADY_ENABLED,
                "Multi-factor authentication is already enabled",
            ),
            Self::MfaNotPending => Problem::new(
                S::CONFLICT,
                types::MFA_NOT_PENDING,
                "No authenticator enrolment in progress; start one with POST /api/v1/me/mfa/totp",
            ),
            Self::NotFound => Problem::from_status(S::NOT_FOUND),
            Self::Unexpected(error) => problem::internal_error(&format!("{error:#}")),
        }
    }
}

problem::response_error!(AuthError);

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn step_up_challenge_follows_rfc_9470() {
        let response = AuthError::MfaRequired {
            max_age: Duration::from_secs(300),
        }
        .error_response();
        assert_eq!(response.status(), 401);
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer "));
        assert!(challenge.contains(r#"error="insufficient_user_authentication""#));
        assert!(challenge.contains(r#"acr_values="aal2""#));
        assert!(challenge.contains(r#"max_age="300""#));
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let response = AuthError::RateLimited {
            retry_after: Duration::from_secs(42),
        }
        .error_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "42");
    }

    #[test]
    fn unexpected_errors_do_not_leak() {
        let problem =
            AuthError::Unexpected(anyhow::anyhow!("password=hunter2 in SQL")).to_problem();
        assert_eq!(problem.status, 500);
        assert!(!serde_json::to_string(&problem).unwrap().contains("hunter2"));
    }
}
