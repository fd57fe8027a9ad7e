//! The signature algorithms this verifier implements, and sets of them.

use core::fmt;

/// A JWS algorithm this verifier implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256, 64-byte `r || s` signatures (RFC 7518 §3.4).
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    Rs256,
}

impl Algorithm {
    /// The JOSE name (`"ES256"`, `"RS256"`).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }

    /// Parses a JOSE name; exact, case-sensitive (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "ES256" => Some(Algorithm::Es256),
            "RS256" => Some(Algorithm::Rs256),
            _ => None,
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Algorithm::Es256 => 1,
            Algorithm::Rs256 => 2,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of allowed algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgorithmSet(u8);

impl AlgorithmSet {
    /// No algorithm: every token is rejected.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);
    /// ES256 and RS256 (the default).
    pub const ALL: AlgorithmSet = AlgorithmSet(3);

    /// Adds an algorithm.
    #[must_use]
    pub const fn with(self, alg: Algorithm) -> AlgorithmSet {
        AlgorithmSet(self.0 | alg.bit())
    }

    /// Whether the set holds `alg`.
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }
}
