//! Signing keys: ES256 (P-256) and RS256 (RSA, at least 2048 bits), generated or loaded
//! from PKCS#8 PEM or a private JWK. A key's `kid` is the RFC 7638 thumbprint of its
//! public half, computed by `tollgate-core` (the same code the verifier uses).
//!
//! Signing goes through `p256` / `rsa` (pure Rust, the same crates as the core); with
//! the `ring` feature, through `ring` where it takes the key (P-256; RSA 2048–8192
//! bits), with pure Rust as the fallback. Both produce signatures the core verifies.

use std::fmt;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tollgate_core::b64;
use tollgate_core::jwk::{P256Key, RsaKey};
use tollgate_core::Algorithm;
use zeroize::{Zeroize, Zeroizing};

use crate::error::KeyError;
use crate::random;

/// The smallest RSA modulus this crate signs with, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The RSA modulus [`SigningKey::generate`] makes, in bits.
pub const DEFAULT_RSA_BITS: usize = 2048;
/// The largest RSA modulus the core verifies, in bits.
pub const MAX_RSA_BITS: usize = tollgate_core::jwk::MAX_RSA_BITS;

/// A private signing key with its public JWK. Cheap to clone (shared); its `Debug`
/// shows the algorithm and `kid` only.
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<Inner>,
}

struct Inner {
    material: Material,
    kid: String,
    public_jwk: Value,
    #[cfg(feature = "ring")]
    native: Option<native::Native>,
}

enum Material {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::PrivateKey>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg().name()).field("kid", &self.kid()).finish()
    }
}

impl SigningKey {
    /// Generates a key: P-256 for ES256, a 2048-bit RSA key for RS256.
    pub fn generate(alg: Algorithm) -> Result<SigningKey, KeyError> {
        match alg {
            Algorithm::Es256 => SigningKey::generate_es256(),
            Algorithm::Rs256 => SigningKey::generate_rsa(DEFAULT_RSA_BITS),
            other => Err(KeyError::UnsupportedAlgorithm(other.name().into())),
        }
    }

