//! What a verifier accepts: issuers, audiences, algorithms, leeway, required claims,
//! `typ`, and size limits. Defaults are those of the shared conformance suite.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::Deserialize;

use crate::alg::{Algorithm, AlgorithmSet};
use crate::error::PolicyError;

/// Default cap on a token's length in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// Default minimum RSA modulus in bits.
pub const DEFAULT_MIN_RSA_BITS: usize = 2048;

/// A verification policy. Build one with [`Policy::default`] and set fields, or parse
/// the conformance suite's JSON form with [`Policy::from_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Allowed `iss` values (exact match); `None` means not checked.
    pub issuers: Option<Vec<String>>,
    /// Allowed audiences: the token's `aud` must contain one; `None` means not checked.
    pub audiences: Option<Vec<String>>,
    /// Allowed algorithms (default ES256 and RS256).
    pub algorithms: AlgorithmSet,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default 0).
    pub leeway_seconds: u64,
    /// Claims that must be present (default `["exp"]`).
    pub required_claims: Vec<String>,
    /// Expected header `typ`, compared case-insensitively with `application/` ignored.
    pub typ: Option<String>,
    /// Cap on the token's length, checked before anything else (default 8192).
    pub max_token_bytes: usize,
    /// Minimum RSA modulus in bits; shorter keys never verify (default 2048).
    pub min_rsa_bits: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            issuers: None,
            audiences: None,
            algorithms: AlgorithmSet::ALL,
            leeway_seconds: 0,
            required_claims: vec![String::from("exp")],
            typ: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            min_rsa_bits: DEFAULT_MIN_RSA_BITS,
        }
    }
}

/// The policy's JSON form (the conformance suite's field names; absent fields take defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// See [`Policy::issuers`].
    #[serde(default)]
    pub issuers: Option<Vec<String>>,
    /// See [`Policy::audiences`].
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Algorithm names; see [`Policy::algorithms`].
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// See [`Policy::leeway_seconds`].
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    /// See [`Policy::required_claims`].
    #[serde(default)]
    pub required_claims: Option<Vec<String>>,
    /// See [`Policy::typ`].
    #[serde(default)]
    pub typ: Option<String>,
    /// See [`Policy::max_token_bytes`].
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    /// See [`Policy::min_rsa_bits`].
    #[serde(default)]
    pub min_rsa_bits: Option<usize>,
}

impl PolicyConfig {
    /// Validates the configuration into a policy. Unknown algorithm names are an error
    /// (fail closed: a typo must not silently narrow or widen what is accepted).
    pub fn into_policy(self) -> Result<Policy, PolicyError> {
        let d = Policy::default();
        let algorithms = match self.algorithms {
            None => d.algorithms,
            Some(names) => {
                let mut set = AlgorithmSet::EMPTY;
                for n in names {
                    match Algorithm::from_name(&n) {
                        Some(a) => set = set.with(a),
                        None => return Err(PolicyError::UnknownAlgorithm(n)),
                    }
                }
                set
            }
        };
        let max_token_bytes = self.max_token_bytes.unwrap_or(d.max_token_bytes);
        if max_token_bytes == 0 || max_token_bytes > 1 << 20 {
            return Err(PolicyError::Limit("max_token_bytes"));
        }
        let leeway_seconds = self.leeway_seconds.unwrap_or(0);
        if leeway_seconds > 86_400 {
            return Err(PolicyError::Limit("leeway_seconds"));
        }
        Ok(Policy {
            issuers: self.issuers,
            audiences: self.audiences,
            algorithms,
            leeway_seconds,
            required_claims: self.required_claims.unwrap_or(d.required_claims),
            typ: self.typ,
            max_token_bytes,
            min_rsa_bits: self.min_rsa_bits.unwrap_or(d.min_rsa_bits),
        })
    }
}

impl Policy {
    /// Parses the JSON form of a policy.
    pub fn from_json(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let cfg: PolicyConfig = serde_json::from_slice(bytes).map_err(|_| PolicyError::Limit("json"))?;
        cfg.into_policy()
    }

    /// Whether `typ` from a header satisfies the policy's `typ` (case-insensitive,
    /// `application/` prefix ignored on both sides).
    pub(crate) fn typ_matches(expected: &str, actual: &str) -> bool {
        strip_application(expected).eq_ignore_ascii_case(strip_application(actual))
    }
}

fn strip_application(s: &str) -> &str {
    const P: &str = "application/";
    if s.len() >= P.len() && s.as_bytes()[..P.len()].eq_ignore_ascii_case(P.as_bytes()) {
        &s[P.len()..]
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_conformance_readme() {
        let p = Policy::from_json(b"{}").unwrap();
        assert_eq!(p, Policy::default());
        assert!(p.algorithms.contains(Algorithm::Es256) && p.algorithms.contains(Algorithm::Rs256));
        assert_eq!(p.required_claims, vec![String::from("exp")]);
        assert_eq!((p.leeway_seconds, p.max_token_bytes, p.min_rsa_bits), (0, 8192, 2048));
    }

    #[test]
    fn unknown_algorithm_and_fields_fail_closed() {
        assert_eq!(
            Policy::from_json(br#"{"algorithms":["HS256"]}"#),
            Err(PolicyError::UnknownAlgorithm("HS256".into()))
        );
        assert!(Policy::from_json(br#"{"issuer":"x"}"#).is_err());
        assert!(Policy::from_json(br#"{"max_token_bytes":0}"#).is_err());
    }

    #[test]
    fn typ_comparison() {
        assert!(Policy::typ_matches("at+jwt", "application/AT+JWT"));
        assert!(Policy::typ_matches("application/at+jwt", "at+jwt"));
        assert!(!Policy::typ_matches("at+jwt", "JWT"));
    }
}
