//! Rate limits (contract Part B): each client gets `RATE_LIMIT_PER_MINUTE`
//! requests per rolling minute, and `LOGIN_RATE_LIMIT_PER_MINUTE` on the
//! login and password-recovery routes. A client is its user id when the
//! request carries a valid token, else its IP address (from
//! `X-Forwarded-For` only when the peer is a trusted proxy).
//!
//! Counters live in Redis when `REDIS_URL` is set, else in memory. When
//! Redis fails, requests are counted in memory instead, never failed; Redis
//! is tried again after a short pause.

mod client;
mod memory;
mod redis_store;
mod window;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use shared_core::Settings;

use crate::error::ApiError;
use crate::state::AppState;
use memory::MemoryStore;
use redis_store::RedisStore;

/// After a Redis failure, the in-memory counters are used this long before
/// Redis is tried again.
const REDIS_PAUSE: Duration = Duration::from_secs(2);

/// The routes whose budget is `LOGIN_RATE_LIMIT_PER_MINUTE`, per address.
const LOGIN_ROUTES: &[&str] = &[
    "/api/v1/login/access-token",
    "/api/v1/password-recovery/{email}",
    "/api/v1/reset-password/",
    "/api/v1/password-recovery-html-content/{email}",
];

#[derive(Clone)]
pub struct RateLimiter(Arc<Inner>);

struct Inner {
    per_minute: u32,
    login_per_minute: u32,
    memory: MemoryStore,
    redis: Option<RedisStore>,
    /// Milliseconds since the epoch before which Redis is not tried.
    redis_paused_until: AtomicU64,
}

/// How the Redis store is doing, for `/readyz`.
pub enum RedisHealth {
    NotConfigured,
    Ok,
    Degraded(String),
}

impl RateLimiter {
    pub fn new(settings: &Settings) -> Result<Self, redis::RedisError> {
        let redis = match &settings.redis_url {
            Some(url) => Some(RedisStore::new(url.expose(), &settings.redis_key_prefix)?),
            None => None,
        };
        Ok(Self(Arc::new(Inner {
            per_minute: settings.rate_limit.per_minute,
            login_per_minute: settings.rate_limit.login_per_minute,
            memory: MemoryStore::default(),
            redis,
            redis_paused_until: AtomicU64::new(0),
        })))
    }

    /// Counts one request of `key` against `limit`: `Err(retry_after)` when over.
    async fn hit(&self, key: &str, limit: u32) -> Result<(), u64> {
        let now = now_ms();
        if let Some(redis) = &self.0.redis
            && now >= self.0.redis_paused_until.load(Ordering::Relaxed)
        {
            match redis.hit(key, limit, now).await {
                Ok(decision) => return decision,
                Err(err) => {
                    self.0.redis_paused_until.store(now + REDIS_PAUSE.as_millis() as u64, Ordering::Relaxed);
                    metrics::counter!("rate_limit_redis_failures_total").increment(1);
                    tracing::warn!(error = %err, "rate limiter: Redis failed; counting in memory for now");
                }
            }
        }
        self.0.memory.hit(key, limit, now)
    }

    pub async fn redis_health(&self) -> RedisHealth {
        match &self.0.redis {
            None => RedisHealth::NotConfigured,
            Some(redis) => match redis.ping().await {
                Ok(()) => RedisHealth::Ok,
                Err(err) => RedisHealth::Degraded(err.to_string()),
            },
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The middleware on every `/api/v1` route.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let ip = client::address(request.headers(), peer, &state.settings.http.trusted_proxies);
    let login = route.as_deref().is_some_and(|r| LOGIN_ROUTES.contains(&r));
    let (budget, key, limit) = if login {
        ("login", format!("login:{ip}"), state.rate_limiter.0.login_per_minute)
    } else {
        let key = match client::user_id(request.headers(), &state.tokens) {
            Some(user) => format!("user:{user}"),
            None => format!("ip:{ip}"),
        };
        ("general", key, state.rate_limiter.0.per_minute)
    };
    match state.rate_limiter.hit(&key, limit).await {
        Ok(()) => next.run(request).await,
        Err(retry_after_secs) => {
            metrics::counter!("rate_limit_rejections_total", "budget" => budget).increment(1);
            ApiError::TooManyRequests { retry_after_secs }.into_response()
        }
    }
}
