//! Key files for `keygen` and `mint`: PKCS#8 PEM private keys, public JWKS.

use std::path::Path;

use anyhow::{bail, Context, Result};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_core::jwk::{P256Key, RsaKey};

/// A private signing key of either algorithm.
pub(crate) enum PrivateKey {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::RsaPrivateKey>),
}

impl PrivateKey {
    pub(crate) fn generate(alg: &str) -> Result<PrivateKey> {
        let mut rng = rand::rngs::OsRng;
        match alg.to_ascii_lowercase().as_str() {
            "es256" => Ok(PrivateKey::Es256(p256::ecdsa::SigningKey::random(&mut rng))),
            "rs256" => Ok(PrivateKey::Rs256(Box::new(rsa::RsaPrivateKey::new(&mut rng, 2048)?))),
            other => bail!("unknown algorithm {other:?}: use es256 or rs256"),
        }
    }

    /// Reads a PKCS#8 PEM private key (EC P-256 or RSA). Lines before the PEM block
    /// (comments) are ignored.
    pub(crate) fn read(path: &Path) -> Result<PrivateKey> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let start = text.find("-----BEGIN").context("no PEM block in the key file")?;
        let pem = &text[start..];
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Es256(k));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Rs256(Box::new(k)));
        }
        bail!("{} is not a PKCS#8 P-256 or RSA private key", path.display())
    }

    pub(crate) fn to_pem(&self) -> Result<String> {
        let pem = match self {
            PrivateKey::Es256(k) => k.to_pkcs8_pem(LineEnding::LF)?,
            PrivateKey::Rs256(k) => k.to_pkcs8_pem(LineEnding::LF)?,
        };
        Ok(pem.to_string())
    }

    pub(crate) fn alg(&self) -> &'static str {
        match self {
            PrivateKey::Es256(_) => "ES256",
            PrivateKey::Rs256(_) => "RS256",
        }
    }

    /// The public JWK (core's export: `alg`, `use` sig, `kid` = RFC 7638 thumbprint).
    pub(crate) fn public_jwk(&self) -> Result<Value> {
        Ok(match self {
            PrivateKey::Es256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                P256Key::from_coordinates(&p.as_bytes()[1..33], &p.as_bytes()[33..])
                    .map_err(|e| anyhow::anyhow!("public key: {e}"))?
                    .to_jwk()
            }
            PrivateKey::Rs256(k) => RsaKey::from_components(&k.n().to_bytes_be(), &k.e().to_bytes_be())
                .map_err(|e| anyhow::anyhow!("public key: {e}"))?
                .to_jwk(),
        })
    }

    pub(crate) fn kid(&self) -> Result<String> {
        Ok(self.public_jwk()?["kid"].as_str().unwrap_or_default().to_string())
    }

    /// Signs the JWS signing input.
    pub(crate) fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        match self {
            PrivateKey::Es256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.try_sign(input)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::Rs256(k) => {
                let digest = Sha256::digest(input);
                Ok(k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)?)
            }
        }
    }
}
