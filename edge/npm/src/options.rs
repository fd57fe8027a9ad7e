//! The JS verifier options (camelCase) onto the core's [`PolicyConfig`] (the
//! conformance suite's snake_case fields): same fields, same defaults, same checks.

use serde::Deserialize;
use tollgate_core::policy::PolicyConfig;
use tollgate_core::Policy;

use crate::error::BindingError;

/// The policy part of `new Verifier({...})`, as JSON from the JS wrapper (which has
/// already taken out `jwks` and its own options). Unknown names are refused, so a
/// misspelt option never silently widens what is accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerifierOptions {
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    leeway_seconds: Option<u64>,
    required_claims: Option<Vec<String>>,
    typ: Option<String>,
    max_token_bytes: Option<usize>,
    min_rsa_bits: Option<usize>,
}

impl From<VerifierOptions> for PolicyConfig {
    fn from(o: VerifierOptions) -> PolicyConfig {
        PolicyConfig {
            issuers: o.issuers,
            audiences: o.audiences,
            algorithms: o.algorithms,
            leeway_seconds: o.leeway_seconds,
            required_claims: o.required_claims,
            typ: o.typ,
            max_token_bytes: o.max_token_bytes,
            min_rsa_bits: o.min_rsa_bits,
        }
    }
}

/// Parses the options JSON into a validated policy.
pub fn policy_from_options(json: &str) -> Result<Policy, BindingError> {
    let opts: VerifierOptions = serde_json::from_str(json).map_err(|e| BindingError::Options(e.to_string()))?;
    Ok(PolicyConfig::from(opts).into_policy()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_options_are_the_conformance_defaults() {
        assert_eq!(policy_from_options("{}").unwrap(), Policy::default());
    }

    #[test]
    fn camel_case_maps_to_the_policy() {
        let p = policy_from_options(
            r#"{"issuers":["i"],"audiences":["a"],"algorithms":["ES256"],"leewaySeconds":5,
                "requiredClaims":["exp","jti"],"typ":"at+jwt","maxTokenBytes":100,"minRsaBits":3072}"#,
        )
        .unwrap();
        assert_eq!(p.issuers.as_deref(), Some(&["i".to_string()][..]));
        assert_eq!(p.audiences.as_deref(), Some(&["a".to_string()][..]));
        assert!(p.algorithms.contains(tollgate_core::Algorithm::Es256));
        assert!(!p.algorithms.contains(tollgate_core::Algorithm::Rs256));
        assert_eq!((p.leeway_seconds, p.max_token_bytes, p.min_rsa_bits), (5, 100, 3072));
        assert_eq!(p.required_claims, vec!["exp".to_string(), "jti".to_string()]);
        assert_eq!(p.typ.as_deref(), Some("at+jwt"));
        // null means "not set", as in the conformance files.
        assert_eq!(policy_from_options(r#"{"typ":null,"issuers":null}"#).unwrap(), Policy::default());
    }

    #[test]
    fn unknown_mistyped_or_out_of_range_options_fail() {
        for bad in [
            r#"{"leeway_seconds":5}"#,
            r#"{"issuer":"x"}"#,
            r#"{"leewaySeconds":-1}"#,
            r#"{"leewaySeconds":"5"}"#,
            r#"{"algorithms":["HS256"]}"#,
            r#"{"maxTokenBytes":0}"#,
            "[]",
        ] {
            let e = policy_from_options(bad).unwrap_err();
            assert_eq!(e.code(), "INVALID_OPTIONS", "{bad}");
        }
    }
}
