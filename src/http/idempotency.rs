//! `Idempotency-Key` for mutating routes, after the IETF draft (draft-ietf-httpapi-idempotency-key-header)
//! and Stripe's API: a client retrying a POST with the same key gets the first response back, and the
//! handler runs once.
//!
//! Declared at the route, so the policy is visible where the route is:
//! `#[post("/billing/checkout", wrap = "from_fn(idempotency::required::<Customer>)")]`.
//!
//! - Keys belong to a caller ([`IdempotencyScope`], e.g. the signed-in user): two users may pick the
//!   same key without meeting.
//! - The first request *claims* the key (a committed row with a lease) and runs the handler; the
//!   response (status, content type, location, body) is stored for 24 h with a fingerprint of the
//!   request (method, path, query, body).
//! - Same key again: same fingerprint → the stored response, replayed (`Idempotent-Replayed: true`);
//!   other fingerprint → 422; the first still running → 409 (with `Retry-After`).
//! - Missing key → 400. A 5xx is not stored: the claim is released so a retry runs again.
//! - A claim whose holder died (process killed mid-request) is taken over once its lease ends.
//!   The window between the handler's own commit and the response being stored is covered by the
//!   handler being idempotent itself (checkout finds its order by the same key).
use std::time::Duration;

use actix_web::{
    Error, FromRequest, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{
        StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Problem, problem};
use crate::{db::stmt, metrics::Metrics};

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a response is kept for replay.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a claim holds without an answer before another request may take over (longer than any
/// request may run: the HTTP shutdown timeout and Stripe's timeout are well below it).
pub const LEASE: Duration = Duration::from_secs(60);

pub mod types {
    pub const MISSING: &str = "urn:ironclad:problem:idempotency-key-missing";
    pub const INVALID: &str = "urn:ironclad:problem:idempotency-key-invalid";
    pub const IN_FLIGHT: &str = "urn:ironclad:problem:idempotency-key-in-flight";
    pub const MISMATCH: &str = "urn:ironclad:problem:idempotency-key-mismatch";
}

/// Names the caller a key belongs to. Implemented by the extractor of the signed-in user; its
/// rejection (a 401) is what an anonymous request gets.
pub trait IdempotencyScope: FromRequest + 'static {
    fn idempotency_scope(&self) -> String;
}

/// The middleware: requires an `Idempotency-Key` on the route it wraps.
pub async fn required<I: IdempotencyScope>(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Who first: an anonymous request is a 401 whatever its headers.
    let identity = match req.extract::<I>().await {
        Ok(identity) => identity,
        Err(error) => {
            let error: Error = error.into();
            return Ok(req.into_response(error.error_response()));
        }
    };
    let scope = identity.idempotency_scope();
    let key = match parse_key(req.headers().get(&HEADER)) {
        Ok(key) => key.0,
        Err(problem) => return Ok(req.into_response(problem.error_response())),
    };
    let body = req.extract::<web::Bytes>().await?;
    let fingerprint = fingerprint(&req, &body);
    req.set_payload(Payload::from(body));

    let (Some(db), Some(metrics)) = (
        req.app_data::<web::Data<DatabaseConnection>>().cloned(),
        req.app_data::<web::Data<Metrics>>().cloned(),
    ) else {
        return Err(problem::internal_error(&"idempotency middleware without its app data").into());
    };
    let store = Store { db: &db };
    let owner = Uuid::new_v4();
    let claim = store.claim(&scope, &key, &fingerprint, owner).await;
    if let Ok(claim) = &claim {
        metrics.count_idempotency(claim.label());
    }
    match claim {
        Ok(Claim::Acquired) => {}
        Ok(Claim::Replay(stored)) => return Ok(req.into_response(stored.into_response())),
        Ok(Claim::InFlight) => {
            let problem = Problem::new(
                StatusCode::CONFLICT,
                types::IN_FLIGHT,
                "A request with this Idempotency-Key is still being processed",
            )
            .with_detail("retry shortly: the first request's response will be replayed")
            .with_header(header::RETRY_AFTER, "1");
            return Ok(req.into_response(problem.error_response()));
        }
        Ok(Claim::Mismatch) => {
            let problem = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                types::MISMATCH,
                "This Idempotency-Key was used for a different request",
            )
            .with_detail("use a new key for a new request");
            return Ok(req.into_response(problem.error_response()));
        }
        Err(error) => return Err(problem::internal_error(&error).into()),
    }

    let response = match next.call(req).await {
        Ok(response) => response,
        Err(error) => {
            store.release(&scope, &key, owner).await.ok();
            return Err(error);
        }
    };
    if response.status().is_server_error() {
        // Not an answer worth replaying: let the retry run again.
        if let Err(error) = store.release(&scope, &key, owner).await {
            tracing::warn!(%error, "releasing idempotency claim");
        }
        return Ok(response.map_into_boxed_body());
    }
    let (req, res) = response.into_parts();
    let status = res.status();
    let headers = kept_headers(res.headers());
    let body = match actix_web::body::to_bytes(res.into_body()).await {
        Ok(body) => body,
        Err(_) => {
            store.release(&scope, &key, owner).await.ok();
            return Err(problem::internal_error(&"reading the response body").into());
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        headers,
        body: body.to_vec(),
    };
    // If storing fails the handler's work is done anyway; the client gets its answer, and a retry
    // relies on the handler's own idempotency.
    if let Err(error) = store.complete(&scope, &key, owner, &stored).await {
        tracing::error!(%error, "storing idempotent response");
    }
    let mut response = stored.into_response();
    response.headers_mut().remove(&REPLAYED);
    Ok(ServiceResponse::new(req, response))
}

/// A request's `Idempotency-Key`, parsed: 1 to 255 printable ASCII characters (quotes, which the
/// draft puts around it, removed). As an extractor it answers 400 (problem+json) when the header is
/// missing or invalid; behind [`required`] it has been checked already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for IdempotencyKey {
    type Err = Problem;
    fn from_str(raw: &str) -> Result<Self, Problem> {
        let value = HeaderValue::from_str(raw).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                types::INVALID,
                "The Idempotency-Key header is not valid",
            )
        })?;
        parse_key(Some(&value)).map_err(|problem| *problem)
    }
}

