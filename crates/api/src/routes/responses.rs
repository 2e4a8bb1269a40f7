//! Response sets that several routes document alike, for `responses(...)`
//! next to each route's own: FastAPI's 422, and the refusals of a lookup by
//! id or of a superuser-only route.
#![expect(dead_code, reason = "these types only describe responses in the document; none is ever built")]

use utoipa::IntoResponses;

use crate::models::HTTPValidationError;

/// FastAPI's 422 list, on every route that takes input.
#[derive(IntoResponses)]
#[response(status = 422, description = "Validation Error")]
pub struct Invalid(HTTPValidationError);

/// An item looked up by id.
#[derive(IntoResponses)]
pub enum ItemLookup {
    #[response(status = 403, description = "Not the owner")]
    NotOwner,
    #[response(status = 404, description = "No such item")]
    Missing,
    #[response(status = 422, description = "Validation Error")]
    Invalid(HTTPValidationError),
}

/// A job looked up by id.
#[derive(IntoResponses)]
pub enum JobLookup {
    #[response(status = 403, description = "Not the owner")]
    NotOwner,
    #[response(status = 404, description = "No such job")]
    Missing,
    #[response(status = 422, description = "Validation Error")]
    Invalid(HTTPValidationError),
}

/// A superuser-only route that takes input.
#[derive(IntoResponses)]
pub enum SuperuserInput {
    #[response(status = 403, description = "Not a superuser")]
    NotSuperuser,
    #[response(status = 422, description = "Validation Error")]
    Invalid(HTTPValidationError),
}
