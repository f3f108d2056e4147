//! Browser-facing hardening on every response (OWASP Secure Headers), and CORS.
//!
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`
//!   and a Content Security Policy that forbids everything (`default-src 'none'; frame-ancestors
//!   'none'`): an API response is data, never a page to render, frame or run. The docs page
//!   (`/docs`) gets the policy Swagger UI needs instead: its own scripts and styles, nothing from
//!   elsewhere, still unframeable.
//! - `Cache-Control: no-store` on every response to a request carrying credentials (`/me`, licence
//!   keys, orders): no proxy or browser cache keeps them. A handler's own `Cache-Control` stands.
//! - `Strict-Transport-Security` when configured (on by default in production).
//! - CORS ([`cors`]): no cross-origin access unless `CORS_ALLOWED_ORIGINS` names origins.
use actix_cors::Cors;
use actix_web::{
    Error,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderMap, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};

use super::idempotency::REPLAYED;

/// The policy of API responses: nothing may load, run or frame.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The policy of the docs page: Swagger UI's own files, its inline styles and data-URI icons.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the middleware adds beyond the fixed headers, made once at start-up.
#[derive(Debug, Clone, Default)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security: max-age=…; includeSubDomains`, when configured.
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    pub fn new(hsts_max_age_secs: Option<u64>) -> Self {
        Self {
            hsts: hsts_max_age_secs.map(|max_age| {
                HeaderValue::from_str(&format!("max-age={max_age}; includeSubDomains"))
                    .expect("digits make a valid header value")
            }),
        }
    }
}

/// Sets `name` unless the handler set it already.
fn set_default(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    if !headers.contains_key(&name) {
        headers.insert(name, value);
    }
}

/// The middleware (`from_fn`); reads [`SecurityHeaders`] from the app data (defaults without).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let hsts = req
        .app_data::<web::Data<SecurityHeaders>>()
        .and_then(|s| s.hsts.clone());
    let with_credentials = req.headers().contains_key(header::AUTHORIZATION);
    let docs = req.path() == "/docs" || req.path().starts_with("/docs/");
    // Route guards answer their refusals as responses (not errors), so they pass through here.
    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    set_default(
        headers,
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set_default(
        headers,
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    set_default(
        headers,
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    let csp = if docs { DOCS_CSP } else { API_CSP };
    set_default(
        headers,
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    if with_credentials {
        set_default(
            headers,
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    if let Some(hsts) = hsts {
        set_default(headers, header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    Ok(response)
}

/// The CORS middleware for `allowed_origins` (exact origins, e.g. `https://app.example.com`).
/// `None` when the list is empty: no middleware, so browsers refuse every cross-origin read
/// (no `Access-Control-Allow-Origin` is ever sent) while same-origin pages such as `/docs` work.
/// Other origins are not blocked on the server (a request without CORS headers is the browser's
/// to refuse), so same-origin requests, which carry `Origin` too, are never turned away.
pub fn cors(allowed_origins: &[String]) -> Option<Cors> {
    if allowed_origins.is_empty() {
        return None;
    }
    let cors = allowed_origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("x-request-id"),
            REPLAYED,
        ])
        .max_age(3600)
        .block_on_origin_mismatch(false);
    Some(cors)
}
