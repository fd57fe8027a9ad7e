//! Trusted keys: JWKS sources fetched and cached, merged into one [`KeySet`]. The
//! [`KeyStore`] works on its own state only; whoever holds cached verifications follows
//! its [`KeySet::generation`] (see `token_cache.rs`).
//!
//! - **Per isolate**: the merged set lives in the store; each URL source remembers
//!   when its document expires (`Cache-Control: max-age`, default 300 s, `no-store`
//!   and `max-age=0` mean "refetch after 1 s"). An expired source is refreshed in the
//!   background (`ctx.wait_until`); requests keep using the set they have.
//! - **Cache API**: documents are stored in `caches.default` under their URL with
//!   their freshness, so a new isolate in the same location starts without a fetch.
//!   Unknown-`kid` refetches skip it and go to the network.
//! - **Unknown `kid`**: a token naming a `kid` no source has triggers one network
//!   refetch of every URL source, at most once per `TOLLGATE_JWKS_COOLDOWN_SECONDS`
//!   (default 30), so random `kid`s cannot cause a fetch storm.
//! - **Failures** keep the last good document of a source and retry after 10 s.
//! - **In flight**: one fetch per source at a time; a request that needs a source
//!   another request is fetching waits on its own timer and looks again (it never
//!   awaits the other request's I/O, which the runtime forbids), for at most 6 s.
//! - **Changes**: every rebuilt set has a new generation and carries each key's
//!   fingerprint, so a holder of verifications can drop those of keys that are gone.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use sha2::{Digest, Sha256};
use tollgate_core::jwk::MAX_JWKS_BYTES;
use tollgate_core::{Jwk, Jwks, KeyMaterial, Policy, Verifier};
use web_sys::CryptoKey;

use crate::config::{KeySource, Keys};
use crate::error::FetchError;
use crate::platform::{fetch_all, get_request, log, now_ms, sleep};

/// Freshness of a document whose answer has no `max-age`, seconds.
pub const DEFAULT_MAX_AGE: f64 = 300.0;
/// Deadline of one JWKS fetch.
const FETCH_TIMEOUT_MS: u64 = 5_000;
/// Retry delay after a failed fetch.
const RETRY_AFTER_FAILURE_MS: f64 = 10_000.0;
/// How long a request waits for another request's fetch of a source.
const WAIT_FOR_OTHER_MS: f64 = 6_000.0;
/// SHA-256 identity of a verifying key (see [`key_fingerprint`]).
pub type KeyFingerprint = [u8; 32];

/// Same-host redirects a JWKS fetch follows.
const MAX_REDIRECTS: u32 = 3;

/// Header recording when a document entered the Cache API (ms since the epoch).
const FETCHED_AT: &str = "x-tollgate-fetched-at";

/// The merged keys of every source, with what the Worker keeps beside each key.
#[derive(Debug)]
pub struct KeySet {
    /// The verifier over the merged JWKS and the configured policy.
    pub verifier: Verifier,
    meta: Vec<KeyMeta>,
    generation: u64,
}

#[derive(Debug)]
struct KeyMeta {
    fingerprint: KeyFingerprint,
    issuers: Rc<[String]>,
    crypto_key: RefCell<Option<CryptoKey>>,
}

impl KeySet {
    /// Fingerprint of the key at `index`.
    pub fn fingerprint(&self, index: usize) -> KeyFingerprint {
        self.meta.get(index).map_or([0; 32], |m| m.fingerprint)
    }

    /// Whether the key at `index` may vouch for a token with this issuer: every key is
    /// bound to its source's issuers, so a key never verifies another issuer's token.
    pub fn issuer_allowed(&self, index: usize, iss: Option<&str>) -> bool {
        self.meta.get(index).is_some_and(|m| iss.is_some_and(|i| m.issuers.iter().any(|x| x == i)))
    }

    /// The imported WebCrypto key for `index`, if imported already.
    pub fn cached_crypto_key(&self, index: usize) -> Option<CryptoKey> {
        self.meta.get(index).and_then(|m| m.crypto_key.borrow().clone())
    }

