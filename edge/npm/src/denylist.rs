//! `Denylist`: the core denylist for JS — local revocations, and signed snapshots and
//! deltas from the revocation service (signature checked in Rust before anything is
//! read). Exported to JS as the package's `Denylist` class.

use tollgate_core::{EntryKind, Jwk, KeyMaterial};
use wasm_bindgen::prelude::*;

use crate::acceptance::Acceptance;
use crate::error::BindingError;

/// A denylist: `jti`, `sid` and subject-cutoff entries.
#[wasm_bindgen]
#[derive(Debug, Default, Clone)]
pub struct Denylist {
    inner: tollgate_core::Denylist,
}

#[wasm_bindgen]
impl Denylist {
    /// An empty list at sequence 0.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Denylist {
        Denylist::default()
    }

    /// Revokes one token by `jti` until `exp` (seconds since the epoch), optionally
    /// only for tokens of issuer `iss`.
    #[wasm_bindgen(js_name = revokeJti)]
    pub fn revoke_jti(&mut self, jti: &str, exp: f64, iss: Option<String>) -> Result<(), JsValue> {
        self.inner.insert(EntryKind::Jti, iss.as_deref(), jti, time(exp, "exp")?);
        Ok(())
    }

    /// Revokes every token of session `sid` until `exp`.
    #[wasm_bindgen(js_name = revokeSid)]
    pub fn revoke_sid(&mut self, sid: &str, exp: f64, iss: Option<String>) -> Result<(), JsValue> {
        self.inner.insert(EntryKind::Sid, iss.as_deref(), sid, time(exp, "exp")?);
        Ok(())
    }

    /// Revokes every token of subject `sub` issued before `before` (or without `iat`),
    /// until `exp`.
    #[wasm_bindgen(js_name = revokeSubject)]
    pub fn revoke_subject(&mut self, sub: &str, before: f64, exp: f64, iss: Option<String>) -> Result<(), JsValue> {
        let before = time(before, "before")?;
        self.inner.insert(EntryKind::Subject { before }, iss.as_deref(), sub, time(exp, "exp")?);
        Ok(())
    }

    /// Replaces the list with a signed snapshot, checked against the revocation
    /// service's public JWK (an object or JSON text).
    #[wasm_bindgen(js_name = applySnapshot)]
    pub fn apply_snapshot(&mut self, bytes: &[u8], public_jwk: JsValue) -> Result<(), JsValue> {
        let key = service_key(&public_jwk)?;
        self.inner.apply_snapshot(bytes, &key).map_err(BindingError::from)?;
        Ok(())
    }

    /// Applies a signed delta; returns how many events were new.
    #[wasm_bindgen(js_name = applyDelta)]
    pub fn apply_delta(&mut self, bytes: &[u8], public_jwk: JsValue) -> Result<u32, JsValue> {
        let key = service_key(&public_jwk)?;
        let n = self.inner.apply_delta(bytes, &key).map_err(BindingError::from)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Replaces the list with a signed snapshot under a replica's acceptance rules at
    /// `now` (seconds since the epoch): refused when created longer ago than the rules'
    /// bound (`DENYLIST_TOO_OLD`), from another epoch than the mark's
    /// (`DENYLIST_EPOCH`, unless re-bootstrapping) or below the mark
    /// (`DENYLIST_BACKWARDS`); the rules record it when it is applied.
    #[wasm_bindgen(js_name = applySnapshotAccepted)]
    pub fn apply_snapshot_accepted(
        &mut self,
        bytes: &[u8],
        public_jwk: JsValue,
        acceptance: &mut Acceptance,
        now: f64,
    ) -> Result<(), JsValue> {
        let key = service_key(&public_jwk)?;
        let now = time(now, "now")?;
        self.inner.apply_snapshot_accepted(bytes, &key, acceptance.core_mut(), now).map_err(BindingError::from)?;
        Ok(())
    }

    /// Applies a signed delta under a replica's acceptance rules at `now`; returns how
    /// many events were new. Refused as `applySnapshotAccepted` refuses, and when it does
    /// not continue the list (`DENYLIST_GAP`, `DENYLIST_NO_SNAPSHOT`).
    #[wasm_bindgen(js_name = applyDeltaAccepted)]
    pub fn apply_delta_accepted(
        &mut self,
        bytes: &[u8],
        public_jwk: JsValue,
        acceptance: &mut Acceptance,
        now: f64,
    ) -> Result<u32, JsValue> {
        let key = service_key(&public_jwk)?;
        let now = time(now, "now")?;
        let n = self.inner.apply_delta_accepted(bytes, &key, acceptance.core_mut(), now).map_err(BindingError::from)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// `applySnapshotAccepted` for a message the revocation hub stored and serves later:
    /// one signed longer ago than the bound is still applied when it moves the list
    /// forward (history; it does not make the replica fresh), and refused
    /// (`DENYLIST_TOO_OLD`) when it adds nothing. Returns whether it was signed within
    /// the bound: only then has the replica heard from the signer.
    #[wasm_bindgen(js_name = applySnapshotStored)]
    pub fn apply_snapshot_stored(
        &mut self,
        bytes: &[u8],
        public_jwk: JsValue,
        acceptance: &mut Acceptance,
        now: f64,
    ) -> Result<bool, JsValue> {
        let key = service_key(&public_jwk)?;
        let now = time(now, "now")?;
        Ok(self.inner.apply_snapshot_stored(bytes, &key, acceptance.core_mut(), now).map_err(BindingError::from)?)
    }

    /// `applyDeltaAccepted` for a message the hub stored, under `applySnapshotStored`'s
    /// rules (an old heartbeat that adds nothing is `DENYLIST_TOO_OLD`); returns whether
    /// it was signed within the bound.
    #[wasm_bindgen(js_name = applyDeltaStored)]
    pub fn apply_delta_stored(
        &mut self,
        bytes: &[u8],
        public_jwk: JsValue,
        acceptance: &mut Acceptance,
        now: f64,
    ) -> Result<bool, JsValue> {
        let key = service_key(&public_jwk)?;
        let now = time(now, "now")?;
        Ok(self.inner.apply_delta_stored(bytes, &key, acceptance.core_mut(), now).map_err(BindingError::from)?)
    }

    /// Drops entries whose `exp` is before `cutoff`; returns how many.
    pub fn prune(&mut self, cutoff: f64) -> Result<u32, JsValue> {
        let n = self.inner.prune(time(cutoff, "cutoff")?);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The sequence number of the last replicated event applied (0 for a local list).
    #[wasm_bindgen(getter)]
    pub fn seq(&self) -> f64 {
        self.inner.seq() as f64
    }

    /// Number of entries.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        u32::try_from(self.inner.len()).unwrap_or(u32::MAX)
    }
}

impl Denylist {
    /// The core list.
    pub fn core(&self) -> &tollgate_core::Denylist {
        &self.inner
    }

    /// The core list, mutably.
    pub fn core_mut(&mut self) -> &mut tollgate_core::Denylist {
        &mut self.inner
    }
}

/// A time in seconds since the epoch from a JS number: finite and not negative;
/// fractions dropped, values past `u64` saturate.
fn time(v: f64, what: &'static str) -> Result<u64, BindingError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v.floor() as u64)
    } else {
        Err(BindingError::Argument(match what {
            "before" => "before must be a non-negative number of seconds since the epoch",
            "cutoff" => "cutoff must be a non-negative number of seconds since the epoch",
            "now" => "now must be a non-negative number of seconds since the epoch",
            _ => "exp must be a non-negative number of seconds since the epoch",
        }))
    }
}

