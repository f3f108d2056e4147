//! The usage layer's one error type, mapped once to problem+json.
use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};

use crate::{
    http::problem::{self, Problem},
    orgs::OrgError,
};

/// Problem types of the usage layer. Clients branch on these, never on titles.
pub mod types {
    pub const USAGE_LIMIT_REACHED: &str = "urn:ironclad:problem:usage-limit-reached";
    pub const RESERVATION_SETTLED: &str = "urn:ironclad:problem:reservation-settled";
    pub const METER_NOT_FOUND: &str = "urn:ironclad:problem:meter-not-found";
}

/// Whose limit a refused reserve reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The organisation's, for the period.
    Org,
    /// The cap an admin set on the member's share.
    Member,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::Member => "member",
        }
    }
}

/// A refused reserve: what the 402 says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReached {
    pub meter: String,
    pub scope: Scope,
    pub limit: i64,
    /// Used and still reserved in the period.
    pub used: i64,
    pub resets_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("the {} limit of {} for {} is reached", .0.scope.as_str(), .0.limit, .0.meter)]
    LimitReached(LimitReached),
    /// The idempotency key belongs to a reservation already committed or released: the work it
    /// covered was done (or given up) once.
    #[error("the reservation for this key was already {0}")]
    Settled(String),
    #[error("no meter {0}")]
    UnknownMeter(String),
    #[error("invalid {field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl UsageError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            field,
            message: message.into(),
        }
    }

    pub fn to_problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            Self::LimitReached(l) => Problem::new(
                S::PAYMENT_REQUIRED,
                types::USAGE_LIMIT_REACHED,
                "The usage limit is reached",
            )
            .with_detail(match l.scope {
                Scope::Org => format!(
                    "the organisation has used {} of its {} {} this period",
                    l.used, l.limit, l.meter
                ),
                Scope::Member => format!(
                    "you have used {} of the {} {} an admin allows you this period",
                    l.used, l.limit, l.meter
                ),
            })
            .with_extension("meter", l.meter.clone())
            .with_extension("scope", l.scope.as_str())
            .with_extension("limit", l.limit)
            .with_extension("used", l.used)
            .with_extension("resets_at", l.resets_at.to_rfc3339()),
            Self::Settled(state) => Problem::new(
                S::CONFLICT,
                types::RESERVATION_SETTLED,
                "This Idempotency-Key was used already",
            )
            .with_detail(format!(
                "the work under this key was {state}; send a new key for new work"
            )),
            Self::UnknownMeter(meter) => {
                Problem::new(S::NOT_FOUND, types::METER_NOT_FOUND, "No such meter")
                    .with_detail(format!("no meter is called {meter}"))
            }
            Self::Validation { field, message } => problem::invalid_field(field, message),
            Self::Org(error) => error.to_problem(),
            Self::Database(_) => problem::internal_error(self),
        }
    }
}

problem::response_error!(UsageError);
