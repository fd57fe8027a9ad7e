//! A provider's JWKS, cached per its `Cache-Control`, with at most one refetch a
//! minute when a token names a key the cache does not have (Kakao blocks clients that
//! fetch its keys often; an attacker can mint tokens with random `kid`s for free).
//!
//! The cache is one lock per provider, held across a fetch: of a burst of tokens with
//! an unknown `kid`, the first refetches and the others wait for that fetch and use its
//! result, so the burst costs one fetch. Keys are kept for `max-age` (clamped to
//! 1 min – 24 h; 5 min without a header); an expired cache is refetched before use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tollgate_core::Jwks;

use super::SocialError;

/// The shortest interval between two refetches for an unknown `kid`, seconds.
pub const UNKNOWN_KID_REFETCH_SECS: u64 = 60;
const MIN_TTL_SECS: u64 = 60;
const MAX_TTL_SECS: u64 = 24 * 3600;
const DEFAULT_TTL_SECS: u64 = 300;

#[derive(Debug, Default)]
struct State {
    keys: Option<Arc<Jwks>>,
    expires_at: u64,
    last_unknown_kid_refetch: Option<u64>,
    /// Bumped by every successful fetch, so a waiter can tell the set changed.
    generation: u64,
}

/// The cache.
#[derive(Debug, Default)]
pub struct JwksCache {
    state: tokio::sync::Mutex<State>,
    /// JWKS documents fetched (every fetch, successful or not).
    pub fetches: AtomicU64,
}

/// The keys to verify with, and their generation.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The key set.
    pub jwks: Arc<Jwks>,
    /// Which fetch produced it.
    pub generation: u64,
}

impl JwksCache {
    /// The cached keys, fetched first if there are none or they expired.
    pub async fn current(&self, http: &reqwest::Client, uri: &str, now: u64) -> Result<Keys, SocialError> {
        let mut s = self.state.lock().await;
        if let Some(k) = &s.keys {
            if now < s.expires_at {
                return Ok(Keys { jwks: k.clone(), generation: s.generation });
            }
        }
        self.fetch(&mut s, http, uri, now).await
    }

    /// Called when a token's `kid` is not in `seen` (the keys it was checked against):
    /// the keys to try again with — a newer set if another request fetched one
    /// meanwhile, else a refetch if none happened in the last minute — or `None` when
    /// nothing new can be had (the token is refused).
    pub async fn after_unknown_kid(
        &self,
        http: &reqwest::Client,
        uri: &str,
        seen: u64,
        now: u64,
    ) -> Result<Option<Keys>, SocialError> {
        let mut s = self.state.lock().await;
        if s.generation != seen {
            if let Some(k) = &s.keys {
                return Ok(Some(Keys { jwks: k.clone(), generation: s.generation }));
            }
        }
        if s.last_unknown_kid_refetch.is_some_and(|t| now < t + UNKNOWN_KID_REFETCH_SECS) {
            return Ok(None);
        }
        s.last_unknown_kid_refetch = Some(now);
        self.fetch(&mut s, http, uri, now).await.map(Some)
    }

    async fn fetch(&self, s: &mut State, http: &reqwest::Client, uri: &str, now: u64) -> Result<Keys, SocialError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (bytes, cache_control) = super::http_get(http, uri, None).await?;
        let jwks = Jwks::from_json(&bytes)
            .map_err(|e| SocialError::Misconfigured(format!("{uri}: not a usable JWKS ({e})")))?;
        let ttl = cache_control.as_deref().map_or(DEFAULT_TTL_SECS, max_age).clamp(MIN_TTL_SECS, MAX_TTL_SECS);
        let jwks = Arc::new(jwks);
        s.keys = Some(jwks.clone());
        s.expires_at = now + ttl;
        s.generation += 1;
        Ok(Keys { jwks, generation: s.generation })
    }
}

/// The freshness lifetime a `Cache-Control` value grants: `max-age`, 0 for `no-store`
/// / `no-cache` (then clamped up to the minimum), the default when absent.
pub fn max_age(cache_control: &str) -> u64 {
    let mut age = None;
    for d in cache_control.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if d == "no-store" || d == "no-cache" {
            return 0;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse::<u64>().ok().or(Some(0));
        }
    }
    age.unwrap_or(DEFAULT_TTL_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_read() {
        assert_eq!(max_age("public, max-age=21600, must-revalidate, no-transform"), 21600);
        assert_eq!(max_age("max-age=\"90\""), 90);
        assert_eq!(max_age("no-store"), 0);
        assert_eq!(max_age("private"), DEFAULT_TTL_SECS);
        assert_eq!(max_age("max-age=abc"), 0);
    }
}
