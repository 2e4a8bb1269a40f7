//! Rate limits (contract Part B). Every request counts against its client's
//! `RATE_LIMIT_PER_MINUTE`: the client is its user id when the request
//! carries a valid token, else its IP address (from `X-Forwarded-For` only
//! when the peer is a trusted proxy).
//!
//! Credential guessing is throttled on failures, not on use, so a person, a
//! test suite or an office behind one address that logs in many times a
//! minute is never refused: a failed login or password reset counts per
//! (address, account) and, with a higher cap, per address; a login is
//! refused only once those failures are used up, and a successful one costs
//! nothing. Password-recovery requests count per address and per target
//! email, so nobody can flood one inbox. Superuser-only routes are in none
//! of these buckets.
//!
//! Counters live in Redis when `REDIS_URL` is set, else in memory. When
//! Redis fails, requests are counted in memory instead, never failed; Redis
//! is tried again after a short pause.

mod client;
mod memory;
mod redis_store;
mod window;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use shared_core::Settings;
use shared_core::config::RateLimitSettings;

use crate::error::ApiError;
use crate::extract::auth::VerifiedUserId;
use crate::state::AppState;
pub use client::ClientAddress;
use memory::MemoryStore;
use redis_store::RedisStore;

/// After a Redis failure, the in-memory counters are used this long before
/// Redis is tried again.
const REDIS_PAUSE: Duration = Duration::from_secs(2);

/// How one request meets a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Is there room for one more? Counts nothing.
    Check,
    /// Counts one when there is room; refuses otherwise.
    Take,
    /// Counts one, room or not: something already happened (a failure).
    Record,
}

impl Count {
    fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Take => "take",
            Self::Record => "record",
        }
    }
}

#[derive(Clone)]
pub struct RateLimiter(Arc<Inner>);

struct Inner {
    limits: RateLimitSettings,
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
            limits: settings.rate_limit.clone(),
            memory: MemoryStore::default(),
            redis,
            redis_paused_until: AtomicU64::new(0),
        })))
    }

    /// Meets one counter: `Err(retry_after_secs)` when it has no room.
    async fn count(&self, key: &str, limit: u32, count: Count) -> Result<(), u64> {
        let now = now_ms();
        if let Some(redis) = &self.0.redis
            && now >= self.0.redis_paused_until.load(Ordering::Relaxed)
        {
            match redis.count(key, limit, count, now).await {
                Ok(decision) => return decision,
                Err(err) => {
                    self.0.redis_paused_until.store(now + REDIS_PAUSE.as_millis() as u64, Ordering::Relaxed);
                    metrics::counter!("rate_limit_redis_failures_total").increment(1);
                    tracing::warn!(error = %err, "rate limiter: Redis failed; counting in memory for now");
                }
            }
        }
        self.0.memory.count(key, limit, count, now)
    }

    /// Meets each (key, limit) in turn, stopping at the first without room.
    async fn count_all(&self, budget: &'static str, counters: &[(String, u32)], count: Count) -> Result<(), ApiError> {
        for (key, limit) in counters {
            if let Err(retry_after_secs) = self.count(key, *limit, count).await {
                metrics::counter!("rate_limit_rejections_total", "budget" => budget).increment(1);
                return Err(ApiError::TooManyRequests { retry_after_secs });
            }
        }
        Ok(())
    }

    /// The failure counters of `client` guessing credentials for `account`
    /// (an email, or `None` when the attempt names no account).
    fn failure_counters(&self, client: IpAddr, account: Option<&str>) -> Vec<(String, u32)> {
        let limits = &self.0.limits;
        let mut counters = vec![(format!("fail:{client}"), limits.login_failures_per_client)];
        if let Some(account) = account {
            counters
                .push((format!("fail:{client}:{}", account.trim().to_lowercase()), limits.login_failures_per_account));
        }
        counters
    }

    /// Before checking credentials: refused once this client's failures
    /// (for this account, or in all) are used up.
    pub async fn credentials_allowed(&self, client: IpAddr, account: Option<&str>) -> Result<(), ApiError> {
        self.count_all("login_failures", &self.failure_counters(client, account), Count::Check).await
    }

    /// After credentials did not verify.
    pub async fn credentials_failed(&self, client: IpAddr, account: Option<&str>) {
        // Record never refuses; the next attempt is the one turned away.
        let _ = self.count_all("login_failures", &self.failure_counters(client, account), Count::Record).await;
    }

    /// One password-recovery request from `client` for `email`.
    pub async fn recovery_requested(&self, client: IpAddr, email: &str) -> Result<(), ApiError> {
        let limits = &self.0.limits;
        let counters = [
            (format!("recover:{client}"), limits.recovery_per_client),
            (format!("recover-to:{}", email.trim().to_lowercase()), limits.recovery_per_email),
        ];
        self.count_all("password_recovery", &counters, Count::Take).await
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

/// The middleware on every `/api/v1` route: the general budget.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let key = match client::user_id(request.headers(), &state.tokens) {
        Some(user) => {
            request.extensions_mut().insert(VerifiedUserId(user));
            format!("user:{user}")
        }
        None => format!("ip:{}", client::address(request.headers(), peer, &state.settings.http.trusted_proxies)),
    };
    let limiter = &state.rate_limiter;
    match limiter.count_all("general", &[(key, limiter.0.limits.per_minute)], Count::Take).await {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}
