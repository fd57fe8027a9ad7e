//! Key files for `keygen` and `mint`: PKCS#8 PEM private keys and their public JWKS,
//! through `tollgate-origin`'s [`SigningKey`].

use std::path::Path;

use anyhow::{bail, Context, Result};
use tollgate_origin::{Algorithm, SigningKey};

/// Generates a key: `es256` (P-256) or `rs256` (2048-bit RSA).
pub(crate) fn generate(alg: &str) -> Result<SigningKey> {
    let alg = match alg.to_ascii_lowercase().as_str() {
        "es256" => Algorithm::Es256,
        "rs256" => Algorithm::Rs256,
        other => bail!("unknown algorithm {other:?}: use es256 or rs256"),
    };
    Ok(SigningKey::generate(alg)?)
}

/// Reads a PKCS#8 PEM private key (EC P-256 or RSA). Lines before the PEM block
/// (comments) are ignored.
pub(crate) fn read(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&text)
        .with_context(|| format!("{} is not a PKCS#8 P-256 or RSA private key", path.display()))
}
