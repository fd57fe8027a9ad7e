//! Typed errors, split by the phase that produced them.
//!
//! Every rejection maps to a stable, machine-readable [`Reason`] whose string form is
//! exactly one of the reasons of the shared conformance suite.

use core::fmt;

/// The stable, machine-readable reason a token was rejected.
///
/// The string forms ([`Reason::as_str`]) are the conformance suite's reasons and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The token, or one of its parts, is not well-formed.
    Malformed,
    /// The token is longer than the policy's `max_token_bytes`.
    TooLarge,
    /// The header's `alg` is not supported or not allowed by the policy.
    UnsupportedAlgorithm,
    /// The header has a `crit` member; no extension is understood.
    UnsupportedCriticalHeader,
    /// The header's `typ` does not match the policy.
    InvalidType,
    /// No usable key of the JWKS fits the token.
    UnknownKey,
    /// Usable keys exist but none verifies the signature.
    InvalidSignature,
    /// A registered claim has the wrong JSON type.
    InvalidClaim,
    /// `now >= exp + leeway`.
    Expired,
    /// `now < nbf - leeway`.
    NotYetValid,
    /// `iss` is not one of the policy's issuers.
    InvalidIssuer,
    /// `aud` contains none of the policy's audiences.
    InvalidAudience,
    /// A claim the policy needs is absent.
    MissingClaim,
    /// The denylist covers the token.
    Revoked,
}

impl Reason {
    /// Every reason, in check order.
    pub const ALL: [Reason; 14] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::UnsupportedAlgorithm,
        Reason::UnsupportedCriticalHeader,
        Reason::InvalidType,
        Reason::UnknownKey,
        Reason::InvalidSignature,
        Reason::InvalidClaim,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::InvalidIssuer,
        Reason::InvalidAudience,
        Reason::MissingClaim,
        Reason::Revoked,
    ];

    /// The stable string form, as in the conformance suite (`"expired"`, `"revoked"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::UnsupportedCriticalHeader => "unsupported_critical_header",
            Reason::InvalidType => "invalid_type",
            Reason::UnknownKey => "unknown_key",
            Reason::InvalidSignature => "invalid_signature",
            Reason::InvalidClaim => "invalid_claim",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::InvalidIssuer => "invalid_issuer",
            Reason::InvalidAudience => "invalid_audience",
            Reason::MissingClaim => "missing_claim",
            Reason::Revoked => "revoked",
        }
    }

    /// Parses a string form back into a reason.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Structure and encoding errors: found before any key is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The token is longer than the size cap.
    TooLarge {
        /// The token's length in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not exactly three dot-separated segments.
    Segments,
    /// A segment is not canonical unpadded base64url.
    Base64,
    /// The header is not a UTF-8 JSON object without duplicate member names.
    HeaderJson,
    /// A header member has the wrong type (`alg`, `kid`, `typ`).
    HeaderMember,
    /// The (verified) payload is not a UTF-8 JSON object without duplicate member names.
    PayloadJson,
}

/// Header policy errors (`alg`, `crit`, `typ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// `alg` is `none`, unknown, or not on the allowlist.
    UnsupportedAlgorithm,
    /// A `crit` member is present.
    CriticalHeader,
    /// `typ` is absent or does not match the policy.
    Type,
}

/// Key selection errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No usable key fits the token (`kid` unknown, wrong type/curve/alg/use, too short).
    NoUsableKey,
}

/// Signature errors. Deliberately opaque: one variant, no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature did not verify under any usable key.
    Invalid,
}

/// Claim validation errors, in check order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsError {
    /// A registered claim has the wrong JSON type.
    Type(Claim),
    /// The token has expired.
    Expired,
    /// The token is not yet valid.
    NotYetValid,
    /// The issuer is not allowed.
    Issuer,
    /// No allowed audience is present.
    Audience,
    /// A needed claim is absent.
    Missing(Claim),
}

