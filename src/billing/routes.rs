//! HTTP routes of the billing layer (mounted under `/api/v1`).
use utoipa_actix_web::service_config::ServiceConfig;

/// Registers the billing routes. Each handler is a `#[utoipa::path]` function added with `cfg.service`.
pub fn routes(_cfg: &mut ServiceConfig) {}
