//! Log mode's per-key rate limit on posted events: a token bucket per API key
//! (`tollgate_core::bucket`, the revocation service's arithmetic), refilling at
//! `TOLLGATE_HUB_KEY_EVENTS_PER_SEC` (default 1000) and holding at most
//! `TOLLGATE_HUB_KEY_BURST_EVENTS` (default 10000). A request of `n` events takes `n`
//! tokens or is refused with 429 `rate_limited` and `Retry-After`.
//!
//! The buckets live in the object's memory, keyed by tenant and key name (statics are
//! shared by every object in an isolate): an object that is evicted or restarted starts
//! with full buckets. The limit protects the object's write rate from one key; it is
//! not an accounting quota.

use std::cell::RefCell;
use std::collections::HashMap;

use tollgate_core::bucket::{Refused, TokenBucket};

use crate::config::ConfigError;

/// Sustained events a second one key may post.
pub const EVENTS_PER_SEC: &str = "TOLLGATE_HUB_KEY_EVENTS_PER_SEC";
/// Events one key may post at once above the sustained rate.
pub const BURST_EVENTS: &str = "TOLLGATE_HUB_KEY_BURST_EVENTS";

/// The configured limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sustained events a second.
    pub rate: u64,
    /// Bucket size, events.
    pub burst: u64,
}

/// The limits from variables (`var` reads one); a value that is not a positive integer
/// is a configuration error, never a silent default.
pub fn limits(var: &dyn Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
    let read = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
        match var(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ConfigError(name, format!("{v:?} is not a positive integer"))),
            },
        }
    };
    Ok(Limits { rate: read(EVENTS_PER_SEC, 1000)?, burst: read(BURST_EVENTS, 10_000)? })
}

thread_local! {
    static BUCKETS: RefCell<HashMap<(String, String), TokenBucket>> = RefCell::new(HashMap::new());
}

/// Charges `n` events to `key` of `tenant` at `now_ms`.
pub fn admit(tenant: &str, key: &str, n: u64, now_ms: u64, l: Limits) -> Result<(), Refused> {
    BUCKETS.with_borrow_mut(|b| {
        b.entry((tenant.to_owned(), key.to_owned()))
            .or_insert_with(|| TokenBucket::full(l.burst, now_ms))
            .take(n, now_ms, l.rate, l.burst)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_refuse_what_is_not_a_positive_integer() {
        assert_eq!(limits(&|_| None).unwrap(), Limits { rate: 1000, burst: 10_000 });
        let set = |v: &'static str| move |n: &str| (n == EVENTS_PER_SEC).then(|| v.to_string());
        assert_eq!(limits(&set("5")).unwrap().rate, 5);
        for bad in ["0", "-1", "fast", ""] {
            assert!(limits(&set(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn buckets_are_per_tenant_and_key() {
        let l = Limits { rate: 1, burst: 3 };
        assert_eq!(admit("t", "a", 3, 0, l), Ok(()));
        assert_eq!(admit("t", "a", 1, 0, l), Err(Refused::RetryAfter(1)));
        assert_eq!(admit("t", "b", 3, 0, l), Ok(()), "another key");
        assert_eq!(admit("u", "a", 3, 0, l), Ok(()), "the same key name in another tenant");
        assert_eq!(admit("t", "a", 4, 0, l), Err(Refused::OverBurst));
        assert_eq!(admit("t", "a", 1, 1000, l), Ok(()));
    }
}