/// The revocation service's P-256 key from its public JWK (object or JSON text).
fn service_key(jwk: &JsValue) -> Result<tollgate_core::jwk::P256Key, BindingError> {
    let text = match jwk.as_string() {
        Some(s) => s,
        None => js_sys::JSON::stringify(jwk)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or(BindingError::Argument("publicJwk must be a JWK object or JSON text"))?,
    };
    p256_key(&text)
}

/// Parses a P-256 public JWK.
pub(crate) fn p256_key(json: &str) -> Result<tollgate_core::jwk::P256Key, BindingError> {
    match Jwk::from_json(json.as_bytes())?.material {
        KeyMaterial::P256(k) => Ok(k),
        KeyMaterial::Unusable(e) => Err(BindingError::Jwks(e)),
        _ => Err(BindingError::Jwks(tollgate_core::JwksError::Unsupported)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::wire::{self, Delta, DeltaEvent, DenylistSigner, Stamp};
    use tollgate_core::Entry;

    #[test]
    fn snapshot_then_delta_with_the_service_key() {
        let signer = DenylistSigner::from_secret(&[5; 32]).unwrap();
        let jwk = signer.public_jwk().to_string();
        let key = p256_key(&jwk).unwrap();
        let mut service = tollgate_core::Denylist::new([9; 16]);
        service.insert(EntryKind::Sid, None, "s1", 2_000_000_000);
        service.set_seq(3);
        let mut d = Denylist::new();
        d.inner.apply_snapshot(&wire::encode_snapshot(&service, Stamp::default(), &signer), &key).unwrap();
        assert_eq!((d.seq(), d.size()), (3.0, 1));
        let delta = Delta {
            stamp: Stamp::default(),
            from: 3,
            to: 4,
            events: vec![DeltaEvent {
                seq: 4,
                entry: Entry { kind: EntryKind::Jti, iss: None, id: "j".into(), exp: 2_000_000_000 },
            }],
        };
        assert_eq!(d.inner.apply_delta(&wire::encode_delta(&delta, &signer), &key).unwrap(), 1);
        assert!(d.core().contains_jti(None, "j"));
        // Another key's signature is refused, with a stable code.
        let other = DenylistSigner::from_secret(&[6; 32]).unwrap();
        let e = BindingError::from(
            d.inner.apply_snapshot(&wire::encode_snapshot(&service, Stamp::default(), &other), &key).unwrap_err(),
        );
        assert_eq!(e.code(), "DENYLIST_SIGNATURE");
    }

    #[test]
    fn times_and_keys_are_validated() {
        assert_eq!(time(12.7, "exp").unwrap(), 12);
        assert_eq!(time(1e30, "exp").unwrap(), u64::MAX);
        assert!(time(-1.0, "exp").is_err() && time(f64::INFINITY, "before").is_err());
        assert_eq!(p256_key("{}").unwrap_err().code(), "INVALID_JWKS");
        let rsa = r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#;
        assert_eq!(p256_key(rsa).unwrap_err().code(), "INVALID_JWKS");
    }
}
