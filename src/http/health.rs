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

/// How many of this build's migrations the database has not applied. Migrations it applied that
/// this build does not know (a newer release migrated first, mid-rollout) leave it ready: the old
/// pods keep serving until the new ones are — sea-orm's `get_pending_migrations` would fail
/// there, and it creates its table when missing, which a probe must not do.
async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, sea_orm::DbErr> {
    let applied: Vec<String> = db
        .query_all_raw(crate::db::stmt("SELECT version FROM seaql_migrations", []))
        .await
        .or_else(|error| match error.to_string().contains("does not exist") {
            // No migration table: nothing applied yet.
            true => Ok(Vec::new()),
            false => Err(error),
        })?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    let known = migration::Migrator::migrations();
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|a| a == m.name()))
        .count())
}

/// Ready for traffic: the database answers and its schema is at least the version this build
/// expects.
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
    let check = pending_migrations(&db);
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Err(_) => Err(unavailable("database check timed out".into())),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed");
            Err(unavailable("database unreachable".into()))
        }
        Ok(Ok(pending)) if pending > 0 => Err(unavailable(format!(
            "{pending} migration(s) pending: run `ironclad migrate up`"
        ))),
        Ok(Ok(_)) => Ok(HttpResponse::Ok().json(Readiness {
            status: "ready",
            database: "ok",
            migrations: "current",
        })),
    }
}
