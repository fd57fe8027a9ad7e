//! Fuzz harnesses for `tollgate-core`, as plain functions: each cargo-fuzz target is one
//! line calling one of [`verify`], [`jwks`] and [`wire`]. Besides "never panics", each
//! checks what it can about the result:
//!
//! - every verification runs through both signature backends (pure Rust and `ring`),
//!   which must agree, and through the split `begin` / `check_signature` / `finish`
//!   path, which must agree with `verify`; an accepted token satisfies the policy;
//! - a decoded snapshot or delta re-encodes to one that decodes the same; a replica
//!   that refuses a message is left unchanged, one that takes it moves forward.
//!
//! The first input byte picks a mode, so that the fuzzer can reach code behind a
//! signature: modes that sign what the input describes with a fixed key.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use p256::ecdsa::signature::Signer;
use serde_json::json;
use tollgate_core::signature::{Ring, RustCrypto, SignatureBackend};
use tollgate_core::wire::{decode_delta, decode_snapshot, encode_delta, encode_snapshot, v1, DenylistSigner, Stamp};
use tollgate_core::{b64, Denylist, EntryKind, Error, Jwk, Jwks, Policy, VerifiedToken, Verifier};

/// The verifier's clock: inside the conformance tokens' validity.
pub const NOW: i64 = 1_763_800_000;
/// The issuer and audience the policy allows (those of the conformance tokens).
pub const ISS: &str = "https://issuer.test";
/// See [`ISS`].
pub const AUD: &str = "https://api.test";
/// `kid` of the harness's own EC key, which signs tokens in [`verify`]'s signing mode.
pub const FUZZ_KID: &str = "fuzz-ec";
const FUZZ_EC_SECRET: [u8; 32] = [0x5a; 32];
const WIRE_SECRET: [u8; 32] = [0x3c; 32];

/// The public keys of `es256/valid/basic` (`ec-a`) and `rs256/valid/2048` (`rsa-2048`)
/// from the shared conformance cases.
pub const CONFORMANCE_JWKS: &str = include_str!("../fixtures/conformance-jwks.json");
/// Those two cases' tokens, one a line: valid at [`NOW`] under [`policy`].
pub const CONFORMANCE_TOKENS: &str = include_str!("../fixtures/conformance-tokens.txt");

/// The harness's EC signing key (kid [`FUZZ_KID`]).
pub fn fuzz_signing_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&FUZZ_EC_SECRET).unwrap_or_else(|_| unreachable!())
}

/// The revocation service's key for [`wire`].
pub fn wire_signer() -> DenylistSigner {
    DenylistSigner::from_secret(&WIRE_SECRET).unwrap_or_else(|_| unreachable!())
}

/// The policy of every harness verifier.
pub fn policy() -> Policy {
    let p = json!({"issuers": [ISS], "audiences": [AUD], "required_claims": ["exp", "sub", "jti"]});
    Policy::from_json(p.to_string().as_bytes()).unwrap_or_else(|e| panic!("harness policy: {e}"))
}

/// The fixed JWKS: the conformance EC and RSA keys plus the harness's EC key.
pub fn jwks_document() -> serde_json::Value {
    let mut doc: serde_json::Value = serde_json::from_str(CONFORMANCE_JWKS).unwrap_or_else(|e| panic!("{e}"));
    let p = fuzz_signing_key().verifying_key().to_sec1_point(false);
    let (x, y) = (p.x().map(|x| b64::encode(x)), p.y().map(|y| b64::encode(y)));
    let key = json!({"kty": "EC", "crv": "P-256", "kid": FUZZ_KID, "alg": "ES256", "x": x, "y": y});
    if let Some(keys) = doc["keys"].as_array_mut() {
        keys.push(key);
    }
    doc
}

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let jwks = Jwks::from_json(jwks_document().to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        Verifier::new(jwks, policy())
    })
}

/// A denylist that revokes one conformance token by `jti`, a session, and a subject.
fn denylist() -> &'static Denylist {
    static D: OnceLock<Denylist> = OnceLock::new();
    D.get_or_init(|| {
        let mut d = Denylist::default();
        d.insert(EntryKind::Jti, None, "p-rs-001", u64::MAX);
        d.insert(EntryKind::Sid, Some(ISS), "s-revoked", u64::MAX);
        d.insert(EntryKind::Subject { before: NOW as u64 }, None, "user-revoked", u64::MAX);
        d
    })
}

/// A compact JWS of `header` and `payload` (bytes used as given), signed ES256 with the
/// harness key.
pub fn signed_token(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    let sig: p256::ecdsa::Signature = fuzz_signing_key().sign(input.as_bytes());
    format!("{input}.{}", b64::encode(&sig.to_bytes()))
}

