//! A key set: one current signing key and any number of pending and retiring ones, on
//! the rotation timeline of `docs/tokens.md`.
//!
//! ```text
//!  add(new, t)         t + publication_delay                 stop + longest life signed
//!  │ published ────────┼──── signs ─────────── stop ─────────┼ unpublished (prune)
//!  │ (edges fetch it)  │ (the old key stops signing here)    │ (its last token expired)
//! ```
//!
//! - A key added with [`KeySet::add`] is published at once and becomes the signing key
//!   after the publication delay (default: the JWKS `max-age` plus one minute), so every
//!   edge that honours `Cache-Control` has fetched it before it meets a token it signed.
//! - A key stops signing when a newer key starts; it stays published until
//!   `retire_after` = the time it stopped signing + the longest token life it signed
//!   for, then [`KeySet::prune`] drops it.
//! - Time is a parameter (`now`, seconds since the epoch); nothing here reads a clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::KeyError;
use crate::key::SigningKey;

/// Default `max-age` of the published JWKS, in seconds.
pub const DEFAULT_JWKS_MAX_AGE: u64 = 300;
/// Added to the JWKS `max-age` to make the default publication delay, in seconds.
pub const PUBLICATION_MARGIN: u64 = 60;

/// How a key set publishes and rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    jwks_max_age: u64,
    publication_delay: u64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy::new(Duration::from_secs(DEFAULT_JWKS_MAX_AGE))
    }
}

impl RotationPolicy {
    /// A policy serving the JWKS with `max-age` = `jwks_max_age` (whole seconds) and
    /// a publication delay of that plus one minute.
    pub fn new(jwks_max_age: Duration) -> RotationPolicy {
        let max_age = jwks_max_age.as_secs();
        RotationPolicy { jwks_max_age: max_age, publication_delay: max_age + PUBLICATION_MARGIN }
    }

    /// Sets the publication delay; it may not be shorter than the JWKS `max-age`
    /// ([`KeyError::UnsafeDelay`]): use [`KeySet::add_signing_now`] for an emergency.
    pub fn with_publication_delay(mut self, delay: Duration) -> Result<RotationPolicy, KeyError> {
        if delay.as_secs() < self.jwks_max_age {
            return Err(KeyError::UnsafeDelay);
        }
        self.publication_delay = delay.as_secs();
        Ok(self)
    }

    /// The JWKS `max-age`, seconds.
    pub fn jwks_max_age(&self) -> u64 {
        self.jwks_max_age
    }

    /// The publication delay, seconds.
    pub fn publication_delay(&self) -> u64 {
        self.publication_delay
    }
}

/// Where a key is on its timeline at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// The signing key.
    Current,
    /// No longer signing, still published: tokens it signed may still be valid.
    Retiring,
    /// Neither signing nor published; [`KeySet::prune`] drops it.
    Retired,
}

/// One key's timeline, as [`KeySet::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The key's `kid`.
    pub kid: String,
    /// Its algorithm name.
    pub alg: &'static str,
    /// Its state at the time asked.
    pub state: KeyState,
    /// When it was published.
    pub published_at: u64,
    /// When it starts (or started) signing.
    pub signs_from: u64,
    /// When it stops (or stopped) signing, once a newer key is scheduled.
    pub stops_signing: Option<u64>,
    /// When it leaves the JWKS, once it is scheduled to stop signing.
    pub retire_after: Option<u64>,
    /// The longest token life (seconds) it has signed for so far.
    pub longest_life: u64,
}

/// The JWKS document to publish, with the `Cache-Control` to serve it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksDocument {
    /// `{"keys":[…]}`: public JWKs only.
    pub body: String,
    /// `public, max-age=N`.
    pub cache_control: String,
    /// The `max-age`, seconds.
    pub max_age: u64,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: SigningKey,
    published_at: u64,
    signs_from: u64,
    /// Insertion order, to break ties of `signs_from` (the later key wins).
    order: u64,
    longest_life: AtomicU64,
    /// `base64url(header)` for the header `typ`s the issuer uses, computed once (every
    /// token this key signs with one `typ` has the same header).
    headers: Vec<(&'static str, String)>,
}

