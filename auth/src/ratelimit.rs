//! Rate limiting: GCRA (the generic cell rate algorithm) buckets per account, per
//! client network and global, checked and counted together under one lock.
//!
//! Each bucket keeps one number, its *theoretical arrival time* (TAT). With emission
//! interval `T` and burst `b`, a request at `t` conforms when `max(TAT, t) − t ≤ (b−1)·T`;
//! it then moves `TAT` to `max(TAT, t) + T`. A request that does not conform is told
//! how long until it would (`Retry-After`). That is a progressive delay, never a
//! lockout: after a burst, one more attempt is allowed every `T`, so an attacker who
//! hammers a victim's account slows it to one attempt per `T` but cannot shut the
//! victim out, and a guesser gets at most `b + elapsed/T` tries.
//!
//! [`RateLimiter::check`] takes every bucket a request touches (e.g. account, IP,
//! global) and either counts the request in all of them or in none, inside one critical
//! section: parallel guesses cannot slip through between a check and its count, and a
//! request refused by one bucket does not use up the others.
//!
//! Bounds: at most `max_keys` buckets are held (entries whose TAT is in the past are
//! equal to a fresh bucket and are dropped first); when the table is full of live
//! buckets, requests with new keys are refused (fail closed) until some expire.
//! Buckets live in this process: several instances behind a balancer each keep
//! their own, so the effective limits are multiplied by the instance count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// One bucket's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
    /// Milliseconds between further requests (the emission interval `T`).
    pub interval_ms: u64,
}

impl Quota {
    fn tolerance_ms(&self) -> u64 {
        self.interval_ms.saturating_mul(u64::from(self.burst.max(1) - 1))
    }
}

/// What a bucket is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    /// One account (its normalised email), for login attempts.
    Account(String),
    /// One client network (an IPv4 address or an IPv6 /64), per route class.
    Ip(&'static str, String),
    /// Every request of a route class.
    Global(&'static str),
}

impl BucketKey {
    /// The scope name reported in a 429 (`account`, `ip`, `global`).
    pub fn scope(&self) -> &'static str {
        match self {
            BucketKey::Account(_) => "account",
            BucketKey::Ip(..) => "ip",
            BucketKey::Global(_) => "global",
        }
    }
}

/// A refused request: which bucket refused it and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// The scope of the bucket that refused.
    pub scope: &'static str,
    /// How long until the request would conform.
    pub retry_after: Duration,
}

/// GCRA buckets under one lock. See the module documentation.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<BucketKey, u64>>,
    max_keys: usize,
}

impl RateLimiter {
    /// A limiter holding at most `max_keys` buckets.
    pub fn new(max_keys: usize) -> RateLimiter {
        RateLimiter { buckets: Mutex::new(HashMap::new()), max_keys: max_keys.max(16) }
    }

    /// Counts one request at `now_ms` in every bucket of `keys`, or in none and returns
    /// the longest wait among the buckets that refused.
    pub fn check(&self, now_ms: u64, keys: &[(BucketKey, Quota)]) -> Result<(), Limited> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut refused: Option<Limited> = None;
        let mut new_keys = 0usize;
        for (key, quota) in keys {
            let tat = match map.get(key) {
                Some(t) => (*t).max(now_ms),
                None => {
                    new_keys += 1;
                    now_ms
                }
            };
            let ahead = tat - now_ms;
            if ahead > quota.tolerance_ms() {
                let wait = Duration::from_millis(ahead - quota.tolerance_ms());
                if refused.as_ref().is_none_or(|r| r.retry_after < wait) {
                    refused = Some(Limited { scope: key.scope(), retry_after: wait });
                }
            }
        }
        if let Some(r) = refused {
            return Err(r);
        }
        if map.len() + new_keys > self.max_keys {
            map.retain(|_, tat| *tat > now_ms);
            if map.len() + new_keys > self.max_keys {
                return Err(Limited { scope: "global", retry_after: Duration::from_secs(1) });
            }
        }
        for (key, quota) in keys {
            let tat = map.get(key).map_or(now_ms, |t| (*t).max(now_ms));
            map.insert(key.clone(), tat + quota.interval_ms);
        }
        Ok(())
    }

    /// Forgets a bucket (a successful login clears its account's bucket).
    pub fn reset(&self, key: &BucketKey) {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Buckets currently held.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota { burst: 3, interval_ms: 1000 };

    fn acct(s: &str) -> (BucketKey, Quota) {
        (BucketKey::Account(s.into()), Q)
    }

    #[test]
    fn burst_then_one_per_interval() {
        let rl = RateLimiter::new(100);
        for _ in 0..3 {
            assert!(rl.check(10_000, &[acct("a")]).is_ok());
        }
        let e = rl.check(10_000, &[acct("a")]).unwrap_err();
        assert_eq!(e, Limited { scope: "account", retry_after: Duration::from_millis(1000) });
        // 999 ms later still refused; at 1000 ms one more conforms, then refused again.
        assert!(rl.check(10_999, &[acct("a")]).is_err());
        assert!(rl.check(11_000, &[acct("a")]).is_ok());
        assert!(rl.check(11_000, &[acct("a")]).is_err());
        // Another account is unaffected.
        assert!(rl.check(11_000, &[acct("b")]).is_ok());
    }

    #[test]
    fn all_or_nothing() {
        let rl = RateLimiter::new(100);
        let ip = (BucketKey::Ip("login", "10.0.0.1".into()), Quota { burst: 1, interval_ms: 5000 });
        assert!(rl.check(0, &[acct("a"), ip.clone()]).is_ok());
        // The IP bucket refuses: the account bucket must not be charged.
        let e = rl.check(0, &[acct("a"), ip.clone()]).unwrap_err();
        assert_eq!(e.scope, "ip");
        assert_eq!(e.retry_after, Duration::from_millis(5000));
        // Account "a" has used one of three: two more fit.
        assert!(rl.check(0, &[acct("a")]).is_ok());
        assert!(rl.check(0, &[acct("a")]).is_ok());
        assert!(rl.check(0, &[acct("a")]).is_err());
    }

    #[test]
    fn bounded_table_prunes_then_fails_closed() {
        let rl = RateLimiter::new(16);
        for i in 0..16 {
            assert!(rl.check(0, &[acct(&format!("u{i}"))]).is_ok());
        }
        // Full of live buckets: a new key is refused...
        assert_eq!(rl.check(0, &[acct("new")]).unwrap_err().scope, "global");
        // ...but a known key still works, and once the old ones lapse there is room.
        assert!(rl.check(0, &[acct("u1")]).is_ok());
        assert!(rl.check(5_000, &[acct("new")]).is_ok());
        assert_eq!(rl.len(), 1);
    }

    #[test]
    fn reset_clears_a_bucket() {
        let rl = RateLimiter::new(100);
        for _ in 0..3 {
            rl.check(0, &[acct("a")]).unwrap();
        }
        assert!(rl.check(0, &[acct("a")]).is_err());
        rl.reset(&BucketKey::Account("a".into()));
        assert!(rl.check(0, &[acct("a")]).is_ok());
    }

    #[test]
    fn parallel_guesses_cannot_exceed_the_burst() {
        let rl = std::sync::Arc::new(RateLimiter::new(100));
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (rl, ok) = (rl.clone(), ok.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        if rl.check(0, &[acct("victim")]).is_ok() {
                            ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ok.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
