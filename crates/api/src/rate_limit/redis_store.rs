//! Counters in Redis, shared by every api replica: one script call (one
//! round trip, atomic) per request.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::window::{self, WINDOW_MS};
use super::{Count, Key};

/// Redis must answer quickly or be bypassed: a slow limiter would slow
/// every request.
const TIMEOUT: Duration = Duration::from_millis(250);

/// The same inequality as `window::allows`, evaluated next to the data so
/// that check and increment are one atomic step. ARGV[4] is the `Count`:
/// `check` only reads, `take` counts when it fits, `record` always counts.
const SCRIPT: &str = r"
local prev = tonumber(redis.call('GET', KEYS[1]) or '0')
local curr = tonumber(redis.call('GET', KEYS[2]) or '0')
local fits = prev * tonumber(ARGV[1]) + curr + 1 <= tonumber(ARGV[2])
if ARGV[4] == 'record' or (ARGV[4] == 'take' and fits) then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if fits or ARGV[4] == 'record' then
  return {prev, curr, 1}
end
return {prev, curr, 0}
";

pub struct RedisStore {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {TIMEOUT:?}")]
    Timeout,
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at start-up does not stop the api.
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(Client::open(url)?, config)?;
        Ok(Self { connection, script: Script::new(SCRIPT), prefix: prefix.to_owned() })
    }

    pub async fn count(
        &self,
        key: &Key,
        limit: u32,
        count: Count,
        now_ms: u64,
    ) -> Result<Result<(), u64>, RedisStoreError> {
        let (current, elapsed) = window::position(now_ms);
        // The braces are a hash tag: both windows of a client live on the
        // same Redis Cluster slot, as a multi-key script requires.
        let keys =
            [format!("{}rl:{{{key}}}:{}", self.prefix, current - 1), format!("{}rl:{{{key}}}:{current}", self.prefix)];
        let mut invocation = self.script.prepare_invoke();
        invocation.key(&keys[0]).key(&keys[1]).arg(1.0 - elapsed).arg(limit).arg(2 * WINDOW_MS).arg(count.as_str());
        let mut connection = self.connection.clone();
        let call = invocation.invoke_async::<(u64, u64, u8)>(&mut connection);
        let (prev, curr, allowed) =
            tokio::time::timeout(TIMEOUT * 2, call).await.map_err(|_| RedisStoreError::Timeout)??;
        Ok(if allowed == 1 { Ok(()) } else { Err(window::retry_after(prev, curr, elapsed, limit)) })
    }

    pub async fn ping(&self) -> Result<(), RedisStoreError> {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        tokio::time::timeout(TIMEOUT * 2, ping).await.map_err(|_| RedisStoreError::Timeout)??;
        Ok(())
    }
}