/// The registered claims the verifier reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// `exp`
    Exp,
    /// `nbf`
    Nbf,
    /// `iat`
    Iat,
    /// `iss`
    Iss,
    /// `sub`
    Sub,
    /// `aud`
    Aud,
    /// `jti`
    Jti,
    /// `sid`
    Sid,
    /// Another claim named by the policy's `required_claims`.
    Other,
}

/// Denylist errors: the token is covered by an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenylistError {
    /// Revoked by `jti`, `sid` or a subject cutoff.
    Revoked,
}

/// Any reason a token was rejected, by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Size, structure and encoding.
    Parse(ParseError),
    /// `alg`, `crit`, `typ`.
    Header(HeaderError),
    /// Key selection.
    Key(KeyError),
    /// Signature.
    Signature(SignatureError),
    /// Claims.
    Claims(ClaimsError),
    /// Denylist.
    Denylist(DenylistError),
}

impl Error {
    /// The stable conformance reason for this error.
    pub const fn reason(&self) -> Reason {
        match self {
            Error::Parse(ParseError::TooLarge { .. }) => Reason::TooLarge,
            Error::Parse(_) => Reason::Malformed,
            Error::Header(HeaderError::UnsupportedAlgorithm) => Reason::UnsupportedAlgorithm,
            Error::Header(HeaderError::CriticalHeader) => Reason::UnsupportedCriticalHeader,
            Error::Header(HeaderError::Type) => Reason::InvalidType,
            Error::Key(_) => Reason::UnknownKey,
            Error::Signature(_) => Reason::InvalidSignature,
            Error::Claims(ClaimsError::Type(_)) => Reason::InvalidClaim,
            Error::Claims(ClaimsError::Expired) => Reason::Expired,
            Error::Claims(ClaimsError::NotYetValid) => Reason::NotYetValid,
            Error::Claims(ClaimsError::Issuer) => Reason::InvalidIssuer,
            Error::Claims(ClaimsError::Audience) => Reason::InvalidAudience,
            Error::Claims(ClaimsError::Missing(_)) => Reason::MissingClaim,
            Error::Denylist(_) => Reason::Revoked,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(ParseError::TooLarge { len, max }) => {
                write!(f, "token is {len} bytes, more than the limit of {max}")
            }
            Error::Parse(ParseError::Segments) => f.write_str("token is not three dot-separated segments"),
            Error::Parse(ParseError::Base64) => f.write_str("segment is not canonical unpadded base64url"),
            Error::Parse(ParseError::HeaderJson) => f.write_str("header is not a strict json object"),
            Error::Parse(ParseError::HeaderMember) => f.write_str("header member has the wrong type"),
            Error::Parse(ParseError::PayloadJson) => f.write_str("payload is not a strict json object"),
            Error::Header(HeaderError::UnsupportedAlgorithm) => f.write_str("algorithm not allowed"),
            Error::Header(HeaderError::CriticalHeader) => f.write_str("critical header extension not understood"),
            Error::Header(HeaderError::Type) => f.write_str("typ does not match"),
            Error::Key(KeyError::NoUsableKey) => f.write_str("no usable key fits the token"),
            Error::Signature(SignatureError::Invalid) => f.write_str("signature does not verify"),
            Error::Claims(ClaimsError::Type(c)) => write!(f, "claim {} has the wrong type", c.name()),
            Error::Claims(ClaimsError::Expired) => f.write_str("token has expired"),
            Error::Claims(ClaimsError::NotYetValid) => f.write_str("token is not yet valid"),
            Error::Claims(ClaimsError::Issuer) => f.write_str("issuer not allowed"),
            Error::Claims(ClaimsError::Audience) => f.write_str("audience not allowed"),
            Error::Claims(ClaimsError::Missing(c)) => write!(f, "claim {} is missing", c.name()),
            Error::Denylist(DenylistError::Revoked) => f.write_str("token has been revoked"),
        }
    }
}

