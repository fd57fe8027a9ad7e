//! JWK and JWKS (RFC 7517) into typed verifying keys.
//!
//! Keys come only from a JWKS the caller supplies, never from a token's header.
//! A key that cannot be used (unknown `kty`, wrong curve, invalid point, oversized
//! modulus) stays in the set as [`KeyMaterial::Unusable`], so a `kid` naming it is
//! found but never verifies (`unknown_key`).

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::alg::Algorithm;
use crate::b64;
use crate::error::JwksError;
use crate::json;

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Largest number of keys in a JWKS.
pub const MAX_KEYS: usize = 64;
/// Largest RSA modulus accepted, in bits (bounds the cost of one verification).
pub const MAX_RSA_BITS: usize = 8192;

/// One public key with the metadata that binds what it may verify.
#[derive(Debug, Clone)]
pub struct Jwk {
    /// `kid`, when present.
    pub kid: Option<String>,
    /// `alg`, when present: the key verifies only this algorithm.
    pub alg: Option<String>,
    /// `use`, when present: the key verifies only when it is `sig`.
    pub usage: Option<String>,
    /// Whether `key_ops` is absent or includes `verify`.
    pub ops_allow_verify: bool,
    /// The key itself.
    pub material: KeyMaterial,
}

/// The typed key material of a [`Jwk`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KeyMaterial {
    /// An EC P-256 public key (ES256).
    P256(P256Key),
    /// An RSA public key (RS256).
    Rsa(RsaKey),
    /// A key of another type, curve or size, or invalid material: never verifies.
    Unusable(JwksError),
}

/// A validated P-256 public key.
#[derive(Debug, Clone)]
pub struct P256Key {
    pub(crate) key: p256::ecdsa::VerifyingKey,
    /// SEC1 uncompressed point (`0x04 || x || y`), for native backends.
    pub(crate) sec1: [u8; 65],
    /// aws-lc-rs's parsed form, made once here rather than on every check (`None`
    /// if aws-lc refused the point: the key then never verifies with that backend).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) aws: Option<alloc::sync::Arc<aws_lc_rs::signature::ParsedPublicKey>>,
}

/// A validated RSA public key.
#[derive(Debug, Clone)]
pub struct RsaKey {
    pub(crate) key: rsa::PublicKey,
    /// Modulus length in bits.
    pub bits: usize,
    /// Modulus length in bytes: an RS256 signature must have exactly this length.
    pub len: usize,
    /// Big-endian modulus and exponent, without leading zeros, for native backends.
    pub(crate) n: Vec<u8>,
    pub(crate) e: Vec<u8>,
    /// aws-lc-rs's parsed form, as for [`P256Key`].
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) aws: Option<alloc::sync::Arc<aws_lc_rs::signature::ParsedPublicKey>>,
}

impl P256Key {
    /// Builds a key from the affine coordinates; fails for a point not on the curve.
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Result<P256Key, JwksError> {
        if x.len() != 32 || y.len() != 32 {
            return Err(JwksError::InvalidKey);
        }
        let mut sec1 = [0u8; 65];
        sec1[0] = 4;
        sec1[1..33].copy_from_slice(x);
        sec1[33..].copy_from_slice(y);
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| JwksError::InvalidKey)?;
        Ok(P256Key {
            key,
            sec1,
            #[cfg(feature = "aws-lc-rs")]
            aws: aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED, sec1)
                .ok()
                .map(alloc::sync::Arc::new),
        })
    }

    /// The affine x coordinate.
    pub fn x(&self) -> &[u8] {
        &self.sec1[1..33]
    }

    /// The affine y coordinate.
    pub fn y(&self) -> &[u8] {
        &self.sec1[33..]
    }

    /// The SEC1 uncompressed encoding.
    pub fn sec1(&self) -> &[u8; 65] {
        &self.sec1
    }

    /// The public JWK (`alg` ES256, `use` sig), `kid` its RFC 7638 thumbprint.
    pub fn to_jwk(&self) -> Value {
        let (x, y) = (b64::encode(self.x()), b64::encode(self.y()));
        let kid = thumbprint(&alloc::format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#));
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "ES256", "use": "sig", "kid": kid})
    }
}

