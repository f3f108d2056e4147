//! The admin layer's error type, mapped once to problem+json.
use actix_web::{HttpResponse, ResponseError, http::StatusCode};

use crate::{
    billing::BillingError,
    http::{Problem, problem},
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no dead job {0}")]
    JobNotDead(String),
    #[error("no webhook event {0} was received")]
    EventNotFound(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::JobNotDead(_) | Self::EventNotFound(_) => StatusCode::NOT_FOUND,
            Self::Billing(error) => error.status_code(),
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::JobNotDead(_) | Self::EventNotFound(_) => {
                Problem::from_status(StatusCode::NOT_FOUND).with_detail(self.to_string())
            }
            Self::Billing(error) => error.to_problem(),
            Self::Database(_) => problem::internal_error(self),
        }
        .error_response()
    }
}