/// `body` followed by the revocation service's signature over it (what the service's
/// `encode_*` functions do), so that arbitrary bodies reach the wire decoders.
pub fn signed_wire(body: &[u8]) -> Vec<u8> {
    static KEY: OnceLock<p256::ecdsa::SigningKey> = OnceLock::new();
    let key = KEY.get_or_init(|| p256::ecdsa::SigningKey::from_slice(&WIRE_SECRET).unwrap_or_else(|_| unreachable!()));
    let sig: p256::ecdsa::Signature = key.sign(body);
    let mut out = body.to_vec();
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// Splits at the first `0` byte (the second part is empty when there is none).
fn split0(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&x| x == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

/// Token verification. Modes (first byte, mod 3):
/// - 0: the rest is the token (lossy UTF-8);
/// - 1: the rest is `header \0 payload`, signed ES256 by the harness key: gets past the
///   signature to the claim checks and the denylist;
/// - 2: the rest is `header \0 payload \0 signature`, each base64url-encoded: reaches
///   the header parser without the fuzzer having to learn base64.
pub fn verify(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => {
            let (header, payload) = split0(rest);
            signed_token(header, payload)
        }
        _ => {
            let (header, rest) = split0(rest);
            let (payload, sig) = split0(rest);
            format!("{}.{}.{}", b64::encode(header), b64::encode(payload), b64::encode(sig))
        }
    };
    let _ = check_token(verifier(), &token, Some(denylist()));
}

type Outcome = Result<(usize, tollgate_core::Claims), Error>;

fn outcome(r: Result<VerifiedToken, Error>) -> Outcome {
    r.map(|t| (t.key_index, t.claims))
}

/// Verifies `token` every way the core offers and checks that the answers agree.
fn check_token(v: &Verifier, token: &str, denylist: Option<&Denylist>) -> Outcome {
    let pure = outcome(v.verify_with(&RustCrypto, token, NOW, denylist));
    let ring = outcome(v.verify_with(&Ring, token, NOW, denylist));
    assert_eq!(pure, ring, "backends disagree on {token:?}");
    let split = match v.begin(token) {
        Err(e) => Err(e),
        Ok(p) => {
            // ring here: the pure-Rust answer is already known and ring is cheaper.
            let backend: &dyn SignatureBackend = &Ring;
            let by = p.check_signature(backend);
            outcome(p.finish(by, NOW, denylist))
        }
    };
    assert_eq!(pure, split, "begin/finish disagrees with verify on {token:?}");
    if let Ok((_, claims)) = &pure {
        let p = v.policy();
        assert!(claims.exp().is_some_and(|e| (NOW as f64) < e + p.leeway_seconds as f64));
        assert!(claims.nbf().is_none_or(|n| (NOW as f64) >= n - p.leeway_seconds as f64));
        if let Some(issuers) = &p.issuers {
            assert!(claims.iss().is_some_and(|i| issuers.iter().any(|x| x == i)));
        }
        if let Some(audiences) = &p.audiences {
            assert!(claims.audiences().any(|a| audiences.iter().any(|x| x == a)));
        }
        for name in &p.required_claims {
            assert!(claims.get(name).is_some());
        }
        if let Some(d) = denylist {
            assert!(!d.is_revoked(claims.iss(), claims.jti(), claims.sid(), claims.sub(), claims.iat()));
        }
    }
    pure
}

/// JWK and JWKS parsing; a set that parses is then used to verify the conformance
/// tokens (key selection, `alg`/`use`/`key_ops` binding, RSA size limits).
pub fn jwks(data: &[u8]) {
    let _ = Jwk::from_json(data);
    if let Ok(set) = Jwks::from_json(data) {
        assert!(set.keys().len() <= tollgate_core::jwk::MAX_KEYS);
        let v = Verifier::new(set, policy());
        for token in CONFORMANCE_TOKENS.lines() {
            let _ = check_token(&v, token, None);
        }
    }
}

/// The epoch and creation time the wire target's messages carry.
pub const STAMP: Stamp = Stamp { epoch: *b"fuzz-epoch-00001", created: NOW as u64 };

/// A replica at sequence 5 with a few entries, as the wire target's starting point.
pub fn base_replica() -> Denylist {
    let mut d = Denylist::new(*b"fuzz-replica-key");
    d.insert(EntryKind::Jti, None, "j", 100);
    d.insert(EntryKind::Sid, Some(ISS), "s", 200);
    d.insert(EntryKind::Subject { before: 50 }, None, "u", 300);
    d.set_seq(5);
    d
}

/// Snapshot and delta decoding, and applying them to a replica. Mode (first byte): bit
/// 0 clear, the rest is a whole message (its signature must verify); set, the rest is a
/// message body, which the harness signs with the service key. Bit 1 picks the decoder
/// when the message has neither magic.
pub fn wire(data: &[u8]) {
    static SIGNER: OnceLock<DenylistSigner> = OnceLock::new();
    static PK: OnceLock<tollgate_core::jwk::P256Key> = OnceLock::new();
    let signer = SIGNER.get_or_init(wire_signer);
    let pk = PK.get_or_init(|| signer.public_key());
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode & 1 == 0 { rest.to_vec() } else { signed_wire(rest) };

    // Every decode starts with a signature check, the costly part of an execution, so
    // only the decoder the magic bytes name runs (without a known magic, the mode picks),
    // and `apply_*` (decode, then the sequence checks) only runs on what decoded: a
    // message that does not decode is already known to leave a replica alone.
    let (snapshot, delta) = match bytes.get(..4) {
        Some(b"TGS\x02") => (true, false),
        Some(b"TGD\x02") => (false, true),
        Some(b"TGS\x01") => return legacy(&bytes, pk, signer, true),
        Some(b"TGD\x01") => return legacy(&bytes, pk, signer, false),
        _ => (mode & 2 == 0, mode & 2 != 0),
    };
    let base = base_replica();
    if let Some(list) = snapshot.then(|| decode_snapshot(&bytes, pk).ok()).flatten() {
        let again = decode_snapshot(&encode_snapshot(&list, STAMP, signer), pk).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.same_entries(&list), "snapshot does not round-trip");
        let mut r = base.clone();
        match r.apply_snapshot(&bytes, pk) {
            Ok(()) => assert!(r.same_entries(&list) && list.seq() >= base.seq()),
            Err(_) => {
                assert!(r.same_entries(&base) && list.seq() < base.seq(), "a refused snapshot changed the replica")
            }
        }
    }
    if let Some(d) = delta.then(|| decode_delta(&bytes, pk).ok()).flatten() {
        assert!(d.from <= d.to && d.events.windows(2).all(|w| w[0].seq < w[1].seq));
        let again = decode_delta(&encode_delta(&d, signer), pk).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, d, "delta does not round-trip");
        let mut r = base.clone();
        match r.apply_delta(&bytes, pk) {
            Ok(n) => {
                assert!(d.from <= base.seq() && base.seq() <= d.to);
                assert_eq!(r.seq(), d.to);
                assert_eq!(n, d.events.iter().filter(|e| e.seq > base.seq()).count());
                let _ = r.prune(NOW as u64);
            }
            Err(_) => assert!(r.same_entries(&base), "a refused delta changed the replica"),
        }
    }
}

