//! Background work of the auth layer.
use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{AuthState, password_reset, request_meta::RequestMeta, verification};
use crate::jobs::{Job, JobContext, JobError};

/// Job: someone asked for a password reset link for `email` (`POST /auth/password/forgot`).
///
/// The request only enqueues this, so its answer and timing are the same whether or not an account
/// uses the address; the lookup, the token and the email happen here. Safe to rerun: see
/// [`password_reset::send_reset_link`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestPasswordReset {
    pub email: String,
    /// Who asked, for the audit trail.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

impl Job for RequestPasswordReset {
    const QUEUE: &'static str = "auth_password_reset";
    type State = AuthState;

    async fn run(self, ctx: JobContext<AuthState>) -> Result<(), JobError> {
        let meta = RequestMeta {
            ip: self.ip,
            user_agent: self.user_agent,
        };
        password_reset::send_reset_link(&ctx.state, &meta, &self.email, &ctx.job_id)
            .await
            .context("password reset request")?;
        Ok(())
    }
}

/// Job: someone asked for a new email verification link for `email`
/// (`POST /auth/verify-email/resend`). As with [`RequestPasswordReset`], the lookup happens here, so
/// the request's answer says nothing about the account. Safe to rerun: see
/// [`verification::send_verification_link`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResendVerification {
    pub email: String,
}

impl Job for ResendVerification {
    const QUEUE: &'static str = "auth_resend_verification";
    type State = AuthState;

    async fn run(self, ctx: JobContext<AuthState>) -> Result<(), JobError> {
        verification::send_verification_link(&ctx.state, &self.email, &ctx.job_id)
            .await
            .context("verification link request")?;
        Ok(())
    }
}
