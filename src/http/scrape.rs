//! `GET /metrics`: the Prometheus scrape, optionally behind a bearer token.
use actix_web::{
    HttpRequest, HttpResponse, get,
    http::{StatusCode, header},
    web,
};
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};

use super::{Problem, problem};
use crate::metrics::Metrics;

/// The token scrapers must present (`METRICS_TOKEN`); `None` leaves `/metrics` open.
#[derive(Clone, Default)]
pub struct ScrapeToken(pub Option<SecretString>);

/// Prometheus metrics in text exposition format. When `METRICS_TOKEN` is set, scrapers must send
/// `Authorization: Bearer <token>`.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain",
         body = String, example = "# TYPE ironclad_http_requests counter\nironclad_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 3\n"),
        (status = 401, description = "Missing or wrong METRICS_TOKEN",
         body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/metrics")]
pub async fn scrape(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    token: web::Data<ScrapeToken>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, Problem> {
    if let Some(token) = &token.0 {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let authorised = presented
            .is_some_and(|p| constant_time_eq(p.as_bytes(), token.expose_secret().as_bytes()));
        if !authorised {
            return Err(Problem::from_status(StatusCode::UNAUTHORIZED)
                .with_header(header::WWW_AUTHENTICATE, "Bearer"));
        }
    }
    let text = metrics
        .render(&**db)
        .await
        .map_err(|e| problem::internal_error(&e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