    /// Keeps the imported WebCrypto key for `index`.
    pub fn store_crypto_key(&self, index: usize, key: CryptoKey) {
        if let Some(m) = self.meta.get(index) {
            *m.crypto_key.borrow_mut() = Some(key);
        }
    }

    /// Every key's fingerprint.
    pub fn fingerprints(&self) -> HashSet<KeyFingerprint> {
        self.meta.iter().map(|m| m.fingerprint).collect()
    }

    /// Which set of the store this is: 1 for the first, one more for each change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Per-source state.
#[derive(Debug, Default)]
struct Source {
    keys: Option<Vec<Jwk>>,
    expires_ms: f64,
    fetching_since: Option<f64>,
}

/// The key store: the configured sources, what was fetched from each, and the merged
/// set built from them. One per isolate, shared (`Rc`) with the background refreshes
/// it starts; no borrow of its state is held across an `.await`.
#[derive(Debug)]
pub struct KeyStore {
    sources: Vec<(Keys, Rc<[String]>)>,
    policy: Policy,
    kid_cooldown_ms: f64,
    state: RefCell<State>,
}

#[derive(Debug)]
struct State {
    sources: Vec<Source>,
    current: Option<Rc<KeySet>>,
    generation: u64,
    last_kid_refetch_ms: f64,
}

impl KeyStore {
    /// A store for `sources` (inline keys are loaded at once), verifying under `policy`,
    /// refetching for unknown `kid`s at most once per `kid_cooldown_seconds`.
    pub fn new(sources: Vec<KeySource>, policy: Policy, kid_cooldown_seconds: u64) -> KeyStore {
        let state = sources
            .iter()
            .map(|s| match &s.keys {
                Keys::Inline(jwks) => {
                    Source { keys: Some(jwks.keys().to_vec()), expires_ms: f64::INFINITY, fetching_since: None }
                }
                Keys::Url(_) => Source::default(),
            })
            .collect();
        KeyStore {
            sources: sources.into_iter().map(|s| (s.keys, Rc::from(s.issuers))).collect(),
            policy,
            kid_cooldown_ms: kid_cooldown_seconds as f64 * 1000.0,
            state: RefCell::new(State {
                sources: state,
                current: None,
                generation: 0,
                last_kid_refetch_ms: f64::NEG_INFINITY,
            }),
        }
    }

    /// The generation of the current set (0 before the first).
    pub fn generation(&self) -> u64 {
        self.state.borrow().generation
    }

    /// The current set, if one is loaded, without loading anything.
    pub fn loaded(&self) -> Option<Rc<KeySet>> {
        self.state.borrow().current.clone()
    }

    /// Whether a key (by fingerprint) is in the current set: a verification finished
    /// after its key was rotated out must not be kept.
    pub fn is_current_key(&self, fingerprint: &KeyFingerprint) -> bool {
        self.state.borrow().current.as_ref().is_some_and(|c| c.meta.iter().any(|m| &m.fingerprint == fingerprint))
    }

    /// Starts a background refresh (`ctx.wait_until`) of every source whose document
    /// has expired and that nobody is fetching. Cheap; called on every protected
    /// request, including verified-token cache hits, so hot tokens do not keep a stale
    /// key set alive.
    pub fn refresh_expired(self: &Rc<Self>, ctx: &worker::Context) {
        let now = now_ms();
        let expired: Vec<usize> = {
            let mut st = self.state.borrow_mut();
            if st.current.is_none() {
                return; // the first load is done inline by `current`
            }
            let mut out = Vec::new();
            for (i, s) in st.sources.iter_mut().enumerate() {
                let idle = s.fetching_since.is_none_or(|t| now - t > WAIT_FOR_OTHER_MS);
                // Expired documents, and sources that failed so far once their retry time is due.
                if s.expires_ms <= now && idle {
                    s.fetching_since = Some(now);
                    out.push(i);
                }
            }
            out
        };
        if expired.is_empty() {
            return;
        }
        let store = Rc::clone(self);
        ctx.wait_until(async move {
            futures_util::future::join_all(expired.iter().map(|&i| store.refresh_source(i, true))).await;
            store.rebuild();
        });
    }