impl Entry {
    /// Records that a token of `life` seconds was signed.
    pub(crate) fn signed_for(&self, life: u64) {
        self.longest_life.fetch_max(life, Ordering::SeqCst);
    }

    /// The encoded protected header `{"alg","typ","kid"}` for `typ`.
    pub(crate) fn encoded_header(&self, typ: &str) -> String {
        match self.headers.iter().find(|(t, _)| *t == typ) {
            Some((_, h)) => h.clone(),
            None => encode_header(&self.key, typ),
        }
    }
}

/// The header `typ`s whose encoded headers are kept per key.
const HEADER_TYPS: [&str; 3] = ["JWT", "at+jwt", "refresh+jwt"];

fn encode_header(key: &SigningKey, typ: &str) -> String {
    let header = json!({"alg": key.alg().name(), "typ": typ, "kid": key.kid()}).to_string();
    tollgate_core::b64::encode(header.as_bytes())
}

/// Signing keys on a rotation timeline. See the module documentation.
#[derive(Debug)]
pub struct KeySet {
    entries: Vec<Entry>,
    policy: RotationPolicy,
    next_order: u64,
}

impl KeySet {
    /// A set whose first key signs from `now`, with the default [`RotationPolicy`].
    pub fn new(first: SigningKey, now: u64) -> KeySet {
        KeySet::with_policy(first, now, RotationPolicy::default())
    }

    /// A set whose first key signs from `now`.
    pub fn with_policy(first: SigningKey, now: u64, policy: RotationPolicy) -> KeySet {
        let mut set = KeySet { entries: Vec::new(), policy, next_order: 0 };
        set.push(first, now, now, 0);
        set
    }

    fn push(&mut self, key: SigningKey, published_at: u64, signs_from: u64, longest_life: u64) {
        self.entries.push(Entry {
            published_at,
            signs_from,
            order: self.next_order,
            longest_life: AtomicU64::new(longest_life),
            headers: HEADER_TYPS.iter().map(|t| (*t, encode_header(&key, t))).collect(),
            key,
        });
        self.next_order += 1;
    }

    /// The policy.
    pub fn policy(&self) -> RotationPolicy {
        self.policy
    }

    /// Rotation: publishes `key` now; it becomes the signing key at `now` + the
    /// publication delay (returned). The key signing until then stops at that time.
    pub fn add(&mut self, key: SigningKey, now: u64) -> Result<u64, KeyError> {
        self.check_new(&key)?;
        let signs_from = now.saturating_add(self.policy.publication_delay);
        self.push(key, now, signs_from, 0);
        Ok(signs_from)
    }

    /// Emergency rotation (the current key leaked): `key` signs from `now`. Edges that
    /// cached the JWKS meet a `kid` they do not know and refetch it (the Worker does so
    /// at most once per cooldown), so some requests may be refused until then. Pair it
    /// with [`KeySet::remove`] of the leaked key.
    pub fn add_signing_now(&mut self, key: SigningKey, now: u64) -> Result<(), KeyError> {
        self.check_new(&key)?;
        self.push(key, now, now, 0);
        Ok(())
    }

    fn check_new(&self, key: &SigningKey) -> Result<(), KeyError> {
        if self.entries.iter().any(|e| e.key.kid() == key.kid()) {
            return Err(KeyError::DuplicateKid(key.kid().to_string()));
        }
        Ok(())
    }

    /// Removes a key at once (unpublished and never signing again): for a key that
    /// leaked. Tokens it signed stop verifying once edges refetch the JWKS.
    pub fn remove(&mut self, kid: &str) -> Result<SigningKey, KeyError> {
        let i = self.entries.iter().position(|e| e.key.kid() == kid).ok_or(KeyError::UnknownKid(kid.into()))?;
        Ok(self.entries.remove(i).key)
    }

