//! The organisation's audit log, for admins: an example of a **paid feature**. Its one route
//! declares `RequireEntitlement("audit_log")` beside the org's permission guard, so only orgs whose
//! plan grants `audit_log` (the demo `business` plan) can read it; the others get a 402 saying
//! why (no subscription, payment past due, or not in the plan). Copy this shape for your own
//! features: one guard on the route, nothing in the handler.
//!
//! It reads `org_audit`, which the orgs and billing layers write; it owns no table.
pub mod routes;

pub use routes::routes;