impl FromRequest for IdempotencyKey {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_key(req.headers().get(&HEADER)).map_err(|problem| *problem))
    }
}

fn parse_key(value: Option<&HeaderValue>) -> Result<IdempotencyKey, Box<Problem>> {
    let Some(value) = value else {
        return Err(Box::new(
            Problem::new(
                StatusCode::BAD_REQUEST,
                types::MISSING,
                "This endpoint requires an Idempotency-Key header",
            )
            .with_detail(
                "send a unique key (e.g. a UUID) per operation, and the same key on retries",
            ),
        ));
    };
    // The draft makes it a quoted string; accept it bare too, as Stripe does.
    let raw = value.to_str().unwrap_or_default().trim();
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > 255 || !printable {
        return Err(Box::new(
            Problem::new(
                StatusCode::BAD_REQUEST,
                types::INVALID,
                "The Idempotency-Key header is not valid",
            )
            .with_detail("1 to 255 printable ASCII characters"),
        ));
    }
    Ok(IdempotencyKey(key.to_owned()))
}

fn fingerprint(req: &ServiceRequest, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in [
        req.method().as_str().as_bytes(),
        req.path().as_bytes(),
        req.query_string().as_bytes(),
        body,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().to_vec()
}

/// The response headers worth replaying (not per-request ones like the request id or date).
fn kept_headers(headers: &header::HeaderMap) -> Vec<(String, String)> {
    [header::CONTENT_TYPE, header::LOCATION]
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

#[derive(Debug, Clone)]
struct StoredResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl StoredResponse {
    fn into_response(self) -> HttpResponse {
        let mut response =
            HttpResponse::build(StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK));
        for (name, value) in &self.headers {
            response.insert_header((name.as_str(), value.as_str()));
        }
        response.insert_header((REPLAYED, "true"));
        response.body(self.body)
    }
}

enum Claim {
    Acquired,
    Replay(StoredResponse),
    InFlight,
    Mismatch,
}

impl Claim {
    fn label(&self) -> &'static str {
        match self {
            Self::Acquired => "new",
            Self::Replay(_) => "replayed",
            Self::InFlight => "in_flight",
            Self::Mismatch => "mismatch",
        }
    }
}

#[derive(FromQueryResult)]
struct Row {
    fingerprint: Vec<u8>,
    response_status: Option<i16>,
    response_headers: Option<serde_json::Value>,
    response_body: Option<Vec<u8>>,
}

