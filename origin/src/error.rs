//! Every error of the crate, one type per concern: keys, issuing, the revocation client,
//! the refresh flow and the edge assertion. All are `#[non_exhaustive]` with lower-case
//! `Display`; the ones that cross a wire have a stable machine-readable kind.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// A signing key could not be generated, loaded, exported or used, or a key set
/// refused a change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The algorithm is not one this crate signs with (ES256, RS256).
    UnsupportedAlgorithm(String),
    /// An RSA modulus shorter than 2048 bits.
    RsaTooSmall {
        /// The modulus length.
        bits: usize,
    },
    /// An RSA modulus longer than the core verifies (8192 bits).
    RsaTooLarge {
        /// The modulus length.
        bits: usize,
    },
    /// The PEM is not a PKCS#8 P-256 or RSA private key.
    Pkcs8,
    /// The JWK is not a usable private key; names the member at fault.
    Jwk(&'static str),
    /// The private and public halves of a JWK do not belong together.
    Mismatch,
    /// The operating system's random number generator failed.
    Random,
    /// The signature could not be made.
    Sign,
    /// Encoding the key failed.
    Encode,
    /// A key with this `kid` is already in the set.
    DuplicateKid(String),
    /// The same key is in the access and the refresh key set; they must differ.
    SharedKey(String),
    /// The publication delay is shorter than the JWKS `max-age`: edges could meet a
    /// token signed with a key they have not fetched yet.
    UnsafeDelay,
    /// No key with this `kid` in the set.
    UnknownKid(String),
    /// An exported key set could not be read; names what is wrong.
    Import(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm {a:?}: use ES256 or RS256"),
            KeyError::RsaTooSmall { bits } => write!(f, "rsa key of {bits} bits: at least 2048 are required"),
            KeyError::RsaTooLarge { bits } => write!(f, "rsa key of {bits} bits: at most 8192 are verified"),
            KeyError::Pkcs8 => f.write_str("not a pkcs#8 p-256 or rsa private key"),
            KeyError::Jwk(m) => write!(f, "private jwk: bad or missing member {m:?}"),
            KeyError::Mismatch => f.write_str("the private key does not match the public key"),
            KeyError::Random => f.write_str("the system random number generator failed"),
            KeyError::Sign => f.write_str("signing failed"),
            KeyError::Encode => f.write_str("encoding the key failed"),
            KeyError::DuplicateKid(k) => write!(f, "the key set already holds kid {k:?}"),
            KeyError::SharedKey(k) => write!(f, "kid {k:?} is in both the access and the refresh key set"),
            KeyError::UnsafeDelay => f.write_str("publication delay shorter than the jwks max-age"),
            KeyError::UnknownKid(k) => write!(f, "no key with kid {k:?}"),
            KeyError::Import(m) => write!(f, "key set import: {m}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A token could not be issued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueError {
    /// The key set has no key that signs now (all removed, or none active yet).
    NoSigningKey,
    /// An extra claim would override a registered one.
    ReservedClaim(String),
    /// A claim the token profile needs is absent or empty (`sub`, `sid`, `client_id`
    /// for `at+jwt`).
    MissingClaim(&'static str),
    /// A claim's value is not allowed (empty role, scope token with a space, zero
    /// lifetime, ...); names the claim.
    InvalidClaim(&'static str),
    /// The token would be longer than the edge accepts (8192 bytes).
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The key failed (random number generator, signature).
    Key(KeyError),
}

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueError::NoSigningKey => f.write_str("no key signs at this time"),
            IssueError::ReservedClaim(c) => write!(f, "extra claim {c:?} would override a registered claim"),
            IssueError::MissingClaim(c) => write!(f, "claim {c:?} is required"),
            IssueError::InvalidClaim(c) => write!(f, "claim {c:?} has a value that is not allowed"),
            IssueError::TooLarge { len } => write!(f, "token of {len} bytes: the edge accepts at most 8192"),
            IssueError::Key(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for IssueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IssueError::Key(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KeyError> for IssueError {
    fn from(e: KeyError) -> Self {
        IssueError::Key(e)
    }
}

/// The `error` kinds the revocation service answers with (its `openapi.yaml`), plus
/// [`ServiceErrorKind::Other`] for kinds this client does not know yet: the kind string
/// is always kept on [`ServiceError::kind_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceErrorKind {
    /// 400 `bad_json`.
    BadJson,
    /// 400 `body_unreadable`.
    BodyUnreadable,
    /// 400 `invalid_query`.
    InvalidQuery,
    /// 400 `bad_expiry`: `exp`/`before` out of the service's bounds.
    BadExpiry,
    /// 401 `unauthorized`: missing, unknown or revoked API key.
    Unauthorized,
    /// 403 `forbidden`: the key lacks the scope.
    Forbidden,
    /// 403 `forbidden_issuer`: the event or session is for an issuer outside the key's
    /// issuer scope.
    ForbiddenIssuer,
    /// 403 `issuer_scope_missing`: an `events:write` key without an issuer scope.
    IssuerScopeMissing,
    /// 404 `unknown_session`.
    UnknownSession,
    /// 409 `session_exists`.
    SessionExists,
    /// 409 `session_revoked`.
    SessionRevoked,
    /// 409 `unknown_token`.
    UnknownToken,
    /// 409 `jti_conflict`.
    JtiConflict,
    /// 409 `issuer_mismatch`.
    IssuerMismatch,
    /// 409 `reuse_detected` (only seen outside [`crate::RevocationClient::rotate`],
    /// which turns it into [`crate::RotateOutcome::ReuseDetected`]).
    ReuseDetected,
    /// 409 `maintenance_running`.
    MaintenanceRunning,
    /// 410 `snapshot_required`.
    SnapshotRequired,
    /// 413 `body_too_large`.
    BodyTooLarge,
    /// 413 `too_many_events`.
    TooManyEvents,
    /// 422 `invalid_event`.
    InvalidEvent,
    /// 422 `idempotency_conflict`.
    IdempotencyConflict,
    /// 429 `rate_limited` (with `Retry-After`).
    RateLimited,
    /// 429 `quota_exceeded`: the key's quota of live entries (with `Retry-After`).
    QuotaExceeded,
    /// 503 `overloaded`.
    Overloaded,
    /// 503 `timeout`.
    Timeout,
    /// 503 `too_many_replicas`.
    TooManyReplicas,
    /// 503 `shutting_down`.
    ShuttingDown,
    /// 503 `not_writable`.
    NotWritable,
    /// 503 `signing_key_unavailable`.
    SigningKeyUnavailable,
    /// 503 `too_many_connections`: a connection over the service's caps.
    TooManyConnections,
    /// 500 `internal`.
    Internal,
    /// A kind this client does not know: see [`ServiceError::kind_str`].
    Other,
}

impl ServiceErrorKind {
    /// The kind for a service `error` string.
    pub fn from_kind(kind: &str) -> ServiceErrorKind {
        use ServiceErrorKind as K;
        match kind {
            "bad_json" => K::BadJson,
            "body_unreadable" => K::BodyUnreadable,
            "invalid_query" => K::InvalidQuery,
            "bad_expiry" => K::BadExpiry,
            "unauthorized" => K::Unauthorized,
            "forbidden" => K::Forbidden,
            "forbidden_issuer" => K::ForbiddenIssuer,
            "issuer_scope_missing" => K::IssuerScopeMissing,
            "unknown_session" => K::UnknownSession,
            "session_exists" => K::SessionExists,
            "session_revoked" => K::SessionRevoked,
            "unknown_token" => K::UnknownToken,
            "jti_conflict" => K::JtiConflict,
            "issuer_mismatch" => K::IssuerMismatch,
            "reuse_detected" => K::ReuseDetected,
            "maintenance_running" => K::MaintenanceRunning,
            "snapshot_required" => K::SnapshotRequired,
            "body_too_large" => K::BodyTooLarge,
            "too_many_events" => K::TooManyEvents,
            "invalid_event" => K::InvalidEvent,
            "idempotency_conflict" => K::IdempotencyConflict,
            "rate_limited" => K::RateLimited,
            "quota_exceeded" => K::QuotaExceeded,
            "overloaded" => K::Overloaded,
            "timeout" => K::Timeout,
            "too_many_replicas" => K::TooManyReplicas,
            "shutting_down" => K::ShuttingDown,
            "not_writable" => K::NotWritable,
            "signing_key_unavailable" => K::SigningKeyUnavailable,
            "too_many_connections" => K::TooManyConnections,
            "internal" => K::Internal,
            _ => K::Other,
        }
    }
}

/// An error answer of the revocation service: status, kind and detail as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceError {
    /// The HTTP status.
    pub status: u16,
    /// The kind, typed.
    pub kind: ServiceErrorKind,
    /// The kind exactly as the service sent it (also for kinds this client does not
    /// know).
    pub kind_str: String,
    /// The service's `detail`.
    pub detail: String,
    /// `Retry-After`, when the service sent one.
    pub retry_after: Option<Duration>,
    /// The whole JSON body (extra members such as `seq` or `revoked_seq`).
    pub body: Value,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation service answered {} {}: {}", self.status, self.kind_str, self.detail)
    }
}

/// A call of the [`crate::RevocationClient`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The service answered with an error. 4xx answers are never retried; a 503 is
    /// returned only once the retries are used up.
    Service(ServiceError),
    /// No answer: connection refused or dropped, or a per-attempt timeout, on every
    /// attempt.
    Unreachable {
        /// How many attempts were made.
        attempts: u32,
        /// What the last attempt met.
        last: String,
    },
    /// The call's deadline passed (retries included).
    Deadline {
        /// How many attempts were made.
        attempts: u32,
        /// What the last attempt met (empty when there was none).
        last: String,
    },
    /// The service answered something this client does not understand.
    Protocol(String),
    /// The client was configured wrongly (bad URL, bad API key characters).
    Config(String),
}

impl ClientError {
    /// The service's error, when it answered with one.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            ClientError::Service(e) => Some(e),
            _ => None,
        }
    }

    /// The service's kind, when it answered with an error.
    pub fn kind(&self) -> Option<ServiceErrorKind> {
        self.service().map(|e| e.kind)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Service(e) => write!(f, "{e}"),
            ClientError::Unreachable { attempts, last } => {
                write!(f, "revocation service unreachable after {attempts} attempts: {last}")
            }
            ClientError::Deadline { attempts, last } if last.is_empty() => {
                write!(f, "revocation call deadline passed after {attempts} attempts")
            }
            ClientError::Deadline { attempts, last } => {
                write!(f, "revocation call deadline passed after {attempts} attempts; last: {last}")
            }
            ClientError::Protocol(m) => write!(f, "unexpected answer from the revocation service: {m}"),
            ClientError::Config(m) => write!(f, "revocation client configuration: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The refresh flow could not complete for a reason that is not the presented token's
/// fault: the revocation service, or issuing the new pair. (A bad, expired or reused
/// refresh token is an outcome, [`crate::RefreshOutcome`], not an error.)
#[derive(Debug)]
#[non_exhaustive]
pub enum RefreshError {
    /// The revocation service could not be asked, or answered an unexpected error.
    Client(ClientError),
    /// The new access or refresh token could not be issued.
    Issue(IssueError),
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshError::Client(e) => write!(f, "refresh: {e}"),
            RefreshError::Issue(e) => write!(f, "refresh: {e}"),
        }
    }
}

impl std::error::Error for RefreshError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RefreshError::Client(e) => Some(e),
            RefreshError::Issue(e) => Some(e),
        }
    }
}

