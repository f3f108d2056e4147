//! Liveness and readiness for load balancers and orchestrators.
use std::time::Duration;

use actix_web::{HttpResponse, get, http::StatusCode, web};
use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, types};

/// Readiness gives up after this long, so a hung database makes probes fail instead of hang.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "database": "ok", "migrations": "current"}))]
pub struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    pub migrations: &'static str,
}

/// The process is up and serving HTTP. Touches nothing else.
#[utoipa::path(tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Ready for traffic: the database answers and its schema is at the version this build expects.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "Database unreachable or migrations pending",
         body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(db: web::Data<DatabaseConnection>) -> Result<HttpResponse, Problem> {
    let unavailable = |detail: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            types::SERVICE_UNAVAILABLE,
            "Not ready",
        )
        .with_detail(detail)
        .with_header(actix_web::http::header::RETRY_AFTER, "5")
    };
    let check = async {
        db.execute_unprepared("SELECT 1").await?;
        migration::Migrator::get_pending_migrations(&**db).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Err(_) => Err(unavailable("database check timed out".into())),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed");
            Err(unavailable("database unreachable".into()))
        }
        Ok(Ok(pending)) if !pending.is_empty() => Err(unavailable(format!(
            "{} migration(s) pending: run `ironclad migrate up`",
            pending.len()
        ))),
        Ok(Ok(_)) => Ok(HttpResponse::Ok().json(Readiness {
            status: "ready",
            database: "ok",
            migrations: "current",
        })),
    }
}
