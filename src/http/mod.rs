//! HTTP plumbing shared by every layer: problem+json errors, request ids, health probes, the
//! metrics scrape, route guards, idempotency keys, security headers and CORS.
pub mod errors;
pub mod guard;
pub mod health;
pub mod idempotency;
pub mod json;
pub mod problem;
pub mod request_id;
pub mod scrape;
pub mod security_headers;

pub use problem::Problem;
pub use request_id::RequestId;
