//! Text the database can store. Postgres refuses U+0000 in a text value
//! (SQLite stores it), so a NUL anywhere in a string would be a 500 on one
//! backend and data on the other. Every kind of input (JSON, form, query,
//! path) is checked here, at the edge, and a NUL is FastAPI's 422 naming the
//! field: no query ever sees one.

use serde_json::{Value, json};

use crate::error::ValidationIssue;

/// The issue for `text` at `loc`, if it holds a NUL.
pub fn nul_issue(loc: &[&str], text: &str) -> Option<ValidationIssue> {
    text.contains('\0').then(|| {
        ValidationIssue::new(
            "value_error",
            loc,
            "Value error, must not contain the NUL character (U+0000)",
            Value::String(text.to_owned()),
        )
        .with_ctx(json!({ "error": {} }))
    })
}
