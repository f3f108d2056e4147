//! Who is buying: the one fact billing needs from the auth layer.
//!
//! Billing's handlers take a [`Customer`] rather than the auth layer's extractor directly, so the
//! coupling is this one file: a valid access token (see [`crate::auth::AuthUser`]) or 401.
use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use uuid::Uuid;

use crate::{
    auth::{AuthError, guard::authenticate},
    http::idempotency::IdempotencyScope,
};

/// The signed-in user placing or reading orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Customer {
    pub user_id: Uuid,
}

impl FromRequest for Customer {
    type Error = AuthError;
    type Future = Ready<Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(|user| Customer {
            user_id: user.user_id,
        }))
    }
}

impl IdempotencyScope for Customer {
    fn idempotency_scope(&self) -> String {
        format!("user:{}", self.user_id)
    }
}
