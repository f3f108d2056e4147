//! RFC 9457 problem details: the one shape every error response has.
use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Problem types specific to this API. Plain HTTP failures (404, 405, 413, ...) use `about:blank`,
/// as RFC 9457 recommends; clients branch on `type`, never on `title` or `detail`.
pub mod types {
    pub const ABOUT_BLANK: &str = "about:blank";
    pub const INVALID_BODY: &str = "urn:ironclad:problem:invalid-body";
    pub const INVALID_PARAMETER: &str = "urn:ironclad:problem:invalid-parameter";
    pub const VALIDATION: &str = "urn:ironclad:problem:validation";
    pub const SERVICE_UNAVAILABLE: &str = "urn:ironclad:problem:service-unavailable";
}

/// An error response body (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:ironclad:problem:invalid-body",
    "title": "The request body is not valid JSON for this endpoint",
    "status": 400,
    "detail": "missing field `email` at line 1 column 2"
}))]
pub struct Problem {
    /// A URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members (e.g. `errors` for field-level validation failures).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    #[serde(skip)]
    headers: Vec<(header::HeaderName, header::HeaderValue)>,
    /// What went wrong underneath, for the log (under the request id); never sent to the client.
    #[serde(skip)]
    cause: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, problem_type: &str, title: impl Into<String>) -> Self {
        Self {
            problem_type: problem_type.to_owned(),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            extensions: Map::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    /// A problem that is nothing more than its HTTP status.
    pub fn from_status(status: StatusCode) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        Self::new(status, types::ABOUT_BLANK, title)
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`, `Allow`, ...).
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = header::HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// Keeps `cause` for the log line written when the response is sent.
    pub fn with_cause(mut self, cause: &dyn std::fmt::Display) -> Self {
        self.cause = Some(format!("{cause:#}"));
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            if self.status_code().is_server_error() {
                tracing::error!(status = self.status, error = %cause, "request failed");
            } else {
                tracing::warn!(status = self.status, error = %cause, "request refused");
            }
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, CONTENT_TYPE));
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.body(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The 422 of a field that does not parse: `detail` names it, and `errors` lists it as
/// `{"field", "message"}` for clients that show messages beside their inputs.
pub fn invalid_field(field: &str, message: &str) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        types::VALIDATION,
        "The request is not valid",
    )
    .with_detail(format!("{field} {message}"))
    .with_extension(
        "errors",
        serde_json::json!([{ "field": field, "message": message }]),
    )
}

/// The 500 every unexpected failure becomes: the cause goes to the log (with the request id), never
/// to the client.
pub fn internal_error(error: &dyn std::fmt::Display) -> Problem {
    Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR).with_cause(error)
}

/// The one recipe for a layer's error type: its `to_problem(&self) -> Problem` is the only mapping
/// (status, problem type, title, headers), and this derives the HTTP response *and* its status from
/// it, so the two can never drift apart.
///
/// ```ignore
/// impl AdminError { pub fn to_problem(&self) -> Problem { match self { … } } }
/// problem::response_error!(AdminError);
/// ```
macro_rules! response_error {
    ($error:ty) => {
        impl actix_web::ResponseError for $error {
            fn status_code(&self) -> actix_web::http::StatusCode {
                self.to_problem().status_code()
            }

            fn error_response(&self) -> actix_web::HttpResponse {
                actix_web::ResponseError::error_response(&self.to_problem())
            }
        }
    };
}
pub(crate) use response_error;
