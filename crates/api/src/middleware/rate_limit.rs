//! The general rate limit on every `/api/v1` route (contract Part B): a
//! request counts against its user when it carries a valid token, else
//! against its address.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower::{Layer, Service};

use super::BoxedResponse;
use crate::extract::auth::VerifiedUserId;
use crate::extract::client;
use crate::rate_limit::Client;
use crate::state::AppState;

/// The layer over each `/api/v1` route.
#[derive(Clone)]
pub struct RateLimitLayer(Arc<AppState>);

impl RateLimitLayer {
    pub fn new(state: AppState) -> Self {
        Self(Arc::new(state))
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner, state: self.0.clone() }
    }
}

/// A tower service of its own rather than an axum `from_fn` middleware,
/// which clones and boxes the route's stack and boxes its own future on
/// every request. With the counters in memory the request is decided at
/// once and goes on unboxed; with Redis it waits for Redis in a boxed future.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxedResponse>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let client = self.client(&mut request);
        let limiter = &self.state.rate_limiter;
        match limiter.request_allowed_in_memory(client) {
            Some(Ok(())) => Either::Left(self.inner.call(request)),
            Some(Err(refused)) => Either::Right(Box::pin(std::future::ready(Ok(refused.into_response())))),
            None => {
                // The service that was made ready goes with the request; a
                // clone takes its place here.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let limiter = limiter.clone();
                Either::Right(Box::pin(async move {
                    match limiter.request_allowed(client).await {
                        Ok(()) => inner.call(request).await,
                        Err(refused) => Ok(refused.into_response()),
                    }
                }))
            }
        }
    }
}

impl<S> RateLimit<S> {
    /// Who the request counts against. The token is decoded here once; the
    /// user id it names is handed on to `CurrentUser` in the request's
    /// extensions.
    fn client(&self, request: &mut Request) -> Client {
        if let Some(user) = client::user_id(request.headers(), &self.state.tokens) {
            request.extensions_mut().insert(VerifiedUserId(user));
            return Client::User(user);
        }
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Client::Address(client::address(request.headers(), peer, &self.state.settings.http.trusted_proxies))
    }
}
