//! Cold-token signatures through the platform's WebCrypto (`crypto.subtle.verify`).
//!
//! The core's [`Pending`] exposes the work (candidate keys, signing input, signature)
//! without doing it; this module does it with WebCrypto and hands back the index of the
//! key that verified. Keys are imported once per key set (ES256 as a raw SEC1 point,
//! RS256 as an RSA JWK) and the `CryptoKey` is kept beside the key.
//!
//! Signature lengths are checked here exactly as the core's pure-Rust path checks them
//! (64 bytes for ES256, the modulus length for RS256), so both backends accept the same
//! inputs. ES256 signatures are the raw `r || s` form WebCrypto expects. If WebCrypto
//! itself fails (an exception, not a `false`), the caller falls back to pure Rust.

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use tollgate_core::{b64, Algorithm, KeyMaterial, Pending};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use crate::entry::JsAwait;
use crate::keys::KeySet;

/// Verifies the pending token's signature with WebCrypto; `Ok(Some(i))` names the key
/// that verified, `Ok(None)` means no candidate did, `Err` means WebCrypto failed.
pub async fn check_signature(pending: &Pending<'_, '_>, set: &KeySet) -> Result<Option<usize>, JsValue> {
    let alg = pending.alg();
    for &i in pending.candidates() {
        let material = &pending.key(i).material;
        // The signature's length is checked as the pure-Rust path checks it.
        let (es256, well_sized) = match (alg, material) {
            (Algorithm::Es256, KeyMaterial::P256(_)) => (true, pending.signature().len() == 64),
            (Algorithm::Rs256, KeyMaterial::Rsa(k)) => (false, pending.signature().len() == k.len),
            _ => continue,
        };
        if !well_sized {
            continue;
        }
        let key = crypto_key(set, i, alg, material).await?;
        let promise = subtle_verify(es256, &key, pending.signature(), pending.signing_input())?;
        if JsAwait::new(promise).await?.as_bool() == Some(true) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn subtle() -> Result<SubtleCrypto, JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
    if crypto.is_undefined() {
        return Err(JsValue::from_str("globalThis.crypto is undefined"));
    }
    Ok(crypto.unchecked_into::<web_sys::Crypto>().subtle())
}

async fn crypto_key(set: &KeySet, index: usize, alg: Algorithm, material: &KeyMaterial) -> Result<CryptoKey, JsValue> {
    if let Some(k) = set.cached_crypto_key(index) {
        return Ok(k);
    }
    let subtle = subtle()?;
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = match material {
        KeyMaterial::P256(k) => {
            let algo = object(&[("name", "ECDSA"), ("namedCurve", "P-256")])?;
            let raw = Uint8Array::from(&k.sec1()[..]);
            subtle.import_key_with_object("raw", &raw, &algo, false, &usages)?
        }
        KeyMaterial::Rsa(k) => {
            let algo = object(&[("name", "RSASSA-PKCS1-v1_5")])?;
            let hash: JsValue = object(&[("name", "SHA-256")])?.into();
            Reflect::set(&algo, &JsValue::from_str("hash"), &hash)?;
            let jwk = object(&[
                ("kty", "RSA"),
                ("n", &b64::encode(k.modulus())),
                ("e", &b64::encode(k.exponent())),
                ("alg", alg.name()),
            ])?;
            subtle.import_key_with_object("jwk", &jwk, &algo, false, &usages)?
        }
        _ => return Err(JsValue::from_str("key cannot verify")),
    };
    let key: CryptoKey = JsFuture::from(promise).await?.unchecked_into();
    set.store_crypto_key(index, key.clone());
    Ok(key)
}

// `crypto.subtle.verify` in one call from wasm: the global `crypto` is looked up at each
// call (a test may patch it), and the algorithm parameters are plain objects made once
// per isolate, which the runtime only reads. A missing `crypto` throws, and the caller
// falls back to pure Rust as for any other WebCrypto failure.
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
const ES256 = { name: 'ECDSA', hash: 'SHA-256' };
const RS256 = { name: 'RSASSA-PKCS1-v1_5' };
export function subtle_verify(es256, key, signature, signingInput) {
  return crypto.subtle.verify(es256 ? ES256 : RS256, key, signature, signingInput);
}
"#)]
extern "C" {
    /// `crypto.subtle.verify` with the ES256 (`es256`) or RS256 parameters.
    #[wasm_bindgen(catch)]
    fn subtle_verify(es256: bool, key: &CryptoKey, signature: &[u8], signing_input: &[u8]) -> Result<Promise, JsValue>;
}

fn object(members: &[(&str, &str)]) -> Result<Object, JsValue> {
    let o = Object::new();
    for (k, v) in members {
        Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(v))?;
    }
    Ok(o)
}
