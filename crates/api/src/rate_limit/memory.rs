//! Per-process counters: the store when Redis is not configured, and the
//! fallback while it is unreachable.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Count, Key, window};

/// Entries older than the previous window are dropped once the map grows
/// past this, so a scan from many addresses cannot grow memory forever.
const PRUNE_ABOVE: usize = 100_000;

#[derive(Default)]
pub struct MemoryStore {
    counters: Mutex<HashMap<Key, Counter>>,
}

#[derive(Clone, Copy)]
struct Counter {
    window: u64,
    prev: u64,
    curr: u64,
}

impl MemoryStore {
    /// Counts `key` as `count` says: `Ok(())` when one more fits, else
    /// `Err(retry_after)`.
    pub fn count(&self, key: &Key, limit: u32, count: Count, now_ms: u64) -> Result<(), u64> {
        let (current, elapsed) = window::position(now_ms);
        let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counters.len() > PRUNE_ABOVE {
            counters.retain(|_, c| c.window + 1 >= current);
        }
        let counter = counters.entry(key.clone()).or_insert(Counter { window: current, prev: 0, curr: 0 });
        if counter.window != current {
            let prev = if counter.window + 1 == current { counter.curr } else { 0 };
            *counter = Counter { window: current, prev, curr: 0 };
        }
        let fits = window::allows(counter.prev, counter.curr, elapsed, limit);
        if count == Count::Record || (count == Count::Take && fits) {
            counter.curr += 1;
        }
        if fits || count == Count::Record {
            Ok(())
        } else {
            Err(window::retry_after(counter.prev, counter.curr, elapsed, limit))
        }
    }
}
