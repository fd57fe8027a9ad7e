//! # tollgate-core
//!
//! A strict, `no_std` ES256/RS256 JWT verifier with a replicated, signed denylist.
//!
//! ```text
//! token ──parse──▶ UnverifiedToken (header only)
//!       ──policy: alg, crit, typ──▶ key choice (JWKS, kid)
//!       ──signature (seam: pure Rust, ring, or WebCrypto)──▶ Claims
//!       ──exp, nbf, iss, aud, required──▶ denylist ──▶ VerifiedToken
//! ```
//!
//! - [`Verifier`] holds a [`Jwks`] and a [`Policy`]; time and the [`Denylist`] are
//!   passed on every call: the core never reads a clock and does no I/O.
//! - Every rejection is an [`Error`] split by phase, with a stable [`Reason`].
//! - [`wire`] is the signed snapshot/delta format the revocation service replicates.
//!
//! Why not `jwt-compact`: its parser accepts padded and non-canonical base64 and
//! duplicate JSON members, it ignores `crit`, treats `exp == now` as valid and has no
//! asynchronous signature seam; wrapping all of that left little of it in use, so the
//! core parses compact JWS itself and calls `p256` and `rsa` directly.

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod alg;
pub mod b64;
pub mod bucket;
pub mod cache;
pub mod claims;
pub mod denylist;
pub mod error;
mod json;
pub mod jwk;
pub mod policy;
pub mod signature;
pub mod token;
pub mod verify;
pub mod wire;

pub use alg::{Algorithm, AlgorithmSet};
pub use cache::TokenCache;
pub use claims::Claims;
pub use denylist::{Denylist, Entry, EntryKind};
pub use error::{Error, JwksError, PolicyError, Reason, WireError};
pub use json::MAX_DEPTH as MAX_JSON_DEPTH;
pub use jwk::{Jwk, Jwks, KeyMaterial};
pub use policy::Policy;
pub use signature::{RustCrypto, SignatureBackend};
pub use token::{Header, UnverifiedToken};
pub use verify::{Pending, VerifiedToken, Verifier};

/// Parses strict JSON (UTF-8 without a BOM, no duplicate member names at any depth, at
/// most [`MAX_JSON_DEPTH`] levels of nesting, finite numbers) into a value.
pub fn parse_strict_json(bytes: &[u8]) -> Option<serde_json::Value> {
    json::parse_value(bytes)
}
