//! Who is buying: the one fact billing needs from the auth layer.
//!
//! Billing's handlers take a [`Customer`] rather than the auth layer's extractor directly, so the
//! coupling is this one file. Until the auth layer (issue #3) is merged there is no way to sign in,
//! and every customer route answers 401 — billing never invents an identity.
use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::StatusCode};
use uuid::Uuid;

use crate::http::{Problem, idempotency::IdempotencyScope};

/// The signed-in user placing or reading orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Customer {
    pub user_id: Uuid,
}

impl FromRequest for Customer {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(_req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        // Wired to `crate::auth::AuthUser` once the auth layer lands (issue #3).
        ready(Err(
            Problem::from_status(StatusCode::UNAUTHORIZED).with_detail("sign in to use billing")
        ))
    }
}

impl IdempotencyScope for Customer {
    fn idempotency_scope(&self) -> String {
        format!("user:{}", self.user_id)
    }
}
