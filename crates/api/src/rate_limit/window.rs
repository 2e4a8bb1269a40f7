//! The sliding-window counter both stores use: a client's count in the
//! current minute plus its previous minute's count, weighted by how much of
//! that minute still lies within the last sixty seconds. Close to an exact
//! rolling window, at the cost of two counters per client.

pub const WINDOW_MS: u64 = 60_000;

/// Where `now_ms` falls: the window's number and the fraction of it elapsed.
pub fn position(now_ms: u64) -> (u64, f64) {
    (now_ms / WINDOW_MS, (now_ms % WINDOW_MS) as f64 / WINDOW_MS as f64)
}

/// Whether one more request fits. `prev` and `curr` are the counts before
/// this request. (The Redis script applies the same inequality.)
pub fn allows(prev: u64, curr: u64, elapsed: f64, limit: u32) -> bool {
    prev as f64 * (1.0 - elapsed) + curr as f64 + 1.0 <= f64::from(limit)
}

/// Seconds until a request would fit again if the client sent nothing more:
/// first the previous window's weight fades, then the current one's.
pub fn retry_after(prev: u64, curr: u64, elapsed: f64, limit: u32) -> u64 {
    let room = f64::from(limit) - 1.0;
    let remaining_in_window = (1.0 - elapsed) * 60.0;
    let seconds = if (curr as f64) <= room && prev > 0 {
        // Fits once prev * (1 - elapsed') <= room - curr, within this window.
        (60.0 * (1.0 - (room - curr as f64) / prev as f64) - elapsed * 60.0).min(remaining_in_window)
    } else {
        // Only after this window closes, once curr's weight has faded enough.
        remaining_in_window + 60.0 * (1.0 - room / curr.max(1) as f64).max(0.0)
    };
    seconds.ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_current_window_refuses_until_the_count_fades() {
        assert!(allows(0, 9, 0.5, 10));
        assert!(!allows(0, 10, 0.5, 10));
        // Half a minute in: 30 s to the window's end, then ~6 s more for
        // 10 requests' weight to fall below 9.
        assert_eq!(retry_after(0, 10, 0.5, 10), 36);
    }

    #[test]
    fn the_previous_window_weighs_by_overlap() {
        // 10 last minute, a quarter into this one: 7.5 still count.
        assert!(allows(10, 1, 0.25, 10));
        assert!(!allows(10, 2, 0.25, 10));
        let wait = retry_after(10, 2, 0.25, 10);
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(allows(10, 2, 0.25 + wait as f64 / 60.0, 10));
    }
}
