//! The admin layer's one error type, mapped once to problem+json.
use actix_web::http::StatusCode;

use crate::http::{Problem, problem};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no dead job {0}")]
    JobNotDead(String),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl AdminError {
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::JobNotDead(_) => {
                Problem::from_status(StatusCode::NOT_FOUND).with_detail(self.to_string())
            }
            Self::Database(_) => problem::internal_error(self),
        }
    }
}

problem::response_error!(AdminError);