    /// Generates a P-256 key (ES256).
    pub fn generate_es256() -> Result<SigningKey, KeyError> {
        // Rejection sampling on 32 random bytes: a value ≥ n or zero (probability
        // about 2^-32) is drawn again.
        for _ in 0..64 {
            let mut d = Zeroizing::new([0u8; 32]);
            random::fill(&mut d[..])?;
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&d[..]) {
                return SigningKey::from_material(Material::Es256(k));
            }
        }
        Err(KeyError::Random)
    }

    /// Generates an RSA key (RS256) of `bits` (2048 to 8192; 2048 is what the guides
    /// and most verifiers expect, 3072 for keys that must last past 2030).
    pub fn generate_rsa(bits: usize) -> Result<SigningKey, KeyError> {
        check_rsa_bits(bits)?;
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|_| KeyError::Random)?;
        SigningKey::from_material(Material::Rs256(Box::new(key)))
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), P-256 or RSA.
    /// Text before the PEM block (comments) is ignored.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let start = pem.find("-----BEGIN").ok_or(KeyError::Pkcs8)?;
        let pem = &pem[start..];
        if let Ok(k) = <p256::ecdsa::SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem) {
            return SigningKey::from_material(Material::Es256(k));
        }
        match <rsa::PrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem) {
            Ok(k) => SigningKey::from_material(Material::Rs256(Box::new(k))),
            Err(_) => Err(KeyError::Pkcs8),
        }
    }

    /// Reads a PKCS#8 DER private key, P-256 or RSA.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        if let Ok(k) = <p256::ecdsa::SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(der) {
            return SigningKey::from_material(Material::Es256(k));
        }
        match <rsa::PrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_der(der) {
            Ok(k) => SigningKey::from_material(Material::Rs256(Box::new(k))),
            Err(_) => Err(KeyError::Pkcs8),
        }
    }

    /// Reads a private JWK document (strict JSON: no duplicate members).
    pub fn from_jwk_json(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        match tollgate_core::parse_strict_json(bytes) {
            Some(v) => SigningKey::from_jwk(&v),
            None => Err(KeyError::Jwk("json")),
        }
    }

    /// Reads a private JWK: `{"kty":"EC","crv":"P-256","x","y","d"}` or
    /// `{"kty":"RSA","n","e","d","p","q"}` (`dp`, `dq`, `qi` are recomputed). An `alg`
    /// member, if present, must fit the key; a `kid`, if present, is ignored (the `kid`
    /// is always the thumbprint).
    pub fn from_jwk(jwk: &Value) -> Result<SigningKey, KeyError> {
        let obj = jwk.as_object().ok_or(KeyError::Jwk("json"))?;
        let kty = str_member(obj, "kty")?;
        let alg = match obj.get("alg") {
            None => None,
            Some(Value::String(a)) => Some(a.as_str()),
            Some(_) => return Err(KeyError::Jwk("alg")),
        };
        let key = match kty {
            "EC" => {
                if str_member(obj, "crv")? != "P-256" {
                    return Err(KeyError::Jwk("crv"));
                }
                let d = Zeroizing::new(b64_member(obj, "d")?);
                let k = p256::ecdsa::SigningKey::from_slice(&d).map_err(|_| KeyError::Jwk("d"))?;
                let key = SigningKey::from_material(Material::Es256(k))?;
                let (x, y) = (b64_member(obj, "x")?, b64_member(obj, "y")?);
                if key.public_jwk()["x"] != b64::encode(&x) || key.public_jwk()["y"] != b64::encode(&y) {
                    return Err(KeyError::Mismatch);
                }
                key
            }
            "RSA" => {
                let n = b64_member(obj, "n")?;
                let e = b64_member(obj, "e")?;
                let d = Zeroizing::new(b64_member(obj, "d")?);
                let p = Zeroizing::new(b64_member(obj, "p")?);
                let q = Zeroizing::new(b64_member(obj, "q")?);
                let bits = RsaKey::from_components(&n, &e).map_err(|_| KeyError::Jwk("n"))?.bits;
                check_rsa_bits(bits)?;
                let k = rsa_from_components(&n, &e, &d, &p, &q)?;
                SigningKey::from_material(Material::Rs256(Box::new(k)))?
            }
            _ => return Err(KeyError::Jwk("kty")),
        };
        if alg.is_some_and(|a| a != key.alg().name()) {
            return Err(KeyError::Jwk("alg"));
        }
        Ok(key)
    }

    fn from_material(material: Material) -> Result<SigningKey, KeyError> {
        let public_jwk = match &material {
            Material::Es256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                let b = point.as_bytes();
                P256Key::from_coordinates(&b[1..33], &b[33..65]).map_err(|_| KeyError::Encode)?.to_jwk()
            }
            Material::Rs256(k) => {
                use rsa::traits::PublicKeyParts;
                let pk = RsaKey::from_components(&k.n_bytes(), &k.e_bytes()).map_err(|_| KeyError::Encode)?;
                check_rsa_bits(pk.bits)?;
                pk.to_jwk()
            }
        };
        let kid = public_jwk["kid"].as_str().ok_or(KeyError::Encode)?.to_string();
        #[cfg(feature = "ring")]
        let native = native::Native::new(&material);
        Ok(SigningKey {
            inner: Arc::new(Inner {
                material,
                kid,
                public_jwk,
                #[cfg(feature = "ring")]
                native,
            }),
        })
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        match self.inner.material {
            Material::Es256(_) => Algorithm::Es256,
            Material::Rs256(_) => Algorithm::Rs256,
        }
    }

    /// The `kid`: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The public JWK (`kty`, `crv`/`x`/`y` or `n`/`e`, `alg`, `use: sig`, `kid`), as
    /// published in the JWKS.
    pub fn public_jwk(&self) -> &Value {
        &self.inner.public_jwk
    }

    /// The RSA modulus length in bits (RS256 keys only).
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.inner.material {
            Material::Es256(_) => None,
            Material::Rs256(_) => self.inner.public_jwk["n"]
                .as_str()
                .and_then(|n| b64::decode(n.as_bytes()).ok())
                .and_then(|n| RsaKey::from_components(&n, &[1, 0, 1]).ok())
                .map(|k| k.bits),
        }
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Secret.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let pem = match &self.inner.material {
            Material::Es256(k) => p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(k, p256::pkcs8::LineEnding::LF)
                .map_err(|_| KeyError::Encode)?,
            Material::Rs256(k) => rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(k.as_ref(), rsa::pkcs8::LineEnding::LF)
                .map_err(|_| KeyError::Encode)?,
        };
        Ok(Zeroizing::new(pem.to_string()))
    }

    /// The private JWK (public members, `kid`, and `d`; for RSA also `p`, `q`, `dp`,
    /// `dq`, `qi`). Secret: store it as you would the PEM.
    pub fn to_private_jwk(&self) -> Result<Value, KeyError> {
        let mut jwk = self.inner.public_jwk.clone();
        let obj = jwk.as_object_mut().ok_or(KeyError::Encode)?;
        match &self.inner.material {
            Material::Es256(k) => {
                let mut d = k.to_bytes();
                obj.insert("d".into(), json!(b64::encode(&d)));
                d.zeroize();
            }
            Material::Rs256(k) => {
                use rsa::pkcs1::der::Decode;
                let der = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(k.as_ref()).map_err(|_| KeyError::Encode)?;
                let parts = rsa::pkcs1::RsaPrivateKeyRef::from_der(der.as_bytes()).map_err(|_| KeyError::Encode)?;
                for (name, v) in [
                    ("d", &parts.private_exponent),
                    ("p", &parts.prime1),
                    ("q", &parts.prime2),
                    ("dp", &parts.exponent1),
                    ("dq", &parts.exponent2),
                    ("qi", &parts.coefficient),
                ] {
                    obj.insert(name.into(), json!(b64::encode(v.as_bytes())));
                }
            }
        }
        Ok(jwk)
    }

    /// Signs a JWS signing input (`base64url(header) "." base64url(payload)`): 64-byte
    /// `r || s` for ES256, a PKCS#1 v1.5 SHA-256 signature as long as the modulus for
    /// RS256 (blinded).
    pub fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, KeyError> {
        #[cfg(feature = "ring")]
        if let Some(n) = &self.inner.native {
            return n.sign(signing_input);
        }
        match &self.inner.material {
            Material::Es256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.try_sign(signing_input).map_err(|_| KeyError::Sign)?;
                Ok(sig.to_bytes().to_vec())
            }
            Material::Rs256(k) => {
                let digest = Sha256::digest(signing_input);
                k.sign_with_rng(&mut getrandom::SysRng, rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
                    .map_err(|_| KeyError::Sign)
            }
        }
    }

    /// A compact JWS of `payload` (the JSON claims): protected header
    /// `{"alg","kid","typ"}` (`typ` omitted when `None`), signed with this key. The
    /// [`crate::Issuer`] is the way to make tokens of the profile; this is for tools
    /// and tests that need other shapes (the CLI's `mint`).
    pub fn sign_compact(&self, typ: Option<&str>, payload: &[u8]) -> Result<String, KeyError> {
        let mut header = json!({"alg": self.alg().name(), "kid": self.kid()});
        if let Some(t) = typ {
            header["typ"] = json!(t);
        }
        let mut token = b64::encode(header.to_string().as_bytes());
        token.push('.');
        token.push_str(&b64::encode(payload));
        let sig = self.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64::encode(&sig));
        Ok(token)
    }

    /// Which implementation signs: `"ring"` or `"rust"`.
    pub fn backend(&self) -> &'static str {
        #[cfg(feature = "ring")]
        if self.inner.native.is_some() {
            return "ring";
        }
        "rust"
    }
}

