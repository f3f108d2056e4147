//! The billing layer's one error type, mapped once to problem+json.
use actix_web::http::StatusCode;

use super::{stripe::SignatureError, subscriptions::Refusal};
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
    pub const PLAN_NOT_FOUND: &str = "urn:ironclad:problem:plan-not-found";
    pub const SUBSCRIPTION_EXISTS: &str = "urn:ironclad:problem:subscription-exists";
    pub const SUBSCRIPTION_NOT_FOUND: &str = "urn:ironclad:problem:subscription-not-found";
    pub const SUBSCRIPTION_NOT_CHANGEABLE: &str =
        "urn:ironclad:problem:subscription-not-changeable";
    pub const CHECKOUT_SUPERSEDED: &str = "urn:ironclad:problem:checkout-superseded";
    pub const SEATS_BELOW_MEMBERS: &str = "urn:ironclad:problem:seats-below-members";
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
    #[error("no plan {0:?} is on sale at that interval")]
    PlanNotFound(String),
    #[error("the organisation already has a subscription ({0}); change or cancel it instead")]
    SubscriptionExists(&'static str),
    #[error("the organisation has no subscription")]
    NoSubscription,
    #[error("{0}")]
    NotChangeable(&'static str),
    #[error("a newer subscription checkout for this organisation replaced this one")]
    CheckoutSuperseded,
    #[error("{seats} seats are fewer than the organisation's {members} members")]
    SeatsBelowMembers { seats: u32, members: i64 },
    /// The route's feature is not granted (402, one problem type per reason).
    #[error("{0}")]
    NotEntitled(Entitlement),
    #[error("{0:#}")]
    Internal(#[source] anyhow::Error),
}

/// A refused entitlement, as the 402 problem tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entitlement {
    pub feature: &'static str,
    pub refusal: Refusal,
}

impl std::fmt::Display for Entitlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.refusal {
            Refusal::SubscriptionRequired => write!(
                f,
                "{:?} needs an active subscription; subscribe to a plan that includes it",
                self.feature
            ),
            Refusal::PaymentPastDue => write!(
                f,
                "{:?} is suspended: the subscription's payment is past due; update the payment \
                 method in the billing portal",
                self.feature
            ),
            Refusal::FeatureNotInPlan => write!(
                f,
                "{:?} is not in the organisation's plan; change to a plan that includes it",
                self.feature
            ),
        }
    }
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
            Self::PlanNotFound(_) => {
                detailed(StatusCode::NOT_FOUND, PLAN_NOT_FOUND, "Plan not found")
            }
            Self::SubscriptionExists(_) => detailed(
                StatusCode::CONFLICT,
                SUBSCRIPTION_EXISTS,
                "The organisation already has a subscription",
            ),
            Self::NoSubscription => detailed(
                StatusCode::NOT_FOUND,
                SUBSCRIPTION_NOT_FOUND,
                "No subscription",
            ),
            Self::NotChangeable(_) => detailed(
                StatusCode::CONFLICT,
                SUBSCRIPTION_NOT_CHANGEABLE,
                "The subscription cannot be changed that way now",
            ),
            Self::CheckoutSuperseded => detailed(
                StatusCode::CONFLICT,
                CHECKOUT_SUPERSEDED,
                "A newer checkout replaced this one",
            ),
            Self::SeatsBelowMembers { .. } => detailed(
                StatusCode::UNPROCESSABLE_ENTITY,
                SEATS_BELOW_MEMBERS,
                "Fewer seats than members",
            ),
            Self::NotEntitled(entitlement) => detailed(
                StatusCode::PAYMENT_REQUIRED,
                entitlement.refusal.problem_type(),
                match entitlement.refusal {
                    Refusal::SubscriptionRequired => "Subscription required",
                    Refusal::PaymentPastDue => "Payment past due",
                    Refusal::FeatureNotInPlan => "Feature not in plan",
                },
            ),
            Self::Database(_) | Self::Internal(_) => problem::internal_error(self),
        }
    }
}

problem::response_error!(BillingError);