    /// When `e` stops signing: when the next key on the timeline (by `signs_from`,
    /// ties by insertion) starts.
    fn stops_signing(&self, e: &Entry) -> Option<u64> {
        let at = (e.signs_from, e.order);
        self.entries.iter().filter(|x| (x.signs_from, x.order) > at).map(|x| x.signs_from).min()
    }

    /// The entry signing at `now`: the latest to start at or before `now`.
    pub(crate) fn signing_entry(&self, now: u64) -> Option<&Entry> {
        self.entries.iter().filter(|e| e.signs_from <= now).max_by_key(|e| (e.signs_from, e.order))
    }

    /// The key signing at `now`, if any.
    pub fn signing_key(&self, now: u64) -> Option<&SigningKey> {
        self.signing_entry(now).map(|e| &e.key)
    }

    fn state(&self, e: &Entry, now: u64) -> KeyState {
        let current = self.signing_entry(now).is_some_and(|c| std::ptr::eq(c, e));
        if current {
            return KeyState::Current;
        }
        if now < e.published_at {
            return KeyState::Retired;
        }
        if now < e.signs_from {
            return KeyState::Pending;
        }
        match self.stops_signing(e) {
            Some(stop) if now < stop.saturating_add(e.longest_life.load(Ordering::SeqCst)) => KeyState::Retiring,
            _ => KeyState::Retired,
        }
    }

    /// Every key's timeline at `now`, in the order they were added.
    pub fn status(&self, now: u64) -> Vec<KeyStatus> {
        self.entries
            .iter()
            .map(|e| {
                let stops = self.stops_signing(e);
                let life = e.longest_life.load(Ordering::SeqCst);
                KeyStatus {
                    kid: e.key.kid().to_string(),
                    alg: e.key.alg().name(),
                    state: self.state(e, now),
                    published_at: e.published_at,
                    signs_from: e.signs_from,
                    stops_signing: stops,
                    retire_after: stops.map(|s| s.saturating_add(life)),
                    longest_life: life,
                }
            })
            .collect()
    }

    /// The keys to publish at `now` (pending, current and retiring), in the order
    /// they were added.
    pub fn published(&self, now: u64) -> Vec<&SigningKey> {
        self.entries
            .iter()
            .filter(|e| matches!(self.state(e, now), KeyState::Pending | KeyState::Current | KeyState::Retiring))
            .map(|e| &e.key)
            .collect()
    }

    /// Whether `kid` is published at `now`.
    pub fn is_published(&self, kid: &str, now: u64) -> bool {
        self.published(now).iter().any(|k| k.kid() == kid)
    }

    /// The JWKS to publish at `now`, with its `Cache-Control`.
    pub fn jwks(&self, now: u64) -> JwksDocument {
        let keys: Vec<&Value> = self.published(now).into_iter().map(SigningKey::public_jwk).collect();
        JwksDocument {
            body: json!({ "keys": keys }).to_string(),
            cache_control: format!("public, max-age={}", self.policy.jwks_max_age),
            max_age: self.policy.jwks_max_age,
        }
    }

    /// The public keys published at `now`, as a `tollgate-core` key set (for verifying
    /// tokens this set signed).
    pub fn verifying_jwks(&self, now: u64) -> tollgate_core::Jwks {
        let keys = self
            .published(now)
            .into_iter()
            .filter_map(|k| k.public_jwk().as_object().and_then(|o| tollgate_core::Jwk::from_object(o).ok()))
            .collect();
        tollgate_core::Jwks::from_keys(keys)
    }