    /// The key set to verify with. The isolate's first requests load every source
    /// inline (concurrently, sharing the fetches, at most a few seconds); after that,
    /// expired and failed sources are refreshed in the background and requests never
    /// wait for them.
    pub async fn current(self: &Rc<Self>, ctx: &worker::Context) -> Option<Rc<KeySet>> {
        self.refresh_expired(ctx);
        if let Some(set) = self.loaded() {
            return Some(set);
        }
        let missing: Vec<usize> = {
            let st = self.state.borrow();
            (0..st.sources.len()).filter(|&i| st.sources[i].keys.is_none()).collect()
        };
        self.load_sources(&missing, true).await;
        self.rebuild();
        self.loaded()
    }

    /// After a token named an unknown `kid`: refetches every URL source from the
    /// network, unless the cooldown forbids it. Returns whether the set may have changed.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        let now = now_ms();
        {
            let mut st = self.state.borrow_mut();
            if now - st.last_kid_refetch_ms < self.kid_cooldown_ms {
                return false;
            }
            st.last_kid_refetch_ms = now;
        }
        let urls: Vec<usize> = (0..self.sources.len()).filter(|&i| matches!(self.sources[i].0, Keys::Url(_))).collect();
        if urls.is_empty() {
            return false;
        }
        self.load_sources(&urls, false).await;
        self.rebuild();
        true
    }

    /// Fetches the given sources: those no other request is fetching are claimed and
    /// fetched here, concurrently; for the others this request waits (on its own timer)
    /// until they are done or [`WAIT_FOR_OTHER_MS`] has passed.
    async fn load_sources(&self, which: &[usize], use_cache: bool) {
        let start = now_ms();
        let (mine, theirs): (Vec<usize>, Vec<usize>) = {
            let mut st = self.state.borrow_mut();
            let mut mine = Vec::new();
            let mut theirs = Vec::new();
            for &i in which {
                let s = &mut st.sources[i];
                if s.fetching_since.is_some_and(|t| start - t < WAIT_FOR_OTHER_MS) {
                    theirs.push(i);
                } else if use_cache && s.expires_ms > start {
                    // Failed recently (or fresh): not due for another try yet.
                } else {
                    s.fetching_since = Some(start);
                    mine.push(i);
                }
            }
            (mine, theirs)
        };
        futures_util::future::join_all(mine.iter().map(|&i| self.refresh_source(i, use_cache))).await;
        for i in theirs {
            while self.state.borrow().sources[i].fetching_since.is_some() && now_ms() - start < WAIT_FOR_OTHER_MS {
                sleep(5).await;
            }
        }
    }

    /// Fetches one URL source and records the outcome (clears its in-flight flag).
    async fn refresh_source(&self, i: usize, use_cache: bool) {
        let (Keys::Url(url), _) = &self.sources[i] else {
            self.state.borrow_mut().sources[i].fetching_since = None;
            return;
        };
        let result = fetch_jwks(url, use_cache).await;
        let now = now_ms();
        let mut st = self.state.borrow_mut();
        let s = &mut st.sources[i];
        s.fetching_since = None;
        match result {
            Ok((keys, max_age)) => {
                s.keys = Some(keys);
                s.expires_ms = now + max_age * 1000.0;
            }
            Err(e) => {
                s.expires_ms = now + RETRY_AFTER_FAILURE_MS;
                drop(st);
                log(&format!("tollgate: JWKS fetch from {url} failed, keeping the last good set: {e}"));
            }
        }
    }

