//! `Json<T>`: a response body in JSON, what every handler answers with.
//!
//! Written by sonic-rs rather than serde_json (axum's `Json`): serde_json
//! looks for characters to escape one byte at a time, which was half the
//! instructions of writing a page of 100 items (docs/benchmarks.md, stop 20);
//! sonic-rs looks 32 bytes at a time. The text is the same, byte for byte:
//! the tests below hold it to serde_json's on every code point, on floats
//! and on the response types, because the contract's clients compare bodies
//! written by FastAPI, and serde_json is what our tests parse them with.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

pub struct Json<T>(pub T);

/// Room for the headers a response gets on its way out: its content type,
/// CORS's `Vary`, its credentials answer and, for a listed origin, that
/// origin, the three security headers and the request id. Added one by one
/// to an empty map, they made it grow and rehash on the way.
const HEADER_ROOM: usize = 12;

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match sonic_rs::to_vec(&self.0) {
            Ok(body) => {
                let mut response = Response::new(Body::from(body));
                let headers = response.headers_mut();
                headers.reserve(HEADER_ROOM);
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            // Only a map key JSON cannot hold (a sequence, a float that is
            // not finite) or a failing `Serialize` fails; no response type
            // has either. (Nor a serde_json `RawValue`, which sonic-rs
            // would write as an object.)
            Err(err) => ApiError::Internal(anyhow::Error::new(err).context("writing a JSON response")).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    fn same_text<T: serde::Serialize + ?Sized>(value: &T) {
        assert_eq!(sonic_rs::to_string(value).unwrap(), serde_json::to_string(value).unwrap());
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every code point, at every offset a 32-byte block can put it.
        let chars: Vec<char> = (0..=0x10FFFF).filter_map(char::from_u32).collect();
        for chunk in chars.chunks(37) {
            let text: String = chunk.iter().collect();
            for lead in 0..33 {
                same_text(&format!("{}{text}", "x".repeat(lead)));
            }
        }
        // Each ASCII byte alone, inside runs of every length up to 70.
        for byte in 0..128u8 {
            for len in 0..70 {
                let text: String = (0..len).map(|i| if i % 7 == 3 { char::from(byte) } else { 'a' }).collect();
                same_text(&text);
            }
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        // A validation error echoes the client's numbers back in `input`.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let float = f64::from_bits(state);
            if float.is_finite() {
                same_text(&float);
            }
        }
        for float in
            [0.0, -0.0, 1.0, 0.1, 1e15, 1e16, 1e17, 1e21, 1e22, 1e-5, 1e-7, 9_007_199_254_740_993.0, f64::MAX, 5e-324]
        {
            same_text(&float);
        }
        same_text(&json!([u64::MAX, i64::MIN, 1.5, null, true, {"b": 1, "a": {}}]));
    }

    #[test]
    fn response_types_are_written_as_serde_json_writes_them() {
        let item = crate::models::ItemPublic {
            title: "a \"title\"\n".to_owned(),
            description: None,
            id: uuid::Uuid::new_v4(),
            owner_id: uuid::Uuid::new_v4(),
            created_at: Some(chrono::Utc::now()),
        };
        same_text(&crate::models::ItemsPublic { data: vec![item], count: 1 });
        same_text(&crate::error::ValidationIssue::new(
            "missing",
            &["body", "title"],
            "Field required",
            json!({"x": 1e300}),
        ));
    }
}
