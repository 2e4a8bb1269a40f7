//! FastAPI's `redirect_slashes`: a request for the other spelling of a known
//! path (with or without the trailing slash) is sent to the written one with a
//! 307, which keeps the method and body. Anything else is a JSON 404.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::detail;

/// The templates of every documented route, as matchit patterns.
#[derive(Clone)]
pub struct KnownPaths(Arc<matchit::Router<()>>);

impl KnownPaths {
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut router = matchit::Router::new();
        for template in templates {
            // Two templates that differ only in a parameter name overlap;
            // the first one is enough to answer "does this path exist".
            drop(router.insert(template, ()));
        }
        Self(Arc::new(router))
    }

    pub fn fallback(&self, uri: &Uri) -> Response {
        let path = uri.path();
        let other = match path.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed.to_owned(),
            Some(_) => return not_found(),
            None => format!("{path}/"),
        };
        if self.0.at(&other).is_err() {
            return not_found();
        }
        let location = match uri.query() {
            Some(query) => format!("{other}?{query}"),
            None => other,
        };
        match HeaderValue::try_from(location) {
            Ok(location) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response(),
            Err(_) => not_found(),
        }
    }
}

fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not Found")
}
