//! The tokens, keys and policy of the verify benchmarks.
//!
//! The keys are the shared conformance corpus's test keys (`es256-a.pem`, kid `ec-a`;
//! `rs256-2048.pem`, kid `rsa-2048`); the claims follow its `es256/valid/basic` case
//! with a `sid` added (so a denylist check hashes all three identifiers) and an `exp`
//! in 2100, so a peer that reads the system clock accepts the same token.

use p256::pkcs8::DecodePrivateKey as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use tollgate_core::{b64, Jwks, Policy, Verifier};

/// The issuer of every fixture token (and the policy's only accepted issuer).
pub const ISSUER: &str = "https://issuer.test";
/// The audience of every fixture token (and the policy's only accepted audience).
pub const AUDIENCE: &str = "https://api.test";
/// The verifier's clock for tollgate (seconds since the epoch).
pub const NOW: i64 = 1_763_800_000;
/// The tokens' `iat`.
pub const IAT: i64 = NOW - 60;
/// The tokens' `exp`: 2100-01-01, far enough for peers that read the system clock.
pub const EXP: i64 = 4_102_444_800;
/// The tokens' `sub`.
pub const SUBJECT: &str = "user-1001";

const ES256_PEM: &str = include_str!("../../../shared/conformance/gen/keys/es256-a.pem");
const RS256_PEM: &str = include_str!("../../../shared/conformance/gen/keys/rs256-2048.pem");

/// The two algorithms measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit key.
    Rs256,
}

impl Alg {
    /// Both, in report order.
    pub const ALL: [Alg; 2] = [Alg::Es256, Alg::Rs256];

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    /// The name used in benchmark ids (`es256`, `rs256`).
    pub fn id(self) -> &'static str {
        match self {
            Alg::Es256 => "es256",
            Alg::Rs256 => "rs256",
        }
    }
}

/// The public key in the raw forms the signature crates take.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// SEC1 uncompressed point, `0x04 || x || y`.
    P256 {
        /// The 65-byte encoding.
        sec1: Vec<u8>,
    },
    /// Big-endian modulus and exponent.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
}

/// One signed token with everything needed to verify it several ways.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Its algorithm.
    pub alg: Alg,
    /// The compact JWS.
    pub token: String,
    /// The public JWK (with `kid`), as in a JWKS.
    pub jwk: serde_json::Value,
    /// The public key, raw.
    pub public: PublicKey,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl Fixture {
    /// The fixture for `alg`.
    pub fn new(alg: Alg) -> Fixture {
        match alg {
            Alg::Es256 => es256(),
            Alg::Rs256 => rs256(),
        }
    }

    /// `base64url(header) . base64url(payload)`: what the signature covers.
    pub fn signing_input(&self) -> &[u8] {
        let end = self.token.rfind('.').expect("a compact JWS has three segments");
        &self.token.as_bytes()[..end]
    }

    /// The JWKS document holding the fixture's key.
    pub fn jwks_json(&self) -> String {
        json!({ "keys": [self.jwk] }).to_string()
    }

    /// A tollgate verifier for this fixture under [`policy`].
    pub fn verifier(&self) -> Verifier {
        let jwks = Jwks::from_json(self.jwks_json().as_bytes()).expect("fixture JWKS parses");
        Verifier::new(jwks, policy())
    }
}

/// The typical policy measured: one issuer, one audience, `exp`, `sub` and `jti`
/// required, default algorithms, leeway 0, 2048-bit RSA minimum.
pub fn policy() -> Policy {
    let mut p = Policy::default();
    p.issuers = Some(vec![ISSUER.into()]);
    p.audiences = Some(vec![AUDIENCE.into()]);
    p.required_claims = vec!["exp".into(), "sub".into(), "jti".into()];
    p
}

fn pem_body(pem: &str) -> &str {
    // The shared key files start with comment lines; the PEM parser wants the block.
    &pem[pem.find("-----BEGIN").expect("a PEM block")..]
}

fn signing_input(alg: Alg, kid: &str) -> String {
    let header = json!({"typ": "JWT", "alg": alg.name(), "kid": kid});
    let claims = json!({
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "iat": IAT,
        "exp": EXP,
        "jti": format!("p-{}-4f1c2a9e7b3d5c60", alg.id()),
        "sid": "s-8b2e61d04a7f9c35",
    });
    format!("{}.{}", b64::encode(header.to_string().as_bytes()), b64::encode(claims.to_string().as_bytes()))
}

fn es256() -> Fixture {
    use p256::ecdsa::signature::Signer as _;
    let secret = p256::SecretKey::from_pkcs8_pem(pem_body(ES256_PEM)).expect("es256-a.pem is PKCS#8 P-256");
    let key = p256::ecdsa::SigningKey::from(&secret);
    let input = signing_input(Alg::Es256, "ec-a");
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    let signature = sig.to_bytes().to_vec();
    let point = key.verifying_key().to_sec1_point(false);
    let sec1 = point.as_bytes().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "ec-a",
        "x": b64::encode(&sec1[1..33]), "y": b64::encode(&sec1[33..65]),
    });
    Fixture {
        alg: Alg::Es256,
        token: format!("{input}.{}", b64::encode(&signature)),
        jwk,
        public: PublicKey::P256 { sec1 },
        signature,
    }
}

fn rs256() -> Fixture {
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::PrivateKey::from_pkcs8_pem(pem_body(RS256_PEM)).expect("rs256-2048.pem is PKCS#8 RSA");
    let input = signing_input(Alg::Rs256, "rsa-2048");
    let digest = Sha256::digest(input.as_bytes());
    let signature = key.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest).expect("RSA signing");
    let n = key.n_bytes().to_vec();
    let e = key.e_bytes().to_vec();
    let jwk = json!({"kty": "RSA", "kid": "rsa-2048", "n": b64::encode(&n), "e": b64::encode(&e)});
    Fixture {
        alg: Alg::Rs256,
        token: format!("{input}.{}", b64::encode(&signature)),
        jwk,
        public: PublicKey::Rsa { n, e },
        signature,
    }
}

/// A signature backend that accepts every signature: with it, a verification measures
/// the pipeline's own cost (parse, key choice, claims, denylist) and nothing else.
pub struct AcceptAll;

impl tollgate_core::SignatureBackend for AcceptAll {
    fn verify_es256(&self, _: &tollgate_core::jwk::P256Key, _: &[u8], _: &[u8; 64]) -> bool {
        true
    }
    fn verify_rs256(&self, _: &tollgate_core::jwk::RsaKey, _: &[u8], _: &[u8]) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_verify_under_the_policy() {
        for alg in Alg::ALL {
            let f = Fixture::new(alg);
            let v = f.verifier().verify_with(&tollgate_core::RustCrypto, &f.token, NOW, None).unwrap();
            assert_eq!(v.claims.sub(), Some(SUBJECT));
            assert_eq!(v.header.alg_name(), alg.name());
        }
    }
}
