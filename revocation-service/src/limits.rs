//! Per-key rate limits: a token bucket per API key, on the service's clock.
//!
//! Each key may post `rate` events a second sustained and `burst` at once; a request
//! of `n` events takes `n` tokens or is refused (429 with `Retry-After`: the seconds
//! until enough tokens are back). Buckets exist only for keys that authenticated, so
//! their number is bounded by the key file. The live-entry quota is counted by the
//! fold itself (`state.rs`); this module only holds the buckets.

use std::sync::Mutex;

use hashbrown::HashMap;

use tollgate_core::bucket::{Refused, TokenBucket};

/// The buckets of every key.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Events per second.
    rate: u64,
    /// Bucket size, events.
    burst: u64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl RateLimiter {
    /// Buckets refilling at `rate` events a second, holding at most `burst`.
    pub(crate) fn new(rate: u64, burst: u64) -> RateLimiter {
        RateLimiter { rate: rate.max(1), burst: burst.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `n` tokens from `key`'s bucket at `now_ms`, or says how many seconds until
    /// they would be there (`Err`; `u64::MAX`: more than the burst, never).
    pub(crate) fn take(&self, key: &str, n: u64, now_ms: u64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = buckets.entry_ref(key).or_insert(TokenBucket::full(self.burst, now_ms));
        b.take(n, now_ms, self.rate, self.burst).map_err(|r| match r {
            Refused::RetryAfter(secs) => secs,
            Refused::OverBurst => u64::MAX,
        })
    }

    /// Sustained events per second.
    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// Bucket size, events.
    pub(crate) fn burst(&self) -> u64 {
        self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate_and_hold_at_most_the_burst() {
        let l = RateLimiter::new(10, 20);
        assert_eq!(l.take("a", 20, 0), Ok(()));
        assert_eq!(l.take("a", 1, 0), Err(1));
        assert_eq!(l.take("b", 5, 0), Ok(()), "buckets are per key");
        // 10 events a second: 5 events back after 500 ms.
        assert_eq!(l.take("a", 5, 500), Ok(()));
        assert_eq!(l.take("a", 10, 500), Err(1));
        // A long pause refills to the burst, never beyond.
        assert_eq!(l.take("a", 20, 100_000), Ok(()));
        assert_eq!(l.take("a", 1, 100_000), Err(1));
        assert_eq!(l.take("a", 15, 100_000), Err(2));
        assert_eq!(l.take("a", 21, 200_000), Err(u64::MAX));
    }
}