struct Store<'a> {
    db: &'a sea_orm::DatabaseConnection,
}

impl Store<'_> {
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &[u8],
        owner: Uuid,
    ) -> Result<Claim, DbErr> {
        // An expired key must not answer or conflict: this caller's go first (housekeeping's
        // `prune_expired` clears everyone's on its rounds).
        self.db
            .execute_raw(stmt(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND expires_at <= now()",
                [scope.into()],
            ))
            .await?;
        // A few rounds: between a failed claim and the read, the row may be released or expire.
        for _ in 0..3 {
            // Inserts, or takes over a dead claim (lease over, same request). A live claim or a
            // stored response leaves the row untouched and returns nothing.
            let acquired = self
                .db
                .execute_raw(stmt(
                    "INSERT INTO idempotency_keys (scope, key, fingerprint, owner, locked_until, expires_at) \
                     VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond', now() + $6 * interval '1 millisecond') \
                     ON CONFLICT (scope, key) DO UPDATE SET \
                         owner = EXCLUDED.owner, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at \
                     WHERE idempotency_keys.response_status IS NULL \
                       AND idempotency_keys.locked_until <= now() \
                       AND idempotency_keys.fingerprint = EXCLUDED.fingerprint",
                    [
                        scope.into(),
                        key.into(),
                        fingerprint.to_vec().into(),
                        owner.into(),
                        (LEASE.as_millis() as i64).into(),
                        (TTL.as_millis() as i64).into(),
                    ],
                ))
                .await?
                .rows_affected()
                == 1;
            if acquired {
                return Ok(Claim::Acquired);
            }
            let row = Row::find_by_statement(stmt(
                "SELECT fingerprint, response_status, response_headers, response_body \
                 FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > now()",
                [scope.into(), key.into()],
            ))
            .one(self.db)
            .await?;
            let Some(row) = row else { continue };
            if row.fingerprint != fingerprint {
                return Ok(Claim::Mismatch);
            }
            let Some(status) = row.response_status else {
                return Ok(Claim::InFlight);
            };
            let headers: Vec<(String, String)> = row
                .response_headers
                .and_then(|h| serde_json::from_value(h).ok())
                .unwrap_or_default();
            return Ok(Claim::Replay(StoredResponse {
                status: status as u16,
                headers,
                body: row.response_body.unwrap_or_default(),
            }));
        }
        Err(DbErr::Custom(
            "idempotency key kept changing under us".into(),
        ))
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        owner: Uuid,
        response: &StoredResponse,
    ) -> Result<(), DbErr> {
        let headers = serde_json::to_value(&response.headers).unwrap_or_default();
        self.db
            .execute_raw(stmt(
                "UPDATE idempotency_keys SET response_status = $4, response_headers = $5, response_body = $6 \
                 WHERE scope = $1 AND key = $2 AND owner = $3",
                [
                    scope.into(),
                    key.into(),
                    owner.into(),
                    (response.status as i16).into(),
                    headers.into(),
                    response.body.clone().into(),
                ],
            ))
            .await?;
        Ok(())
    }

    async fn release(&self, scope: &str, key: &str, owner: Uuid) -> Result<(), DbErr> {
        self.db
            .execute_raw(stmt(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND owner = $3 \
                 AND response_status IS NULL",
                [scope.into(), key.into(), owner.into()],
            ))
            .await?;
        Ok(())
    }
}

/// Deletes the keys whose stored response has expired: a retry with one of them would run as new
/// anyway (as it would after the lazy delete a claim does).
pub async fn prune_expired(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    crate::db::delete_in_batches(conn, "idempotency_keys", "expires_at <= now()", vec![]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_parsed_like_the_draft_and_stripe() {
        let parse = |v: &str| parse_key(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(parse("abc-123").unwrap().as_str(), "abc-123");
        assert_eq!(
            parse("\"8e03978e-40d5\"").unwrap().as_str(),
            "8e03978e-40d5"
        );
        assert!(parse("").is_err());
        assert!(parse("\"\"").is_err());
        assert!(parse("has space").is_err());
        assert!(parse(&"k".repeat(256)).is_err());
        assert_eq!(parse_key(None).unwrap_err().status, 400);
        assert_eq!(parse_key(None).unwrap_err().problem_type, types::MISSING);
    }
}
