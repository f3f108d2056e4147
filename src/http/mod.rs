//! HTTP plumbing shared by every layer: problem+json errors, request ids, health probes, the
//! metrics scrape, idempotency keys.
pub mod errors;
pub mod health;
pub mod idempotency;
pub mod problem;
pub mod request_id;
pub mod scrape;

pub use problem::Problem;
pub use request_id::RequestId;