/// A version-1 message (what the service serves old replicas during an upgrade): the
/// version-2 decoders refuse it as an unsupported version and leave a replica alone;
/// the version-1 decoders (kept for that window) re-encode what they accept.
fn legacy(bytes: &[u8], pk: &tollgate_core::jwk::P256Key, signer: &DenylistSigner, snapshot: bool) {
    let base = base_replica();
    let mut r = base.clone();
    let refused = if snapshot { r.apply_snapshot(bytes, pk).err() } else { r.apply_delta(bytes, pk).err() };
    assert_eq!(refused, Some(tollgate_core::WireError::UnsupportedVersion { found: 1 }));
    assert!(r.same_entries(&base));
    if snapshot {
        let _ = v1::decode_snapshot(bytes, pk);
    } else if let Ok(d) = v1::decode_delta(bytes, pk) {
        assert_eq!(v1::decode_delta(&v1::encode_delta(&d, signer), pk).unwrap_or_else(|e| panic!("{e}")), d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed runs through its harness without a panic (the corpus stays
    /// meaningful as the core changes), and the fixtures verify as expected.
    #[test]
    fn corpus_replays() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
        type Harness = fn(&[u8]);
        let targets: [(&str, Harness); 3] = [("verify", verify), ("jwks", jwks), ("wire", wire)];
        for (name, f) in targets {
            let dir = root.join(name);
            let mut n = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
                f(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
                n += 1;
            }
            assert!(n > 0, "no seeds for {name}");
        }
    }

    #[test]
    fn fixtures_verify() {
        for token in CONFORMANCE_TOKENS.lines() {
            assert!(check_token(verifier(), token, None).is_ok(), "{token}");
        }
        let t = signed_token(
            format!(r#"{{"alg":"ES256","kid":"{FUZZ_KID}"}}"#).as_bytes(),
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"s","jti":"j","exp":{}}}"#, NOW + 1).as_bytes(),
        );
        assert!(check_token(verifier(), &t, Some(denylist())).is_ok());
        // The denylist bites after the signature: revoked session.
        let t = signed_token(
            br#"{"alg":"ES256"}"#,
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"s","jti":"j","sid":"s-revoked","exp":{}}}"#, NOW + 1)
                .as_bytes(),
        );
        assert_eq!(
            check_token(verifier(), &t, Some(denylist())).map(|_| ()).map_err(|e| e.reason().as_str()),
            Err("revoked")
        );
    }
}
