//! An example product feature on a usage budget: AI completions charged to the organisation's
//! `ai_tokens`. Copy this shape for anything that resells a metered resource:
//!
//! 1. **Reserve** an estimate before the work (`usage.reserve`): refused with a 402 when it does
//!    not fit the period's limit (or the member's cap).
//! 2. Do the work (here: call the LLM provider).
//! 3. **Commit** what it really used (the provider's count), or **release** on failure.
//!
//! A process that dies between 1 and 3 holds its estimate until the reservation's TTL.
pub mod config;
pub mod provider;
pub mod routes;

pub use config::AiConfig;
pub use routes::routes;

use actix_web::http::StatusCode;

use crate::{
    http::problem::{self, Problem},
    orgs::OrgMember,
    usage::{UsageError, UsageState},
};
use provider::{Provider, ProviderError};
use routes::{CompletionRequest, CompletionResponse};

/// What the AI example uses: the usage layer and the provider.
#[derive(Clone)]
pub struct AiState {
    pub usage: UsageState,
    pub provider: Provider,
}

pub const METER: &str = "ai_tokens";
const MAX_PROMPT_CHARS: usize = 20_000;
const MAX_TOKENS: u32 = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum AiError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl AiError {
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Usage(e) => e.to_problem(),
            Self::Provider(ProviderError::NotConfigured) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                problem::types::SERVICE_UNAVAILABLE,
                "No AI provider is configured",
            )
            .with_detail("set AI_PROVIDER_URL"),
            Self::Provider(e @ ProviderError::Failed(_)) => Problem::new(
                StatusCode::BAD_GATEWAY,
                "urn:ironclad:problem:ai-provider-failed",
                "The AI provider failed",
            )
            .with_detail("nothing was charged; retry with a new Idempotency-Key")
            .with_cause(e),
        }
    }
}

problem::response_error!(AiError);

/// What a prompt is estimated to cost before the provider counts it: about four characters a
/// token, plus the most the answer may use.
pub fn estimate(prompt: &str, max_tokens: u32) -> i64 {
    prompt.chars().count().div_ceil(4) as i64 + i64::from(max_tokens)
}

pub async fn complete(
    state: &AiState,
    member: &OrgMember,
    key: &str,
    request: &CompletionRequest,
) -> Result<CompletionResponse, AiError> {
    let prompt = request.prompt.trim();
    if prompt.is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(UsageError::validation("prompt", "must be 1 to 20000 characters").into());
    }
    let max_tokens = request.max_tokens.unwrap_or(256);
    if !(1..=MAX_TOKENS).contains(&max_tokens) {
        return Err(UsageError::validation("max_tokens", "must be 1 to 4096").into());
    }
    let reserved = estimate(prompt, max_tokens);
    let held = state
        .usage
        .reserve(member.org_id, member.user_id(), METER, reserved, key)
        .await?;
    match state.provider.complete(prompt, max_tokens).await {
        Ok(answer) => {
            held.commit(answer.tokens.total_tokens.max(0)).await?;
            Ok(CompletionResponse {
                text: answer.text,
                reserved,
                tokens: answer.tokens,
            })
        }
        Err(error) => {
            held.release().await?;
            Err(error.into())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_estimate_is_the_prompt_at_four_characters_a_token_plus_the_answers_most() {
        assert_eq!(super::estimate("abcd", 10), 11);
        assert_eq!(super::estimate("abcde", 10), 12);
        assert_eq!(super::estimate("", 1), 1);
    }
}