impl From<ClientError> for RefreshError {
    fn from(e: ClientError) -> Self {
        RefreshError::Client(e)
    }
}

impl From<IssueError> for RefreshError {
    fn from(e: IssueError) -> Self {
        RefreshError::Issue(e)
    }
}

/// Why an `X-Tollgate-Assertion` was refused: the contract's reasons, in check order.
/// Every one is a 401 `{"error":"invalid_assertion","reason":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssertionError {
    /// No assertion header.
    Missing,
    /// Not exactly one header, not a compact JWS, not strict JSON, wrong `typ` or
    /// header members, or a payload member of the wrong type.
    Malformed,
    /// `alg` or `kid` names no configured secret or key.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `iss` is not `tollgate-edge`.
    WrongIssuer,
    /// `aud` is not the configured audience.
    WrongAudience,
    /// `exp` ≤ now − leeway (also a replay after expiry).
    Expired,
    /// `iat` > now + leeway.
    NotYetValid,
    /// Made for another method.
    WrongMethod,
    /// Made for another request-target.
    WrongTarget,
    /// The `X-Tollgate-*` headers received are not the ones the Worker sent.
    WrongHeaders,
}

impl AssertionError {
    /// Every reason, in check order.
    pub const ALL: [AssertionError; 11] = [
        AssertionError::Missing,
        AssertionError::Malformed,
        AssertionError::UnknownKey,
        AssertionError::BadSignature,
        AssertionError::WrongIssuer,
        AssertionError::WrongAudience,
        AssertionError::Expired,
        AssertionError::NotYetValid,
        AssertionError::WrongMethod,
        AssertionError::WrongTarget,
        AssertionError::WrongHeaders,
    ];

