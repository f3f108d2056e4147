//! Request and response bodies of the auth API, with the examples the OpenAPI document shows.
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AuthError,
    domain::{Aal, Email, NewPassword, Role},
};

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct Credentials {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "email": "ada@example.com",
    "message": "If this address can be registered, a verification email is on its way."
}))]
pub struct RegisterResponse {
    pub email: String,
    pub message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"token": "q0Yk3mV1x8gJc6c0bX3E1cC0pQ9oWfB2l1m3nKxV5zA"}))]
pub struct TokenRequest {
    /// The token from the emailed link.
    pub token: String,
}

/// Tokens of a new or refreshed session (RFC 6749 §5.1 shape).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldi0xIn0.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "refresh_token": "Jm3k1xQ0v9bYb1oTqWc7R2nH5sLd8eUf4gZa6pXy0wE",
    "token_type": "Bearer",
    "expires_in": 900
}))]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// The second step of a login with MFA.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "mfa_required": true,
    "mfa_token": "c3RlcC10d28tdG9rZW4tZXhhbXBsZS1vbmx5LTQzY2hhcg",
    "expires_in": 300
}))]
pub struct MfaChallenge {
    pub mfa_required: bool,
    /// Good only for `POST /auth/mfa/verify`, once, for `expires_in` seconds and 5 wrong codes.
    pub mfa_token: String,
    pub expires_in: u64,
}

/// Tokens, or an MFA challenge when the account has MFA on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldi0xIn0.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "refresh_token": "Jm3k1xQ0v9bYb1oTqWc7R2nH5sLd8eUf4gZa6pXy0wE",
    "token_type": "Bearer",
    "expires_in": 900
}))]
pub enum LoginResponse {
    Tokens(TokenPair),
    Mfa(MfaChallenge),
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"mfa_token": "c3RlcC10d28tdG9rZW4tZXhhbXBsZS1vbmx5LTQzY2hhcg", "code": "492039"}))]
pub struct MfaVerifyRequest {
    pub mfa_token: String,
    /// A 6-digit TOTP code or a recovery code (`7KQ2-M9XD-4RTB-H6VC`).
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "Jm3k1xQ0v9bYb1oTqWc7R2nH5sLd8eUf4gZa6pXy0wE"}))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"message": "If an account uses this address, a password reset email is on its way."}))]
pub struct Accepted {
    pub message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"token": "q0Yk3mV1x8gJc6c0bX3E1cC0pQ9oWfB2l1m3nKxV5zA", "password": "plum tectonic nightjar ferry"}))]
pub struct ResetPasswordRequest {
    pub token: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "current_password": "correct horse battery staple",
    "new_password": "plum tectonic nightjar ferry"
}))]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-7c4a-7d2e-9b1a-3f5e2d8c9a10",
    "email": "ada@example.com",
    "role": "user",
    "email_verified": true,
    "mfa_enabled": true,
    "created_at": "2026-11-23T12:00:00Z",
    "session": {"id": "01936f3e-9d1b-7aa0-8c55-1e2f3a4b5c6d", "aal": "aal2", "amr": ["pwd", "otp"]}
}))]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub session: CurrentSession,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentSession {
    pub id: Uuid,
    pub aal: Aal,
    pub amr: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f3e-9d1b-7aa0-8c55-1e2f3a4b5c6d",
    "current": true,
    "aal": "aal2",
    "ip": "203.0.113.7",
    "user_agent": "Mozilla/5.0",
    "created_at": "2026-11-23T12:00:00Z",
    "last_used_at": "2026-11-23T12:10:00Z",
    "expires_at": "2026-12-23T12:00:00Z"
}))]
pub struct SessionView {
    pub id: Uuid,
    /// The session of the token making this request.
    pub current: bool,
    pub aal: Aal,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "otpauth_uri": "otpauth://totp/Ironclad:ada%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Ironclad",
    "qr_code": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA..."
}))]
pub struct TotpEnrolment {
    /// Base32 secret, for typing into an authenticator by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// PNG QR code of `otpauth_uri`, as a data URI.
    pub qr_code: String,
}

/// Starting TOTP enrolment: proof that the caller is the account holder, not just a token holder.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"password": "correct horse battery staple"}))]
pub struct StartTotpRequest {
    /// The current password (required; a missing one is a 422 naming this field).
    #[schema(value_type = Option<String>, format = Password)]
    #[serde(default)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"code": "492039"}))]
pub struct CodeRequest {
    /// A 6-digit TOTP code (or, where accepted, a recovery code).
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "recovery_codes": ["7KQ2-M9XD-4RTB-H6VC", "Q1WZ-8N3E-KD5T-0RJA"],
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldi0xIn0.eyJhYWwiOiJhYWwyIn0.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 900
}))]
pub struct TotpConfirmed {
    /// Shown once: store them somewhere safe. Each works once in place of a TOTP code.
    pub recovery_codes: Vec<String>,
    /// This session is now `aal2`: a fresh access token saying so.
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"recovery_codes": ["7KQ2-M9XD-4RTB-H6VC", "Q1WZ-8N3E-KD5T-0RJA"]}))]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRldi0xIn0.eyJhYWwiOiJhYWwyIn0.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 900
}))]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42,
    "user_id": "01936f3e-7c4a-7d2e-9b1a-3f5e2d8c9a10",
    "event": "login_failed",
    "session_id": null,
    "ip": "203.0.113.7",
    "user_agent": "curl/8.5.0",
    "details": {"email": "ada@example.com"},
    "created_at": "2026-11-23T12:00:00Z"
}))]
pub struct AuditEvent {
    pub id: i64,
    pub user_id: Option<Uuid>,
    pub event: String,
    pub session_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

// Parsing at the edge: handlers turn bodies into domain types, so services never see raw strings.
// A value that does not parse is a 422 naming its field.

pub(super) fn email_field(raw: &str) -> Result<Email, AuthError> {
    Email::parse(raw).map_err(|m| AuthError::validation("email", m))
}

/// A new password for the account of `email`, refused if guessable from what is known of it (the
/// address, the product's name: see [`NewPassword::parse`]).
pub(super) fn password_field(
    field: &'static str,
    raw: &SecretString,
    email: &Email,
    product: &str,
) -> Result<NewPassword, AuthError> {
    let words = email.guessable_words();
    let mut known: Vec<&str> = words.iter().map(String::as_str).collect();
    known.push(product);
    NewPassword::parse(raw.clone(), &known).map_err(|m| AuthError::validation(field, m))
}

/// A registration, parsed: an acceptable email address and password.
pub struct NewAccount {
    pub email: Email,
    pub password: NewPassword,
}

impl NewAccount {
    /// `product` is the product's name, which a password must not be built from.
    pub fn parse(body: &Credentials, product: &str) -> Result<Self, AuthError> {
        let email = email_field(&body.email)?;
        let password = password_field("password", &body.password, &email, product)?;
        Ok(Self { email, password })
    }
}

impl ResetPasswordRequest {
    /// Parsed once the link's account is known: its address is part of what makes a password weak.
    pub fn new_password(&self, email: &Email, product: &str) -> Result<NewPassword, AuthError> {
        password_field("password", &self.password, email, product)
    }
}

impl ChangePasswordRequest {
    pub fn new_password(&self, email: &Email, product: &str) -> Result<NewPassword, AuthError> {
        password_field("new_password", &self.new_password, email, product)
    }
}