    /// Drops the keys retired at `now`; returns their `kid`s.
    pub fn prune(&mut self, now: u64) -> Vec<String> {
        let retired: Vec<String> = self
            .entries
            .iter()
            .filter(|e| self.state(e, now) == KeyState::Retired && now >= e.published_at)
            .map(|e| e.key.kid().to_string())
            .collect();
        self.entries.retain(|e| !retired.iter().any(|k| k == e.key.kid()));
        retired
    }

    /// The whole set, private keys included, as JSON, to persist it across restarts
    /// (`version`, the policy, and per key its private JWK and timeline). Secret.
    pub fn export(&self) -> Result<Value, KeyError> {
        let mut keys = Vec::new();
        for e in &self.entries {
            keys.push(json!({
                "jwk": e.key.to_private_jwk()?,
                "published_at": e.published_at,
                "signs_from": e.signs_from,
                "longest_life": e.longest_life.load(Ordering::SeqCst),
            }));
        }
        Ok(json!({
            "version": 1,
            "jwks_max_age": self.policy.jwks_max_age,
            "publication_delay": self.policy.publication_delay,
            "keys": keys,
        }))
    }

    /// Reads what [`KeySet::export`] wrote.
    pub fn import(doc: &Value) -> Result<KeySet, KeyError> {
        let bad = |m: &str| KeyError::Import(m.to_string());
        if doc["version"] != 1 {
            return Err(bad("version: expected 1"));
        }
        let num = |v: &Value, m: &str| v.as_u64().ok_or_else(|| bad(m));
        let max_age = num(&doc["jwks_max_age"], "jwks_max_age")?;
        let policy = RotationPolicy::new(Duration::from_secs(max_age))
            .with_publication_delay(Duration::from_secs(num(&doc["publication_delay"], "publication_delay")?))?;
        let keys =
            doc["keys"].as_array().filter(|k| !k.is_empty()).ok_or_else(|| bad("keys: expected a non-empty array"))?;
        let mut set = KeySet { entries: Vec::new(), policy, next_order: 0 };
        for k in keys {
            let key = SigningKey::from_jwk(&k["jwk"])?;
            set.check_new(&key)?;
            let (p, s) = (num(&k["published_at"], "published_at")?, num(&k["signs_from"], "signs_from")?);
            if s < p {
                return Err(bad("signs_from before published_at"));
            }
            set.push(key, p, s, num(&k["longest_life"], "longest_life")?);
        }
        Ok(set)
    }

    /// The `kid`s of every key in the set, published or not.
    pub fn kids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.key.kid()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::Algorithm;

    fn es() -> SigningKey {
        SigningKey::generate(Algorithm::Es256).unwrap()
    }

    fn states(set: &KeySet, now: u64) -> Vec<KeyState> {
        set.status(now).into_iter().map(|s| s.state).collect()
    }

    #[test]
    fn the_rotation_timeline() {
        use KeyState::*;
        let t0 = 1_000_000;
        let (a, b) = (es(), es());
        let mut set = KeySet::new(a.clone(), t0);
        assert_eq!(set.policy().publication_delay(), 360);
        assert_eq!(set.signing_key(t0).unwrap().kid(), a.kid());
        assert!(set.signing_key(t0 - 1).is_none());
        // a signs 15-minute tokens.
        set.signing_entry(t0).unwrap().signed_for(900);

        let t1 = t0 + 3600;
        let from = set.add(b.clone(), t1).unwrap();
        assert_eq!(from, t1 + 360);
        // Published at once, a still signs.
        assert_eq!(states(&set, t1), [Current, Pending]);
        assert_eq!(set.signing_key(t1 + 359).unwrap().kid(), a.kid());
        assert!(set.is_published(b.kid(), t1));
        // At the delay b signs; a retires until its last token expired.
        assert_eq!(states(&set, from), [Retiring, Current]);
        assert_eq!(set.signing_key(from).unwrap().kid(), b.kid());
        let status = &set.status(from)[0];
        assert_eq!((status.stops_signing, status.retire_after), (Some(from), Some(from + 900)));
        assert_eq!(states(&set, from + 899), [Retiring, Current]);
        assert!(set.is_published(a.kid(), from + 899));
        assert_eq!(states(&set, from + 900), [Retired, Current]);
        assert!(!set.is_published(a.kid(), from + 900));
        let doc = set.jwks(from + 900);
        assert_eq!(doc.cache_control, "public, max-age=300");
        let body: Value = serde_json::from_str(&doc.body).unwrap();
        assert_eq!(body["keys"].as_array().unwrap().len(), 1);
        assert_eq!(body["keys"][0]["kid"], b.kid());
        assert!(body["keys"][0].get("d").is_none());
        // Prune drops a only once it is retired.
        assert!(set.prune(from + 899).is_empty());
        assert_eq!(set.prune(from + 900), vec![a.kid().to_string()]);
        assert_eq!(set.kids(), [b.kid()]);
    }