impl Claim {
    /// The claim's JSON name (`"other"` for a policy-named claim).
    pub const fn name(self) -> &'static str {
        match self {
            Claim::Exp => "exp",
            Claim::Nbf => "nbf",
            Claim::Iat => "iat",
            Claim::Iss => "iss",
            Claim::Sub => "sub",
            Claim::Aud => "aud",
            Claim::Jti => "jti",
            Claim::Sid => "sid",
            Claim::Other => "other",
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Errors reading a JWK or JWKS document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    /// Not a strict JSON object.
    Json,
    /// A JWKS without a `keys` array.
    NoKeys,
    /// A JWK member has the wrong type or encoding.
    Member(&'static str),
    /// The key type, curve or size is not supported.
    Unsupported,
    /// The key material is not a valid key (off-curve point, bad modulus).
    InvalidKey,
    /// The document is larger than the cap.
    TooLarge,
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::Json => f.write_str("jwks is not a strict json object"),
            JwksError::NoKeys => f.write_str("jwks has no keys array"),
            JwksError::Member(m) => write!(f, "jwk member {m} is missing or has the wrong type"),
            JwksError::Unsupported => f.write_str("key type, curve or size not supported"),
            JwksError::InvalidKey => f.write_str("key material is invalid"),
            JwksError::TooLarge => f.write_str("jwks document is too large"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for JwksError {}

/// Errors decoding or applying a signed denylist snapshot or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Not a denylist message: wrong magic bytes.
    Format,
    /// A snapshot or delta of a wire format version this build does not read.
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The message ends early, has trailing bytes, or a count does not fit.
    Truncated,
    /// A field is out of range (bad kind, bad UTF-8, events out of order).
    Invalid,
    /// The service's signature does not verify.
    Signature,
    /// The snapshot or delta would move the replica's sequence number backwards.
    Backwards {
        /// The replica's current sequence number.
        current: u64,
        /// The message's sequence number.
        offered: u64,
    },
    /// The delta starts after the replica's sequence number: events are missing.
    Gap {
        /// The replica's current sequence number.
        current: u64,
        /// Where the delta starts.
        from: u64,
    },
    /// A delta arrived before any snapshot.
    NoSnapshot,
    /// The message comes from another epoch of the service (another data directory)
    /// than the one the replica follows, and the replica is not re-bootstrapping.
    Epoch,
    /// The message was created longer ago than the replica's staleness bound.
    TooOld {
        /// When the service made it (seconds since the Unix epoch).
        created: u64,
        /// The replica's time (seconds since the Unix epoch).
        now: u64,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Format => f.write_str("not a tollgate denylist message"),
            WireError::UnsupportedVersion { found } => {
                write!(f, "denylist message of wire format version {found}, which this build does not read")
            }
            WireError::Truncated => f.write_str("denylist message is truncated or has trailing bytes"),
            WireError::Invalid => f.write_str("denylist message has an invalid field"),
            WireError::Signature => f.write_str("denylist message signature does not verify"),
            WireError::Backwards { current, offered } => {
                write!(f, "sequence {offered} is behind the replica's {current}")
            }
            WireError::Gap { current, from } => {
                write!(f, "delta starts at {from}, after the replica's {current}: events are missing")
            }
            WireError::NoSnapshot => f.write_str("a delta needs a snapshot first"),
            WireError::Epoch => f.write_str("denylist message from another epoch of the service"),
            WireError::TooOld { created, now } => {
                write!(f, "denylist message created at {created} is too old at {now}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WireError {}

/// Errors building a policy from names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// An algorithm name that this verifier does not implement.
    UnknownAlgorithm(alloc::string::String),
    /// A limit is zero or out of range.
    Limit(&'static str),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::UnknownAlgorithm(a) => write!(f, "algorithm {a:?} is not supported (ES256, RS256)"),
            PolicyError::Limit(l) => write!(f, "policy limit {l} is out of range"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PolicyError {}