impl RsaKey {
    /// Builds a key from big-endian modulus and exponent.
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<RsaKey, JwksError> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        if n.is_empty() || e.is_empty() || e.len() > 4 {
            return Err(JwksError::InvalidKey);
        }
        let bits = n.len() * 8 - n[0].leading_zeros() as usize;
        if bits > MAX_RSA_BITS {
            return Err(JwksError::Unsupported);
        }
        // Any size up to the cap: the policy's `min_rsa_bits` is enforced at key choice,
        // so a short key stays in the set (and yields `unknown_key`) rather than failing it.
        let key = rsa::PublicKey::new_with_size_limits(
            rsa::BoxedUint::from_be_slice_vartime(n),
            rsa::BoxedUint::from_be_slice_vartime(e),
            1..=MAX_RSA_BITS,
        )
        .map_err(|_| JwksError::InvalidKey)?;
        Ok(RsaKey {
            key,
            bits,
            len: n.len(),
            n: n.to_vec(),
            e: e.to_vec(),
            // The widest RS256 profile aws-lc has (1024–8192 bits, as `ring`'s): the
            // policy's minimum has been enforced by key choice before any check.
            #[cfg(feature = "aws-lc-rs")]
            aws: aws_lc_rs::signature::RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY)
                .ok()
                .map(alloc::sync::Arc::new),
        })
    }

    /// Big-endian modulus without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// Big-endian public exponent without leading zeros.
    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// The public JWK (`alg` RS256, `use` sig), `kid` its RFC 7638 thumbprint.
    pub fn to_jwk(&self) -> Value {
        let (n, e) = (b64::encode(&self.n), b64::encode(&self.e));
        let kid = thumbprint(&alloc::format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        json!({"kty": "RSA", "n": n, "e": e, "alg": "RS256", "use": "sig", "kid": kid})
    }
}

/// RFC 7638: base64url of the SHA-256 of the key's canonical required members.
fn thumbprint(canonical: &str) -> String {
    b64::encode(&Sha256::digest(canonical.as_bytes()))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

impl Jwk {
    /// Parses one JWK object. Unsupported or invalid key material yields a key that
    /// never verifies; only a malformed `kid`/`alg`/`use`/`kty` fails.
    pub fn from_object(obj: &Map<String, Value>) -> Result<Jwk, JwksError> {
        let kid = opt_str(obj, "kid")?;
        let alg = opt_str(obj, "alg")?;
        let usage = opt_str(obj, "use")?;
        let ops_allow_verify = match obj.get("key_ops") {
            None => true,
            Some(Value::Array(ops)) => ops.iter().any(|o| o.as_str() == Some("verify")),
            Some(_) => return Err(JwksError::Member("key_ops")),
        };
        let kty = opt_str(obj, "kty")?.ok_or(JwksError::Member("kty"))?;
        let material = match parse_material(&kty, obj) {
            Ok(m) => m,
            Err(e) => KeyMaterial::Unusable(e),
        };
        Ok(Jwk { kid, alg, usage, ops_allow_verify, material })
    }

    /// Parses one JWK document.
    pub fn from_json(bytes: &[u8]) -> Result<Jwk, JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let obj = json::parse_object(bytes).ok_or(JwksError::Json)?;
        Jwk::from_object(&obj)
    }

    /// Whether this key may verify a token of `alg` under the given minimum RSA size.
    pub fn fits(&self, alg: Algorithm, min_rsa_bits: usize) -> bool {
        if !self.ops_allow_verify {
            return false;
        }
        if self.usage.as_deref().is_some_and(|u| u != "sig") {
            return false;
        }
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        match (&self.material, alg) {
            (KeyMaterial::P256(_), Algorithm::Es256) => true,
            (KeyMaterial::Rsa(k), Algorithm::Rs256) => k.bits >= min_rsa_bits,
            _ => false,
        }
    }
}

fn parse_material(kty: &str, obj: &Map<String, Value>) -> Result<KeyMaterial, JwksError> {
    match kty {
        "EC" => {
            let crv = opt_str(obj, "crv")?.ok_or(JwksError::Member("crv"))?;
            if crv != "P-256" {
                return Err(JwksError::Unsupported);
            }
            let x = b64_member(obj, "x")?;
            let y = b64_member(obj, "y")?;
            Ok(KeyMaterial::P256(P256Key::from_coordinates(&x, &y)?))
        }
        "RSA" => {
            let n = b64_member(obj, "n")?;
            let e = b64_member(obj, "e")?;
            Ok(KeyMaterial::Rsa(RsaKey::from_components(&n, &e)?))
        }
        _ => Err(JwksError::Unsupported),
    }
}

fn opt_str(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, JwksError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwksError::Member(name)),
    }
}

