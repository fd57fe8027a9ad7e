//! # tollgate-origin
//!
//! The origin's half of Tollgate: what a service that signs users in needs beside the
//! edge verifier.
//!
//! - [`Issuer`]: ES256/RS256 signing keys ([`SigningKey`]: generated, PKCS#8 PEM, JWK;
//!   `kid` = RFC 7638 thumbprint), an access and a refresh [`KeySet`] each with a
//!   rotation timeline, access and refresh tokens in the shapes of `docs/tokens.md`,
//!   and the JWKS document to publish with its `Cache-Control`.
//!
//! Every token issued verifies with `tollgate-core` under [`Issuer::access_policy`] or
//! [`Issuer::refresh_policy`]. Time comes from a [`Clock`], so tests inject one.

pub mod clock;
pub mod error;
pub mod issuer;
pub mod key;
pub mod keyset;
mod random;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{IssueError, KeyError};
pub use issuer::{random_id, AccessClaims, AccessTyp, Issued, Issuer, IssuerConfig, RefreshClaims, TokenPair};
pub use key::SigningKey;
pub use keyset::{JwksDocument, KeySet, KeyState, KeyStatus, RotationPolicy};
pub use tollgate_core::Algorithm;
