//! A panic in a handler becomes a logged 500 with the request id in its body;
//! the connection and the process carry on serving. (tower-http's
//! `CatchPanicLayer` hands its handler the panic payload only, not the
//! request, so it cannot put the request id in the body.)

use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde_json::json;

use super::request_id;
use crate::json::Json;

pub async fn catch_panic(request: Request, next: Next) -> Response {
    let request_id = request_id::of(&request).to_owned();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            tracing::error!(panic = %message, "handler panicked");
            let body = json!({ "detail": "Internal Server Error", "request_id": request_id });
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}