fn check_rsa_bits(bits: usize) -> Result<(), KeyError> {
    if bits < MIN_RSA_BITS {
        Err(KeyError::RsaTooSmall { bits })
    } else if bits > MAX_RSA_BITS {
        Err(KeyError::RsaTooLarge { bits })
    } else {
        Ok(())
    }
}

fn rsa_from_components(n: &[u8], e: &[u8], d: &[u8], p: &[u8], q: &[u8]) -> Result<rsa::PrivateKey, KeyError> {
    use rsa::pkcs1::UintRef;
    let u = |b: &'static str, v: &[u8]| -> Result<Vec<u8>, KeyError> {
        // DER INTEGERs are signed: a leading 0x00 keeps a high first bit positive.
        let v = strip_zeros(v);
        if v.is_empty() {
            return Err(KeyError::Jwk(b));
        }
        Ok(v.to_vec())
    };
    let (n, e) = (u("n", n)?, u("e", e)?);
    let (d, p, q) = (Zeroizing::new(u("d", d)?), Zeroizing::new(u("p", p)?), Zeroizing::new(u("q", q)?));
    // The CRT values are recomputed by the rsa crate; the JWK's are not trusted.
    let one = [1u8];
    fn r<'a>(v: &'a [u8], m: &'static str) -> Result<UintRef<'a>, KeyError> {
        UintRef::new(v).map_err(|_| KeyError::Jwk(m))
    }
    let parts = rsa::pkcs1::RsaPrivateKeyRef {
        modulus: r(&n, "n")?,
        public_exponent: r(&e, "e")?,
        private_exponent: r(&d, "d")?,
        prime1: r(&p, "p")?,
        prime2: r(&q, "q")?,
        exponent1: r(&one, "dp")?,
        exponent2: r(&one, "dq")?,
        coefficient: r(&one, "qi")?,
        other_prime_infos: None,
    };
    rsa::PrivateKey::try_from(parts).map_err(|_| KeyError::Mismatch)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, KeyError> {
    obj.get(name).and_then(Value::as_str).ok_or(KeyError::Jwk(name))
}

