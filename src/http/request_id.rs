//! Every request gets an id: the caller's `X-Request-Id` when it is sane, a fresh UUIDv7 otherwise.
//! It is echoed in the response, recorded on the request's tracing span (so every log line of the
//! request carries it) and kept as the task's [`RequestId`] so jobs enqueued by the request inherit it.
//! A `traceparent` header makes the request's span a child of the caller's trace.
use std::time::Instant;

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::Instrument;

pub use crate::telemetry::RequestId;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Accepts a caller's id only if it is short and plain, so it cannot forge log lines.
fn parse(raw: &HeaderValue) -> Option<RequestId> {
    let value = raw.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    (!value.is_empty() && value.len() <= 128 && value.chars().all(plain))
        .then(|| RequestId(value.to_owned()))
}

fn generate() -> RequestId {
    RequestId(uuid::Uuid::now_v7().to_string())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(parse)
        .unwrap_or_else(generate);
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!(
        "http",
        request_id = %id.0,
        method = %req.method(),
        path = %req.path(),
    );
    // A caller's W3C trace context: this request's spans (and the jobs it queues) join its trace.
    let traceparent = req.headers().get("traceparent");
    crate::telemetry::continue_trace(&span, traceparent.and_then(|v| v.to_str().ok()));
    let started = Instant::now();
    let result = id
        .clone()
        .scope(next.call(req))
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, elapsed_ms, "request failed in middleware");
            return Err(error);
        }
    };
    let status = response.status().as_u16();
    let route = response.request().match_pattern().unwrap_or_default();
    if status >= 500 {
        tracing::error!(status, route, elapsed_ms, "request finished");
    } else {
        tracing::info!(status, route, elapsed_ms, "request finished");
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(HEADER, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids_and_refuses_the_rest() {
        let ok = HeaderValue::from_static("abc-123_X.y:z");
        assert_eq!(parse(&ok), Some(RequestId("abc-123_X.y:z".into())));
        for bad in ["", "has space", "new\tline", "<script>"] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert_eq!(parse(&value), None, "{bad:?}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_eq!(parse(&long), None);
    }
}