    /// Merges the sources into a new key set (a new generation) if anything changed,
    /// reusing imported WebCrypto keys.
    fn rebuild(&self) {
        let mut st = self.state.borrow_mut();
        let mut keys = Vec::new();
        let mut meta = Vec::new();
        for ((_, issuers), state) in self.sources.iter().zip(&st.sources) {
            for k in state.keys.iter().flatten() {
                let fingerprint = key_fingerprint(k);
                let reused = st.current.as_ref().and_then(|c| {
                    c.meta.iter().find(|m| m.fingerprint == fingerprint).and_then(|m| m.crypto_key.borrow().clone())
                });
                meta.push(KeyMeta { fingerprint, issuers: Rc::clone(issuers), crypto_key: RefCell::new(reused) });
                keys.push(k.clone());
            }
        }
        let old: Option<Vec<(KeyFingerprint, Rc<[String]>)>> =
            st.current.as_ref().map(|c| c.meta.iter().map(|m| (m.fingerprint, Rc::clone(&m.issuers))).collect());
        let new: Vec<(KeyFingerprint, Rc<[String]>)> =
            meta.iter().map(|m| (m.fingerprint, Rc::clone(&m.issuers))).collect();
        if old.as_ref() == Some(&new) || (old.is_none() && new.is_empty()) {
            return; // unchanged, or nothing loaded yet (requests answer 503 jwks_unavailable)
        }
        st.generation += 1;
        let set = KeySet {
            verifier: Verifier::new(Jwks::from_keys(keys), self.policy.clone()),
            meta,
            generation: st.generation,
        };
        st.current = Some(Rc::new(set));
    }
}

/// A key's identity: `kid`, `alg`, `use` and the key material.
pub fn key_fingerprint(k: &Jwk) -> KeyFingerprint {
    let mut h = Sha256::new();
    for part in [k.kid.as_deref(), k.alg.as_deref(), k.usage.as_deref()] {
        match part {
            Some(p) => {
                h.update([1]);
                h.update((p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0]),
        }
    }
    h.update([u8::from(k.ops_allow_verify)]);
    match &k.material {
        KeyMaterial::P256(p) => {
            h.update(b"P256");
            h.update(p.sec1());
        }
        KeyMaterial::Rsa(r) => {
            h.update(b"RSA");
            h.update((r.modulus().len() as u64).to_le_bytes());
            h.update(r.modulus());
            h.update(r.exponent());
        }
        _ => h.update(b"unusable"),
    }
    h.finalize().into()
}

/// Fetches a JWKS document: from the Cache API when allowed and fresh there, else from
/// the network (then stored in the Cache API when cacheable). Returns the keys and
/// how long they stay fresh, seconds.
async fn fetch_jwks(url: &str, use_cache: bool) -> Result<(Vec<Jwk>, f64), FetchError> {
    if use_cache {
        if let Some(hit) = cache_get(url).await {
            return Ok(hit);
        }
    }
    let mut at = url.to_owned();
    let mut hops = 0;
    let got = loop {
        let req = get_request(&at, &[("accept", "application/json")])?;
        let got = fetch_all(&req, FETCH_TIMEOUT_MS, MAX_JWKS_BYTES).await?;
        if !matches!(got.status, 301 | 302 | 303 | 307 | 308) {
            break got;
        }
        // Redirects are followed only within the same scheme, host and port, a few times.
        let location = got.headers.get("location").ok().flatten().unwrap_or_default();
        let next = resolve(&at, &location).ok_or_else(|| FetchError::Body(format!("redirect to {location:?}")))?;
        if origin_of(&next) != origin_of(&at) || hops == MAX_REDIRECTS {
            return Err(FetchError::Redirect(next));
        }
        hops += 1;
        at = next;
    };
    if got.status != 200 {
        return Err(FetchError::Status(got.status));
    }
    let jwks = Jwks::from_json(&got.body).map_err(|e| FetchError::Body(e.to_string()))?;
    let cache_control = got.headers.get("cache-control").ok().flatten().unwrap_or_default();
    let max_age = freshness_seconds(&cache_control);
    if max_age >= 1.0 {
        cache_put(url, &got.body, max_age).await;
    }
    Ok((jwks.keys().to_vec(), max_age.max(1.0)))
}

/// `scheme://host[:port]` of an absolute URL, lower-cased.
fn origin_of(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find(['/', '?', '#']).map_or(url.len(), |i| after + i);
    url[..end].to_ascii_lowercase()
}

/// `location` resolved against `base`: absolute URLs as they are, `//host/...` with
/// the base's scheme, `/path` on the base's origin; `None` for anything else.
fn resolve(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.starts_with("https://") || location.starts_with("http://") {
        Some(location.to_owned())
    } else if let Some(rest) = location.strip_prefix("//") {
        Some(format!("{}//{rest}", &base[..base.find("//")?]))
    } else if location.starts_with('/') {
        Some(format!("{}{location}", origin_of(base)))
    } else {
        None
    }
}

/// Seconds a document stays fresh under its `Cache-Control` (`no-store`/`no-cache` → 0;
/// `s-maxage` over `max-age`; absent → [`DEFAULT_MAX_AGE`]; at most a day).
pub fn freshness_seconds(cache_control: &str) -> f64 {
    let mut max_age = None;
    let mut s_maxage = None;
    for directive in cache_control.split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return 0.0;
        }
        if let Some(v) = d.strip_prefix("s-maxage=") {
            s_maxage = v.trim_matches('"').parse::<f64>().ok();
        } else if let Some(v) = d.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<f64>().ok();
        }
    }
    s_maxage.or(max_age).unwrap_or(DEFAULT_MAX_AGE).clamp(0.0, 86_400.0)
}

