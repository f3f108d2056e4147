//! The orgs layer's one error type, mapped once to problem+json.
use actix_web::http::StatusCode;

use super::policy::Refusal;
use crate::{
    auth::AuthError,
    http::problem::{self, Problem},
};

/// Problem types of the orgs layer. Clients branch on these, never on titles.
pub mod types {
    pub const ORG_NOT_FOUND: &str = "urn:ironclad:problem:org-not-found";
    pub const ORG_PERMISSION: &str = "urn:ironclad:problem:org-permission-required";
    pub const SLUG_TAKEN: &str = "urn:ironclad:problem:slug-taken";
    pub const LAST_OWNER: &str = "urn:ironclad:problem:last-owner";
    pub const PERSONAL_ORG: &str = "urn:ironclad:problem:personal-org";
    pub const MEMBER_NOT_FOUND: &str = "urn:ironclad:problem:member-not-found";
    pub const INVITATION_NOT_FOUND: &str = "urn:ironclad:problem:invitation-not-found";
    pub const INVITATION_FOR_ANOTHER_ADDRESS: &str =
        "urn:ironclad:problem:invitation-for-another-address";
    pub const API_KEY_NOT_FOUND: &str = "urn:ironclad:problem:api-key-not-found";
    pub const SEAT_LIMIT_REACHED: &str = "urn:ironclad:problem:seat-limit-reached";
}

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// No such organisation, or the caller is not a member: the same answer, so an org's
    /// existence is not leaked.
    #[error("no such organisation")]
    NotFound,
    #[error("this needs the {0} permission in the organisation")]
    Permission(&'static str),
    #[error("{0}")]
    Refused(&'static str),
    #[error("invalid {field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    #[error("the slug {0} is taken")]
    SlugTaken(String),
    #[error("the organisation must keep an owner")]
    LastOwner,
    #[error("{0}")]
    PersonalOrg(&'static str),
    #[error("no such member")]
    MemberNotFound,
    /// An unknown, used, revoked or expired invitation: one answer for all.
    #[error("no such invitation")]
    InvitationNotFound,
    #[error("the invitation is for another email address")]
    InvitationForAnotherAddress,
    #[error("no such API key")]
    ApiKeyNotFound,
    #[error("the organisation has used its {0} seats")]
    SeatLimitReached(i32),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl From<Refusal> for OrgError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotAllowed(why) => Self::Refused(why),
            Refusal::LastOwner => Self::LastOwner,
            Refusal::PersonalOwner => {
                Self::PersonalOrg("the owner of a personal organisation stays its owner")
            }
        }
    }
}

impl OrgError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            field,
            message: message.into(),
        }
    }

    pub fn to_problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            Self::NotFound => {
                Problem::new(S::NOT_FOUND, types::ORG_NOT_FOUND, "No such organisation")
                    .with_detail("no organisation with this id has you as a member")
            }
            Self::Permission(action) => Problem::new(
                S::FORBIDDEN,
                types::ORG_PERMISSION,
                "Your role in this organisation does not allow this",
            )
            .with_detail(self.to_string())
            .with_extension("permission", *action),
            Self::Refused(why) => Problem::new(
                S::FORBIDDEN,
                types::ORG_PERMISSION,
                "Your role in this organisation does not allow this",
            )
            .with_detail(*why),
            Self::Validation { field, message } => problem::invalid_field(field, message),
            Self::SlugTaken(slug) => {
                Problem::new(S::CONFLICT, types::SLUG_TAKEN, "The slug is taken").with_detail(
                    format!("another organisation is {slug}; choose another slug"),
                )
            }
            Self::LastOwner => Problem::new(
                S::CONFLICT,
                types::LAST_OWNER,
                "An organisation must keep an owner",
            )
            .with_detail("make another member an owner first"),
            Self::PersonalOrg(why) => Problem::new(
                S::CONFLICT,
                types::PERSONAL_ORG,
                "Not possible for a personal organisation",
            )
            .with_detail(*why),
            Self::MemberNotFound => {
                Problem::new(S::NOT_FOUND, types::MEMBER_NOT_FOUND, "No such member")
            }
            Self::InvitationNotFound => Problem::new(
                S::NOT_FOUND,
                types::INVITATION_NOT_FOUND,
                "No such invitation",
            )
            .with_detail("the invitation is unknown, used, revoked or expired; ask for a new one"),
            Self::InvitationForAnotherAddress => Problem::new(
                S::FORBIDDEN,
                types::INVITATION_FOR_ANOTHER_ADDRESS,
                "The invitation is for another email address",
            )
            .with_detail("sign in with the invited address (verified) to accept it"),
            Self::SeatLimitReached(limit) => Problem::new(
                S::PAYMENT_REQUIRED,
                types::SEAT_LIMIT_REACHED,
                "The organisation has no seat left",
            )
            .with_detail(format!(
                "members and pending invitations may not pass {limit}; revoke an invitation, remove a member or raise the plan's seats"
            ))
            .with_extension("seat_limit", *limit),
            Self::ApiKeyNotFound => {
                Problem::new(S::NOT_FOUND, types::API_KEY_NOT_FOUND, "No such API key")
            }
            Self::Auth(error) => error.to_problem(),
            Self::Database(_) => problem::internal_error(self),
        }
    }
}

problem::response_error!(OrgError);
