//! A small client for an OpenAI-style completions API: `POST {AI_PROVIDER_URL}/v1/completions`
//! with `{model, prompt, max_tokens}`, answered with the text and `usage.total_tokens`.
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::AiConfig;

#[derive(Clone)]
pub struct Provider {
    client: reqwest::Client,
    config: AiConfig,
}

#[derive(Debug, Serialize)]
struct Request<'a> {
    model: &'a str,
    prompt: &'a str,
    max_tokens: u32,
}

#[derive(Debug, Deserialize)]
struct Answer {
    choices: Vec<Choice>,
    usage: Tokens,
}

#[derive(Debug, Deserialize)]
struct Choice {
    text: String,
}

/// What the provider counted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Tokens {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub tokens: Tokens,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no AI provider is configured (AI_PROVIDER_URL)")]
    NotConfigured,
    #[error("the AI provider failed: {0}")]
    Failed(String),
}

impl Provider {
    pub fn new(config: &AiConfig) -> Result<Self, reqwest::Error> {
        // The process's TLS provider (main installs it; tests and tools may not have).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Ok(Self {
            client: reqwest::Client::builder().timeout(config.timeout).build()?,
            config: config.clone(),
        })
    }

    pub async fn complete(
        &self,
        prompt: &str,
        max_tokens: u32,
    ) -> Result<Completion, ProviderError> {
        let base = self
            .config
            .provider_url
            .as_deref()
            .ok_or(ProviderError::NotConfigured)?;
        let mut request = self
            .client
            .post(format!("{base}/v1/completions"))
            .json(&Request {
                model: &self.config.model,
                prompt,
                max_tokens,
            });
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let failed = |e: reqwest::Error| ProviderError::Failed(e.to_string());
        let answer: Answer = request
            .send()
            .await
            .map_err(failed)?
            .error_for_status()
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)?;
        let text = answer.choices.into_iter().map(|c| c.text).collect();
        Ok(Completion {
            text,
            tokens: answer.usage,
        })
    }
}