fn b64_member(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, JwksError> {
    match obj.get(name) {
        Some(Value::String(s)) => b64::decode(s.as_bytes()).map_err(|_| JwksError::Member(name)),
        _ => Err(JwksError::Member(name)),
    }
}

/// A JSON Web Key Set: the keys a verifier trusts.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`). Entries that are not objects, or whose
    /// metadata is malformed, are kept as unusable keys; the set itself must be well-formed.
    pub fn from_json(bytes: &[u8]) -> Result<Jwks, JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let obj = json::parse_object(bytes).ok_or(JwksError::Json)?;
        Jwks::from_object(&obj)
    }

    /// Builds a set from an already-parsed JWKS object.
    pub fn from_object(obj: &Map<String, Value>) -> Result<Jwks, JwksError> {
        let Some(Value::Array(entries)) = obj.get("keys") else {
            return Err(JwksError::NoKeys);
        };
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooLarge);
        }
        let keys = entries
            .iter()
            .map(|entry| match entry {
                Value::Object(o) => Jwk::from_object(o).unwrap_or_else(|e| unusable(o, e)),
                _ => Jwk {
                    kid: None,
                    alg: None,
                    usage: None,
                    ops_allow_verify: false,
                    material: KeyMaterial::Unusable(JwksError::Json),
                },
            })
            .collect();
        Ok(Jwks { keys })
    }

    /// Builds a set from keys.
    pub fn from_keys(keys: Vec<Jwk>) -> Jwks {
        Jwks { keys }
    }

    /// The keys, in document order.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Whether some key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn unusable(o: &Map<String, Value>, e: JwksError) -> Jwk {
    Jwk {
        kid: o.get("kid").and_then(Value::as_str).map(String::from),
        alg: None,
        usage: None,
        ops_allow_verify: false,
        material: KeyMaterial::Unusable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","x":"6cXZzhU_Mm20Gi9eCQXqyZbTfWF5QeUtlaQ7SSLnNlw","y":"AAcfFnYybvrN6QaXSSNRN1swXnICP6k3u9Ur5l1rfVY"}"#;

    #[test]
    fn parses_ec_key_and_binds_alg() {
        let k = Jwk::from_json(EC.as_bytes()).unwrap();
        assert!(matches!(k.material, KeyMaterial::P256(_)));
        assert!(k.fits(Algorithm::Es256, 2048));
        assert!(!k.fits(Algorithm::Rs256, 2048));
    }

    #[test]
    fn exported_jwks_parse_back_with_thumbprint_kids() {
        let ec = Jwk::from_json(EC.as_bytes()).unwrap();
        let KeyMaterial::P256(k) = &ec.material else { panic!("not EC") };
        let jwk = k.to_jwk();
        let back = Jwk::from_object(jwk.as_object().unwrap()).unwrap();
        assert!(back.fits(Algorithm::Es256, 0) && !back.fits(Algorithm::Rs256, 0));
        assert_eq!(jwk["kid"].as_str().unwrap().len(), 43);
        let mut n: Vec<u8> = (0..256u32).map(|i| (i * 7 + 129) as u8).collect();
        n[255] |= 1; // an RSA modulus is odd
        let rsa = RsaKey::from_components(&n, &[1, 0, 1]).unwrap();
        let jwk = rsa.to_jwk();
        let back = Jwk::from_object(jwk.as_object().unwrap()).unwrap();
        assert!(back.fits(Algorithm::Rs256, 2048) && !back.fits(Algorithm::Es256, 0));
        assert_ne!(jwk["kid"], k.to_jwk()["kid"]);
    }

    #[test]
    fn off_curve_point_is_unusable() {
        let bad = EC.replace("AAcf", "AAcg");
        let k = Jwk::from_json(bad.as_bytes()).unwrap();
        assert!(matches!(k.material, KeyMaterial::Unusable(JwksError::InvalidKey)));
        assert!(!k.fits(Algorithm::Es256, 0));
    }

    #[test]
    fn use_alg_and_key_ops_restrict() {
        for extra in [r#""use":"enc""#, r#""alg":"ES384""#, r#""key_ops":["sign"]"#] {
            let doc = EC.replacen('{', &alloc::format!("{{{extra},"), 1);
            let k = Jwk::from_json(doc.as_bytes()).unwrap();
            assert!(!k.fits(Algorithm::Es256, 0), "{extra}");
        }
        let doc = EC.replacen('{', r#"{"use":"sig","alg":"ES256","key_ops":["verify"],"#, 1);
        assert!(Jwk::from_json(doc.as_bytes()).unwrap().fits(Algorithm::Es256, 0));
    }

    #[test]
    fn jwks_keeps_unknown_keys_as_unusable() {
        let doc = alloc::format!(r#"{{"keys":[{EC},{{"kty":"OKP","crv":"Ed25519","kid":"e","x":"AA"}},7]}}"#);
        let s = Jwks::from_json(doc.as_bytes()).unwrap();
        assert_eq!(s.keys().len(), 3);
        assert!(s.has_kid("e"));
        assert!(matches!(s.keys()[1].material, KeyMaterial::Unusable(JwksError::Unsupported)));
    }

    #[test]
    fn malformed_sets_are_typed_errors() {
        assert_eq!(Jwks::from_json(b"[]").unwrap_err(), JwksError::Json);
        assert_eq!(Jwks::from_json(b"{}").unwrap_err(), JwksError::NoKeys);
        assert_eq!(Jwks::from_json(br#"{"keys":{}}"#).unwrap_err(), JwksError::NoKeys);
        assert_eq!(Jwks::from_json(br#"{"keys":[],"keys":[]}"#).unwrap_err(), JwksError::Json);
    }
}
