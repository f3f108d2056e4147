//! The billing layer's one error type, mapped once to problem+json.
use actix_web::http::StatusCode;

use super::signature::SignatureError;
use crate::http::{Problem, problem};

/// Problem types of the billing layer; clients branch on these, never on titles.
pub mod types {
    pub const PRODUCT_NOT_FOUND: &str = "urn:ironclad:problem:product-not-found";
    pub const ORDER_NOT_FOUND: &str = "urn:ironclad:problem:order-not-found";
    pub const CHECKOUT_KEY_REUSED: &str = "urn:ironclad:problem:checkout-key-reused";
    pub const ORDER_NOT_CANCELABLE: &str = "urn:ironclad:problem:order-not-cancelable";
    pub const PAYMENT_PROVIDER: &str = "urn:ironclad:problem:payment-provider-unavailable";
    pub const INVALID_SIGNATURE: &str = "urn:ironclad:problem:invalid-webhook-signature";
    pub const INVALID_EVENT: &str = "urn:ironclad:problem:invalid-webhook-event";
}

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("no product {0} is on sale")]
    ProductNotFound(uuid::Uuid),
    #[error("order not found")]
    OrderNotFound,
    #[error("{0}")]
    Validation(String),
    /// A field of the body that does not parse (422 naming it).
    #[error("{field} {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("this Idempotency-Key already created an order for another product or quantity")]
    CheckoutKeyReused,
    #[error("the order is {0} and can no longer be canceled")]
    NotCancelable(&'static str),
    /// The Checkout Session completed at Stripe before we could expire it; the order learns it from
    /// its webhook (or reconciliation).
    #[error("the payment went through at Stripe: the order can no longer be canceled")]
    PaymentUnderway,
    #[error("stripe: {0:#}")]
    Stripe(#[source] anyhow::Error),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the event is not a Stripe event: {0}")]
    InvalidEvent(String),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    /// An operator asked about a webhook event that never arrived.
    #[error("no webhook event {0} was received")]
    EventNotFound(String),
    #[error("{0:#}")]
    Internal(#[source] anyhow::Error),
}

impl From<stripe::StripeError> for BillingError {
    fn from(error: stripe::StripeError) -> Self {
        Self::Stripe(error.into())
    }
}

impl BillingError {
    pub fn to_problem(&self) -> Problem {
        use types::*;
        let detailed = |status, kind, title: &str| {
            Problem::new(status, kind, title).with_detail(self.to_string())
        };
        match self {
            Self::ProductNotFound(_) => detailed(
                StatusCode::NOT_FOUND,
                PRODUCT_NOT_FOUND,
                "Product not found",
            ),
            Self::OrderNotFound => {
                detailed(StatusCode::NOT_FOUND, ORDER_NOT_FOUND, "Order not found")
            }
            Self::Validation(_) => detailed(
                StatusCode::UNPROCESSABLE_ENTITY,
                problem::types::VALIDATION,
                "The request is not valid",
            ),
            Self::InvalidField { field, message } => problem::invalid_field(field, message),
            Self::CheckoutKeyReused => detailed(
                StatusCode::UNPROCESSABLE_ENTITY,
                CHECKOUT_KEY_REUSED,
                "Idempotency-Key reused for a different checkout",
            ),
            Self::NotCancelable(_) | Self::PaymentUnderway => detailed(
                StatusCode::CONFLICT,
                ORDER_NOT_CANCELABLE,
                "The order cannot be canceled",
            ),
            // The cause is logged, not shown: it may carry account details.
            Self::Stripe(cause) => Problem::new(
                StatusCode::BAD_GATEWAY,
                PAYMENT_PROVIDER,
                "The payment provider could not be reached",
            )
            .with_detail(
                "retrying is safe (retry a checkout with the same Idempotency-Key: no second \
                 payment can result)",
            )
            .with_cause(cause),
            Self::Signature(_) => detailed(
                StatusCode::BAD_REQUEST,
                INVALID_SIGNATURE,
                "The webhook signature is not valid",
            ),
            Self::UnsupportedMediaType => Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .with_detail(self.to_string()),
            Self::EventNotFound(_) => {
                Problem::from_status(StatusCode::NOT_FOUND).with_detail(self.to_string())
            }
            Self::InvalidEvent(_) => detailed(
                StatusCode::BAD_REQUEST,
                INVALID_EVENT,
                "The webhook payload is not a Stripe event",
            ),
            Self::Database(_) | Self::Internal(_) => problem::internal_error(self),
        }
    }
}

problem::response_error!(BillingError);
