//! Turns every way a request can fail before or outside a handler into problem+json: extractor
//! errors (bad JSON, bad query, bad path, too large), unknown routes, wrong methods, and any bare
//! error response a middleware or actix itself produces.
use actix_web::{
    Error, HttpRequest, HttpResponse,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError},
    http::{StatusCode, header},
    middleware::Next,
    web,
};

use super::problem::{self, Problem, types};

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|error, _req| json_problem(&error).into())
}

pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error: QueryPayloadError, _req| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            types::INVALID_PARAMETER,
            "A query parameter is invalid",
        )
        .with_detail(error.to_string())
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error: PathError, _req| {
        // A path segment of the wrong shape names no resource.
        Problem::new(
            StatusCode::NOT_FOUND,
            types::INVALID_PARAMETER,
            "No resource at this path",
        )
        .with_detail(error.to_string())
        .into()
    })
}

fn json_problem(error: &JsonPayloadError) -> Problem {
    match error {
        JsonPayloadError::OverflowKnownLength { .. }
        | JsonPayloadError::Overflow { .. }
        | JsonPayloadError::Payload(PayloadError::Overflow) => {
            Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE).with_detail(error.to_string())
        }
        JsonPayloadError::ContentType => Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .with_detail("expected Content-Type: application/json"),
        _ => Problem::new(
            StatusCode::BAD_REQUEST,
            types::INVALID_BODY,
            "The request body is not valid JSON for this endpoint",
        )
        .with_detail(error.to_string()),
    }
}

/// The fallback service: 405 (with `Allow`) when the path exists under other methods, else 404.
pub async fn no_route(req: HttpRequest, allowed: web::Data<AllowedMethods>) -> HttpResponse {
    use actix_web::ResponseError;
    let pattern = req.resource_map().match_pattern(req.path());
    let methods = pattern.as_deref().and_then(|p| allowed.for_pattern(p));
    match methods {
        Some(methods) => Problem::from_status(StatusCode::METHOD_NOT_ALLOWED)
            .with_detail(format!("{} is not allowed here", req.method()))
            .with_header(header::ALLOW, &methods.join(", "))
            .error_response(),
        None => Problem::from_status(StatusCode::NOT_FOUND)
            .with_detail(format!("no route for {}", req.path()))
            .error_response(),
    }
}

/// Which methods each documented path pattern answers, taken from the OpenAPI spec.
#[derive(Debug, Default)]
pub struct AllowedMethods(std::collections::HashMap<String, Vec<String>>);

impl AllowedMethods {
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        let map = spec
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = operations(item)
                    .map(|(method, _)| method.to_ascii_uppercase())
                    .collect();
                (path.clone(), methods)
            })
            .collect();
        Self(map)
    }

    fn for_pattern(&self, pattern: &str) -> Option<&Vec<String>> {
        self.0.get(pattern)
    }
}

/// Rewrites any bare error response (no problem+json body) into one, keeping its status and headers.
pub async fn problem_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static, BoxBody>>, Error> {
    let response = next.call(req).await?;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(problem::CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return Ok(response.map_into_left_body());
    }
    let mut problem = Problem::from_status(status);
    if let Some(error) = response.response().error() {
        if status.is_client_error() {
            problem = problem.with_detail(error.to_string());
        } else {
            tracing::error!(%status, %error, "request failed");
        }
    }
    let (req, original) = response.into_parts();
    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.append_header((name.clone(), value.clone()));
        }
    }
    rebuilt.insert_header((header::CONTENT_TYPE, problem::CONTENT_TYPE));
    let rebuilt = rebuilt.body(serde_json::to_vec(&problem).unwrap_or_default());
    Ok(ServiceResponse::new(req, rebuilt).map_into_right_body())
}

/// The operations of a path item with their lower-case HTTP method.
pub fn operations(
    item: &utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &utoipa::openapi::path::Operation)> {
    [
        ("get", &item.get),
        ("put", &item.put),
        ("post", &item.post),
        ("delete", &item.delete),
        ("options", &item.options),
        ("head", &item.head),
        ("patch", &item.patch),
        ("trace", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
}
