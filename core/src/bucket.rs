//! A token bucket: the per-key rate limit the revocation service and the hub's log mode
//! apply to posted events. Pure arithmetic on the caller's clock, so both keep their
//! buckets where their runtime allows (a mutex-guarded map in the service, per-object
//! memory in the hub) and answer the same way.

/// One key's bucket. Tokens are kept in thousandths of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    milli: u64,
    at_ms: u64,
}

/// Why [`TokenBucket::take`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Enough tokens are back after this many seconds (at least 1).
    RetryAfter(u64),
    /// More events than the bucket holds: the request never fits.
    OverBurst,
}

impl TokenBucket {
    /// A full bucket of `burst` events at `now_ms`.
    pub fn full(burst: u64, now_ms: u64) -> TokenBucket {
        TokenBucket { milli: burst.max(1).saturating_mul(1000), at_ms: now_ms }
    }

    /// Takes `n` tokens at `now_ms` from a bucket refilling at `rate` events a second
    /// and holding at most `burst` (both at least 1). A clock that went back refills
    /// nothing.
    pub fn take(&mut self, n: u64, now_ms: u64, rate: u64, burst: u64) -> Result<(), Refused> {
        let (rate, cap) = (rate.max(1), burst.max(1).saturating_mul(1000));
        let elapsed = now_ms.saturating_sub(self.at_ms);
        // rate events/s = rate milli-events/ms.
        self.milli = self.milli.saturating_add(elapsed.saturating_mul(rate)).min(cap);
        self.at_ms = self.at_ms.max(now_ms);
        let need = n.saturating_mul(1000);
        if self.milli >= need {
            self.milli -= need;
            return Ok(());
        }
        if need > cap {
            return Err(Refused::OverBurst);
        }
        let missing_ms = (need - self.milli).div_ceil(rate);
        Err(Refused::RetryAfter(missing_ms.div_ceil(1000).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_and_holds_at_most_the_burst() {
        let mut b = TokenBucket::full(20, 0);
        assert_eq!(b.take(20, 0, 10, 20), Ok(()));
        assert_eq!(b.take(1, 0, 10, 20), Err(Refused::RetryAfter(1)));
        // 10 events a second: 5 back after 500 ms.
        assert_eq!(b.take(5, 500, 10, 20), Ok(()));
        assert_eq!(b.take(10, 500, 10, 20), Err(Refused::RetryAfter(1)));
        // A long pause refills to the burst, never beyond.
        assert_eq!(b.take(20, 100_000, 10, 20), Ok(()));
        assert_eq!(b.take(15, 100_000, 10, 20), Err(Refused::RetryAfter(2)));
        assert_eq!(b.take(21, 200_000, 10, 20), Err(Refused::OverBurst));
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let mut b = TokenBucket::full(1, 10_000);
        assert_eq!(b.take(1, 10_000, 1, 1), Ok(()));
        assert_eq!(b.take(1, 0, 1, 1), Err(Refused::RetryAfter(1)));
        assert_eq!(b.take(1, 11_000, 1, 1), Ok(()));
    }
}