async fn cache_get(url: &str) -> Option<(Vec<Jwk>, f64)> {
    let cache = worker::Cache::default();
    let mut resp = cache.get(url, true).await.ok().flatten()?;
    let fetched_at: f64 = resp.headers().get(FETCHED_AT).ok().flatten()?.parse().ok()?;
    let cc = resp.headers().get("cache-control").ok().flatten().unwrap_or_default();
    let left = fetched_at / 1000.0 + freshness_seconds(&cc) - now_ms() / 1000.0;
    if left < 1.0 {
        return None;
    }
    let body = resp.bytes().await.ok()?;
    let jwks = Jwks::from_json(&body).ok()?;
    Some((jwks.keys().to_vec(), left))
}

async fn cache_put(url: &str, body: &[u8], max_age: f64) {
    let headers = worker::Headers::new();
    let stored = headers
        .set("cache-control", &format!("max-age={}", max_age as u64))
        .and_then(|()| headers.set(FETCHED_AT, &format!("{}", now_ms() as u64)))
        .and_then(|()| headers.set("content-type", "application/json"));
    if stored.is_err() {
        return;
    }
    let Ok(resp) = worker::Response::from_bytes(body.to_vec()) else { return };
    if let Err(e) = worker::Cache::default().put(url, resp.with_headers(headers)).await {
        log(&format!("tollgate: Cache API put for {url} failed: {e}"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(freshness_seconds(""), DEFAULT_MAX_AGE);
        assert_eq!(freshness_seconds("public, max-age=60"), 60.0);
        assert_eq!(freshness_seconds("max-age=60, s-maxage=120"), 120.0);
        assert_eq!(freshness_seconds("Max-Age=7, must-revalidate"), 7.0);
        assert_eq!(freshness_seconds("no-store"), 0.0);
        assert_eq!(freshness_seconds("max-age=99999999"), 86_400.0);
        assert_eq!(freshness_seconds("max-age=junk"), DEFAULT_MAX_AGE);
    }

    #[test]
    fn redirects_resolve_and_keep_their_origin() {
        let base = "http://127.0.0.1:9/a/jwks.json";
        assert_eq!(resolve(base, "/b.json").as_deref(), Some("http://127.0.0.1:9/b.json"));
        assert_eq!(resolve(base, "//evil.test/k").as_deref(), Some("http://evil.test/k"));
        assert_eq!(resolve(base, "https://evil.test/k").as_deref(), Some("https://evil.test/k"));
        assert_eq!(resolve(base, "relative.json"), None);
        assert_eq!(origin_of(base), "http://127.0.0.1:9");
        assert_eq!(origin_of("HTTP://LocalHost:9?x"), "http://localhost:9");
        assert_ne!(origin_of("http://localhost:9/x"), origin_of(base));
    }

    #[test]
    fn fingerprints_follow_kid_and_material() {
        let jwks = Jwks::from_json(crate::testkeys::jwks_json().as_bytes()).unwrap();
        let k = &jwks.keys()[0];
        let mut renamed = k.clone();
        renamed.kid = Some("other".into());
        assert_eq!(key_fingerprint(k), key_fingerprint(&k.clone()));
        assert_ne!(key_fingerprint(k), key_fingerprint(&renamed));
    }
}
