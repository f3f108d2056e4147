//! `POST /orgs/{org}/ai/completions` (mounted under `/api/v1`): the usage budget pattern.
use actix_web::{HttpResponse, middleware::from_fn, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{AiError, AiState, provider::Tokens};
use crate::{
    http::{
        Problem,
        idempotency::{self, IdempotencyKey, IdempotencyScope},
    },
    orgs::{Action, OrgMember, RequireOrgPermission},
};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(complete);
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"prompt": "Write a haiku about invoices.", "max_tokens": 64}))]
pub struct CompletionRequest {
    /// 1 to 20,000 characters.
    pub prompt: String,
    /// The most the answer may use (1–4,096, default 256).
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "text": "Numbers line the page", "reserved": 71,
    "tokens": {"prompt_tokens": 7, "completion_tokens": 48, "total_tokens": 55}
}))]
pub struct CompletionResponse {
    pub text: String,
    /// What was reserved before the call (the estimate).
    pub reserved: i64,
    /// What the provider counted, and what was charged to the organisation's `ai_tokens`.
    pub tokens: Tokens,
}

/// A completion, charged to the organisation's `ai_tokens`: an estimate is reserved first (402
/// `usage-limit-reached` when it does not fit), the provider's count is committed after. Requires
/// an `Idempotency-Key`: a retry gets the first answer back and is charged once.
#[utoipa::path(
    tag = "ai",
    params(("org" = Uuid, Path, description = "Organisation id"),
        ("Idempotency-Key" = String, Header, description = "A unique key per completion (e.g. a UUID); resend it on retries")),
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion and the tokens charged", body = CompletionResponse),
        (status = 400, description = "Missing Idempotency-Key, or malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The organisation's (or your capped) `ai_tokens` would pass the limit (`usage-limit-reached`, with `meter`, `limit`, `used`, `resets_at`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organisation of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is still in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long prompt, max_tokens out of range, or the key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The AI provider failed; nothing was charged", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No AI provider is configured", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
#[post(
    "/orgs/{org}/ai/completions",
    wrap = "from_fn(idempotency::required::<OrgMember>)",
    wrap = "RequireOrgPermission(Action::Read)"
)]
pub async fn complete(
    state: web::Data<AiState>,
    member: OrgMember,
    key: IdempotencyKey,
    body: web::Json<CompletionRequest>,
) -> Result<HttpResponse, AiError> {
    let key = format!("{}:{}", member.idempotency_scope(), key.as_str());
    let answer = super::complete(&state, &member, &key, &body).await?;
    Ok(HttpResponse::Ok().json(answer))
}
