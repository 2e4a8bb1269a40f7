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

mod memory;
mod redis_store;
mod window;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared_core::Settings;
use shared_core::config::RateLimitSettings;
use uuid::Uuid;

use crate::error::ApiError;
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

/// Who a request counts against in the general budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// The user of a valid token.
    User(Uuid),
    Address(IpAddr),
}

/// One counter: what it counts, and whose. Kept as data rather than text,
/// so that the in-memory store finds a request's counter without writing
/// its name; the name (`Display`) is its key in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Requests(Client),
    Failures(IpAddr),
    /// Failures of an address against one account (an email, lowercased).
    AccountFailures(IpAddr, String),
    Recovery(IpAddr),
    /// Recovery emails to one address (lowercased).
    RecoveryTo(String),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requests(Client::User(user)) => write!(f, "user:{user}"),
            Self::Requests(Client::Address(address)) => write!(f, "ip:{address}"),
            Self::Failures(address) => write!(f, "fail:{address}"),
            Self::AccountFailures(address, account) => write!(f, "fail:{address}:{account}"),
            Self::Recovery(address) => write!(f, "recover:{address}"),
            Self::RecoveryTo(email) => write!(f, "recover-to:{email}"),
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
    async fn count(&self, key: &Key, limit: u32, count: Count) -> Result<(), u64> {
        let now = now_ms();
        if let Some(redis) = self.redis_now(now) {
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

    /// The Redis store, unless none is configured or it is paused after a failure.
    fn redis_now(&self, now: u64) -> Option<&RedisStore> {
        self.0.redis.as_ref().filter(|_| now >= self.0.redis_paused_until.load(Ordering::Relaxed))
    }

    /// Meets each (key, limit) in turn, stopping at the first without room.
    async fn count_all(&self, budget: &'static str, counters: &[(Key, u32)], count: Count) -> Result<(), ApiError> {
        for (key, limit) in counters {
            self.count(key, *limit, count).await.map_err(|retry_after_secs| refused(budget, retry_after_secs))?;
        }
        Ok(())
    }

    /// The failure counters of `client` guessing credentials for `account`
    /// (an email, or `None` when the attempt names no account).
    fn failure_counters(&self, client: IpAddr, account: Option<&str>) -> Vec<(Key, u32)> {
        let limits = &self.0.limits;
        let mut counters = vec![(Key::Failures(client), limits.login_failures_per_client)];
        if let Some(account) = account {
            let account = account.trim().to_lowercase();
            counters.push((Key::AccountFailures(client, account), limits.login_failures_per_account));
        }
        counters
    }

    /// The general budget of one request from `client`, decided at once
    /// when the counters are in memory; `None` when Redis keeps them, and
    /// `request_allowed` asks it.
    // Not inlined, so that scripts/bench/callgrind.sh can show it on its own.
    #[inline(never)]
    pub fn request_allowed_in_memory(&self, client: Client) -> Option<Result<(), ApiError>> {
        let now = now_ms();
        if self.redis_now(now).is_some() {
            return None;
        }
        let decision = self.0.memory.count(&Key::Requests(client), self.0.limits.per_minute, Count::Take, now);
        Some(decision.map_err(|retry_after_secs| refused("general", retry_after_secs)))
    }

    /// The general budget of one request from `client`.
    pub async fn request_allowed(&self, client: Client) -> Result<(), ApiError> {
        self.count_all("general", &[(Key::Requests(client), self.0.limits.per_minute)], Count::Take).await
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
            (Key::Recovery(client), limits.recovery_per_client),
            (Key::RecoveryTo(email.trim().to_lowercase()), limits.recovery_per_email),
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

fn refused(budget: &'static str, retry_after_secs: u64) -> ApiError {
    metrics::counter!("rate_limit_rejections_total", "budget" => budget).increment(1);
    ApiError::TooManyRequests { retry_after_secs }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are the counters' keys in Redis, which replicas of the
    /// version before share during a deploy: they must not change.
    #[test]
    fn counter_names_are_the_keys_redis_holds() {
        let address = IpAddr::from([203, 0, 113, 7]);
        let user = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let names = [
            (Key::Requests(Client::User(user)), "user:01234567-89ab-cdef-0123-456789abcdef"),
            (Key::Requests(Client::Address(address)), "ip:203.0.113.7"),
            (Key::Failures(address), "fail:203.0.113.7"),
            (Key::AccountFailures(address, "a@example.com".into()), "fail:203.0.113.7:a@example.com"),
            (Key::Recovery(address), "recover:203.0.113.7"),
            (Key::RecoveryTo("a@example.com".into()), "recover-to:a@example.com"),
        ];
        for (key, name) in names {
            assert_eq!(key.to_string(), name);
        }
    }
}
