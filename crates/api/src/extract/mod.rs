//! Extractors that turn a request into typed, validated input, failing with
//! the contract's errors: FastAPI's 422 list for bad input, 401/403/404/400
//! for credentials.

pub mod auth;
pub mod body;
pub mod client;
pub mod fields;
pub mod form;
pub mod path;
pub mod query;
pub mod text;