fn b64_member(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let s = str_member(obj, name)?;
    b64::decode(s.as_bytes()).map_err(|_| KeyError::Jwk(name))
}

#[cfg(feature = "ring")]
mod native {
    //! `ring` signing, for the keys it takes.

    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
    use zeroize::Zeroize;

    use super::Material;
    use crate::error::KeyError;

    pub(super) struct Native {
        pair: Pair,
        rng: SystemRandom,
    }

    enum Pair {
        Es256(EcdsaKeyPair),
        Rs256(RsaKeyPair),
    }

    impl Native {
        pub(super) fn new(material: &Material) -> Option<Native> {
            let rng = SystemRandom::new();
            let pair = match material {
                Material::Es256(k) => {
                    let mut d = k.to_bytes();
                    let point = k.verifying_key().to_sec1_point(false);
                    let pair = EcdsaKeyPair::from_private_key_and_public_key(
                        &ECDSA_P256_SHA256_FIXED_SIGNING,
                        &d,
                        point.as_bytes(),
                        &rng,
                    );
                    d.zeroize();
                    Pair::Es256(pair.ok()?)
                }
                Material::Rs256(k) => {
                    let der = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(k.as_ref()).ok()?;
                    Pair::Rs256(RsaKeyPair::from_der(der.as_bytes()).ok()?)
                }
            };
            Some(Native { pair, rng })
        }

