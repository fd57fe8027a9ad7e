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
//! - [`RevocationClient`]: the revocation service's API, typed: sessions, rotation
//!   with reuse detection, logout, token and subject revocation, batches; one
//!   idempotency key per logical call, bounded retries with backoff and jitter, a
//!   timeout per attempt and per call, and [`RevocationClient::wait_for_edge`].
//!
//! - [`Refresher`]: the refresh flow in one call: verify the presented refresh token
//!   with the core, rotate it at the service, issue the new pair; or
//!   `ReuseDetected` / `Expired` / `Invalid`.
//!
//! - [`AssertionVerifier`] and [`AssertionLayer`] (axum/tower): the check of the
//!   Worker's `X-Tollgate-Assertion` (`docs/origin-assertion.md`), handing handlers an
//!   [`EdgeIdentity`] taken from the assertion only.
//!
//! Every token issued verifies with `tollgate-core` under [`Issuer::access_policy`] or
//! [`Issuer::refresh_policy`]. Time comes from a [`Clock`], so tests inject one.

pub mod assertion;
pub mod client;
pub mod clock;
pub mod error;
pub mod issuer;
pub mod key;
pub mod keyset;
mod random;
pub mod refresh;

#[cfg(feature = "axum")]
pub use assertion::{AssertionLayer, AssertionService};
pub use assertion::{AssertionVerifier, EdgeAuth, EdgeIdentity};
pub use client::{
    Appended, ClientConfig, Event, EventCall, EventKind, RetryPolicy, RevocationClient, RotateOutcome, Rotation,
    SessionStart, SessionStarted,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    AssertionConfigError, AssertionError, ClientError, IssueError, KeyError, RefreshError, ServiceError,
    ServiceErrorKind,
};
pub use issuer::{random_id, AccessClaims, AccessTyp, Issued, Issuer, IssuerConfig, RefreshClaims, TokenPair};
pub use key::SigningKey;
pub use keyset::{JwksDocument, KeySet, KeyState, KeyStatus, RotationPolicy};
pub use refresh::{InvalidRefresh, PresentedRefresh, RefreshOutcome, Refresher, Rotated};
pub use tollgate_core::Algorithm;