    /// The contract's reason string.
    pub fn reason(self) -> &'static str {
        match self {
            AssertionError::Missing => "missing",
            AssertionError::Malformed => "malformed",
            AssertionError::UnknownKey => "unknown_key",
            AssertionError::BadSignature => "bad_signature",
            AssertionError::WrongIssuer => "wrong_issuer",
            AssertionError::WrongAudience => "wrong_audience",
            AssertionError::Expired => "expired",
            AssertionError::NotYetValid => "not_yet_valid",
            AssertionError::WrongMethod => "wrong_method",
            AssertionError::WrongTarget => "wrong_target",
            AssertionError::WrongHeaders => "wrong_headers",
        }
    }

    /// The 401 body: `{"error":"invalid_assertion","reason":…}`.
    pub fn body(self) -> String {
        format!(r#"{{"error":"invalid_assertion","reason":"{}"}}"#, self.reason())
    }
}

impl fmt::Display for AssertionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid assertion: {}", self.reason())
    }
}

impl std::error::Error for AssertionError {}

/// An [`crate::AssertionVerifier`] was configured wrongly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionConfigError {
    /// An HS256 secret shorter than 32 bytes.
    ShortSecret,
    /// Neither a secret nor a public key: every request would be refused.
    NoKeys,
    /// An ES256 key that is not a public P-256 JWK.
    BadJwk,
    /// A leeway over 300 seconds.
    Leeway,
}

impl fmt::Display for AssertionConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssertionConfigError::ShortSecret => "an assertion secret must be at least 32 bytes",
            AssertionConfigError::NoKeys => "give hs256 secrets or es256 public keys",
            AssertionConfigError::BadJwk => "es256 keys must be public p-256 jwks",
            AssertionConfigError::Leeway => "the assertion leeway may be at most 300 seconds",
        })
    }
}

impl std::error::Error for AssertionConfigError {}
