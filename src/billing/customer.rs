//! Who is buying: the one fact billing needs from the auth layer.
//!
//! Billing's handlers take a [`Customer`] rather than the auth layer's extractor directly, so the
//! coupling is this one file: a valid access token of a live session (see
//! [`crate::auth::AuthUser`]) or 401. Buying also needs a verified email address:
//! [`RequireVerifiedEmail`] on the route.
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

pub use crate::auth::RequireVerifiedEmail;
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
    type Future = LocalBoxFuture<'static, Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(&req).await?;
            Ok(Customer {
                user_id: user.user_id,
            })
        })
    }
}

impl IdempotencyScope for Customer {
    fn idempotency_scope(&self) -> String {
        format!("user:{}", self.user_id)
    }
}
