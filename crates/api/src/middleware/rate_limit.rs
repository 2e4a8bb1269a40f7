//! The general rate limit on every `/api/v1` route (contract Part B): a
//! request counts against its user when it carries a valid token, else
//! against its address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::extract::auth::VerifiedUserId;
use crate::extract::client;
use crate::state::AppState;

/// The token is decoded here once; the user id it names is handed on to
/// `CurrentUser` in the request's extensions.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let key = match client::user_id(request.headers(), &state.tokens) {
        Some(user) => {
            request.extensions_mut().insert(VerifiedUserId(user));
            format!("user:{user}")
        }
        None => format!("ip:{}", client::address(request.headers(), peer, &state.settings.http.trusted_proxies)),
    };
    match state.rate_limiter.request_allowed(key).await {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}