    #[test]
    fn a_key_that_never_signed_retires_when_replaced_and_two_pending_keys_queue() {
        use KeyState::*;
        let t0 = 500;
        let (a, b, c) = (es(), es(), es());
        let mut set = KeySet::new(a, t0);
        let fb = set.add(b.clone(), t0 + 10).unwrap();
        let fc = set.add(c.clone(), t0 + 20).unwrap();
        assert_eq!(states(&set, t0 + 20), [Current, Pending, Pending]);
        assert_eq!(set.signing_key(fb).unwrap().kid(), b.kid());
        assert_eq!(set.signing_key(fc).unwrap().kid(), c.kid());
        // b signed nothing: it retires the moment c starts; a signed nothing either.
        assert_eq!(states(&set, fc), [Retired, Retired, Current]);
    }

    #[test]
    fn emergency_rotation_and_removal() {
        let (a, b) = (es(), es());
        let mut set = KeySet::new(a.clone(), 100);
        set.add_signing_now(b.clone(), 200).unwrap();
        assert_eq!(set.signing_key(200).unwrap().kid(), b.kid());
        set.remove(a.kid()).unwrap();
        assert!(!set.is_published(a.kid(), 200));
        assert_eq!(set.remove(a.kid()).unwrap_err(), KeyError::UnknownKid(a.kid().into()));
        set.remove(b.kid()).unwrap();
        assert!(set.signing_key(200).is_none());
    }

    #[test]
    fn duplicates_and_unsafe_delays_are_refused() {
        let a = es();
        let mut set = KeySet::new(a.clone(), 0);
        assert_eq!(set.add(a.clone(), 1).unwrap_err(), KeyError::DuplicateKid(a.kid().into()));
        assert_eq!(
            RotationPolicy::new(Duration::from_secs(300)).with_publication_delay(Duration::from_secs(299)).unwrap_err(),
            KeyError::UnsafeDelay
        );
        let p = RotationPolicy::new(Duration::from_secs(60)).with_publication_delay(Duration::from_secs(600)).unwrap();
        assert_eq!((p.jwks_max_age(), p.publication_delay()), (60, 600));
    }

    #[test]
    fn export_and_import_keep_keys_and_timeline() {
        let (a, b) = (es(), SigningKey::from_pkcs8_pem(crate::key::tests::RSA_PEM).unwrap());
        let mut set = KeySet::new(a.clone(), 10);
        set.signing_entry(10).unwrap().signed_for(900);
        set.add(b.clone(), 20).unwrap();
        let doc = set.export().unwrap();
        let again = KeySet::import(&doc).unwrap();
        assert_eq!(again.status(400), set.status(400));
        assert_eq!(again.signing_key(400).unwrap().kid(), b.kid());
        let mut broken = doc.clone();
        broken["version"] = json!(2);
        assert!(matches!(KeySet::import(&broken), Err(KeyError::Import(_))));
        let mut broken = doc;
        broken["keys"][1]["signs_from"] = json!(1);
        assert!(matches!(KeySet::import(&broken), Err(KeyError::Import(_))));
    }
}