        pub(super) fn sign(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
            match &self.pair {
                Pair::Es256(p) => Ok(p.sign(&self.rng, input).map_err(|_| KeyError::Sign)?.as_ref().to_vec()),
                Pair::Rs256(p) => {
                    let mut sig = vec![0u8; p.public().modulus_len()];
                    p.sign(&RSA_PKCS1_SHA256, &self.rng, input, &mut sig).map_err(|_| KeyError::Sign)?;
                    Ok(sig)
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tollgate_core::{Jwks, Policy, Verifier};

    /// A fixed 2048-bit RSA key (the core's test fixture), so tests need not generate one.
    pub(crate) const RSA_PEM: &str = include_str!("../../core/tests/fixtures/rs256-test-key.pem");

    /// Whether a token signed by `key` verifies with the core against its public JWK.
    fn core_verifies(key: &SigningKey) -> bool {
        let jwks = Jwks::from_json(json!({"keys": [key.public_jwk()]}).to_string().as_bytes()).unwrap();
        let header = b64::encode(json!({"alg": key.alg().name(), "kid": key.kid()}).to_string().as_bytes());
        let input = format!("{header}.{}", b64::encode(b"{}"));
        let token = format!("{input}.{}", b64::encode(&key.sign(input.as_bytes()).unwrap()));
        let mut policy = Policy::default();
        policy.required_claims = vec![];
        let v = Verifier::new(jwks, policy);
        v.verify(&token, 0, None).is_ok()
    }

    #[test]
    fn es256_generate_sign_and_core_verifies() {
        let k = SigningKey::generate(Algorithm::Es256).unwrap();
        assert_eq!(k.alg(), Algorithm::Es256);
        assert_eq!(k.public_jwk()["kid"], k.kid());
        assert!(k.public_jwk().get("d").is_none());
        assert_eq!(k.sign(b"x").unwrap().len(), 64);
        assert!(core_verifies(&k));
        assert!(format!("{k:?}").contains(k.kid()));
    }

    #[test]
    fn sign_compact_makes_a_jws_the_core_verifies() {
        let k = SigningKey::generate_es256().unwrap();
        let t = k.sign_compact(Some("JWT"), br#"{"sub":"x","exp":10}"#).unwrap();
        let jwks = Jwks::from_json(json!({"keys": [k.public_jwk()]}).to_string().as_bytes()).unwrap();
        let v = Verifier::new(jwks, Policy::default()).verify(&t, 5, None).unwrap();
        assert_eq!((v.header.typ(), v.claims.sub()), (Some("JWT"), Some("x")));
        let t = k.sign_compact(None, b"{}").unwrap();
        let h = b64::decode(t.split('.').next().unwrap().as_bytes()).unwrap();
        assert_eq!(tollgate_core::parse_strict_json(&h).unwrap(), json!({"alg": "ES256", "kid": k.kid()}));
    }

    #[test]
    fn the_backend_is_ring_exactly_when_the_feature_is_on() {
        let want = if cfg!(feature = "ring") { "ring" } else { "rust" };
        assert_eq!(SigningKey::generate_es256().unwrap().backend(), want);
        assert_eq!(SigningKey::from_pkcs8_pem(RSA_PEM).unwrap().backend(), want);
    }

    #[test]
    fn rsa_fixture_loads_signs_and_core_verifies() {
        let k = SigningKey::from_pkcs8_pem(RSA_PEM).unwrap();
        assert_eq!(k.alg(), Algorithm::Rs256);
        assert_eq!(k.rsa_bits(), Some(2048));
        assert_eq!(k.sign(b"x").unwrap().len(), 256);
        assert!(core_verifies(&k));
    }

    #[test]
    fn pem_and_jwk_round_trips_keep_the_kid() {
        for k in [SigningKey::generate_es256().unwrap(), SigningKey::from_pkcs8_pem(RSA_PEM).unwrap()] {
            let pem = k.to_pkcs8_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let again = SigningKey::from_pkcs8_pem(&format!("# a comment\n{}", *pem)).unwrap();
            assert_eq!(again.kid(), k.kid());
            let jwk = k.to_private_jwk().unwrap();
            assert!(jwk.get("d").is_some());
            let from_jwk = SigningKey::from_jwk_json(jwk.to_string().as_bytes()).unwrap();
            assert_eq!(from_jwk.kid(), k.kid());
            assert_eq!(from_jwk.public_jwk(), k.public_jwk());
            assert!(core_verifies(&from_jwk));
        }
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let core = RsaKey::from_components(&b64::decode(n.as_bytes()).unwrap(), &[1, 0, 1]).unwrap();
        assert_eq!(core.to_jwk()["kid"], "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert_eq!(SigningKey::from_pkcs8_pem("nothing").unwrap_err(), KeyError::Pkcs8);
        assert_eq!(
            SigningKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap_err(),
            KeyError::Pkcs8
        );
        assert_eq!(SigningKey::generate_rsa(1024).unwrap_err(), KeyError::RsaTooSmall { bits: 1024 });
        assert_eq!(SigningKey::from_jwk_json(br#"{"kty":"EC","kty":"EC"}"#).unwrap_err(), KeyError::Jwk("json"));
        assert_eq!(SigningKey::from_jwk(&json!({"kty":"OKP"})).unwrap_err(), KeyError::Jwk("kty"));
        let es = SigningKey::generate_es256().unwrap();
        let other = SigningKey::generate_es256().unwrap();
        let mut jwk = es.to_private_jwk().unwrap();
        jwk["x"] = other.public_jwk()["x"].clone();
        assert_eq!(SigningKey::from_jwk(&jwk).unwrap_err(), KeyError::Mismatch);
        let mut jwk = es.to_private_jwk().unwrap();
        jwk["alg"] = json!("RS256");
        assert_eq!(SigningKey::from_jwk(&jwk).unwrap_err(), KeyError::Jwk("alg"));
        let rsa = SigningKey::from_pkcs8_pem(RSA_PEM).unwrap();
        let mut jwk = rsa.to_private_jwk().unwrap();
        jwk["q"] = jwk["p"].clone();
        assert!(SigningKey::from_jwk(&jwk).is_err());
        // No secret in Debug.
        assert!(!format!("{rsa:?}").contains(jwk["d"].as_str().unwrap()));
    }
}
