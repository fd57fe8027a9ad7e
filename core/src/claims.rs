//! Verified claims: reachable only after the signature holds.

use alloc::string::String;

use serde_json::{Map, Value};

use crate::error::{Claim, ClaimsError, Error, ParseError};
use crate::json;
use crate::policy::Policy;

/// The claims of a token whose signature has been verified. Registered claims have
/// been type-checked, so the typed accessors never fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    map: Map<String, Value>,
}

impl Claims {
    /// Parses a verified payload: a strict JSON object whose registered claims have
    /// their RFC 7519 types (`exp`/`nbf`/`iat` numbers; `iss`/`sub`/`jti`/`sid`
    /// strings; `aud` a string or an array of strings).
    pub(crate) fn from_verified_payload(payload: &[u8]) -> Result<Claims, Error> {
        let map = json::parse_object(payload).ok_or(Error::Parse(ParseError::PayloadJson))?;
        let bad = |c| Error::Claims(ClaimsError::Type(c));
        for (name, claim) in [("exp", Claim::Exp), ("nbf", Claim::Nbf), ("iat", Claim::Iat)] {
            if map.get(name).is_some_and(|v| !v.is_number()) {
                return Err(bad(claim));
            }
        }
        for (name, claim) in [("iss", Claim::Iss), ("sub", Claim::Sub), ("jti", Claim::Jti), ("sid", Claim::Sid)] {
            if map.get(name).is_some_and(|v| !v.is_string()) {
                return Err(bad(claim));
            }
        }
        match map.get("aud") {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
            Some(_) => return Err(bad(Claim::Aud)),
        }
        Ok(Claims { map })
    }

    /// Checks time, issuer, audience and required claims, in the conformance order:
    /// `exp` → `nbf` → `iss` → `aud` → required claims.
    pub fn check(&self, policy: &Policy, now: i64) -> Result<(), ClaimsError> {
        self.check_time(policy, now)?;
        if let Some(issuers) = &policy.issuers {
            let iss = self.iss().ok_or(ClaimsError::Missing(Claim::Iss))?;
            if !issuers.iter().any(|i| i == iss) {
                return Err(ClaimsError::Issuer);
            }
        }
        if let Some(audiences) = &policy.audiences {
            if !self.map.contains_key("aud") {
                return Err(ClaimsError::Missing(Claim::Aud));
            }
            if !self.audiences().any(|a| audiences.iter().any(|x| x == a)) {
                return Err(ClaimsError::Audience);
            }
        }
        for name in &policy.required_claims {
            if !self.map.contains_key(name.as_str()) {
                return Err(ClaimsError::Missing(claim_of(name)));
            }
        }
        Ok(())
    }

    /// Checks only `exp` and `nbf` against `now` with the policy's leeway: what must be
    /// re-checked on every use of a cached verification.
    pub fn check_time(&self, policy: &Policy, now: i64) -> Result<(), ClaimsError> {
        let now = now as f64;
        let leeway = policy.leeway_seconds as f64;
        if let Some(exp) = self.exp() {
            if now >= exp + leeway {
                return Err(ClaimsError::Expired);
            }
        }
        if let Some(nbf) = self.nbf() {
            if now < nbf - leeway {
                return Err(ClaimsError::NotYetValid);
            }
        }
        Ok(())
    }

    /// Any claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// All claims, by value.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }

    /// `exp`, seconds since the epoch.
    pub fn exp(&self) -> Option<f64> {
        self.map.get("exp").and_then(Value::as_f64)
    }

    /// `nbf`, seconds since the epoch.
    pub fn nbf(&self) -> Option<f64> {
        self.map.get("nbf").and_then(Value::as_f64)
    }

    /// `iat`, seconds since the epoch.
    pub fn iat(&self) -> Option<f64> {
        self.map.get("iat").and_then(Value::as_f64)
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.map.get("iss").and_then(Value::as_str)
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.map.get("sub").and_then(Value::as_str)
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.map.get("jti").and_then(Value::as_str)
    }

    /// `sid`.
    pub fn sid(&self) -> Option<&str> {
        self.map.get("sid").and_then(Value::as_str)
    }

    /// The audiences (`aud` as a string or each string of the array).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self.map.get("aud") {
            Some(Value::String(s)) => (Some(s.as_str()), None),
            Some(Value::Array(a)) => (None, Some(a.iter().filter_map(Value::as_str))),
            _ => (None, None),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

fn claim_of(name: &str) -> Claim {
    match name {
        "exp" => Claim::Exp,
        "nbf" => Claim::Nbf,
        "iat" => Claim::Iat,
        "iss" => Claim::Iss,
        "sub" => Claim::Sub,
        "aud" => Claim::Aud,
        "jti" => Claim::Jti,
        "sid" => Claim::Sid,
        _ => Claim::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Result<Claims, Error> {
        Claims::from_verified_payload(json.as_bytes())
    }

    #[test]
    fn registered_claim_types() {
        for bad in
            [r#"{"exp":"1"}"#, r#"{"nbf":null}"#, r#"{"iat":true}"#, r#"{"iss":1}"#, r#"{"aud":[1]}"#, r#"{"sid":{}}"#]
        {
            assert_eq!(claims(bad).unwrap_err().reason(), crate::Reason::InvalidClaim, "{bad}");
        }
        assert!(claims(r#"{"exp":1.5,"aud":["a","b"],"x":[1]}"#).is_ok());
        assert_eq!(claims("[]").unwrap_err().reason(), crate::Reason::Malformed);
    }

    #[test]
    fn time_boundaries_with_leeway() {
        let mut p = Policy::default();
        let c = claims(r#"{"exp":100,"nbf":50}"#).unwrap();
        assert_eq!(c.check_time(&p, 99), Ok(()));
        assert_eq!(c.check_time(&p, 100), Err(ClaimsError::Expired));
        assert_eq!(c.check_time(&p, 49), Err(ClaimsError::NotYetValid));
        assert_eq!(c.check_time(&p, 50), Ok(()));
        p.leeway_seconds = 10;
        assert_eq!(c.check_time(&p, 109), Ok(()));
        assert_eq!(c.check_time(&p, 110), Err(ClaimsError::Expired));
        assert_eq!(c.check_time(&p, 40), Ok(()));
        assert_eq!(c.check_time(&p, 39), Err(ClaimsError::NotYetValid));
    }

    #[test]
    fn issuer_audience_required_order() {
        let p = Policy {
            issuers: Some(alloc::vec!["i".into()]),
            audiences: Some(alloc::vec!["a".into()]),
            required_claims: alloc::vec!["exp".into(), "jti".into()],
            ..Policy::default()
        };
        let c = claims(r#"{"exp":10,"iss":"j"}"#).unwrap();
        assert_eq!(c.check(&p, 0), Err(ClaimsError::Issuer));
        let c = claims(r#"{"exp":10,"iss":"i"}"#).unwrap();
        assert_eq!(c.check(&p, 0), Err(ClaimsError::Missing(Claim::Aud)));
        let c = claims(r#"{"exp":10,"iss":"i","aud":["b","a"]}"#).unwrap();
        assert_eq!(c.check(&p, 0), Err(ClaimsError::Missing(Claim::Jti)));
        let c = claims(r#"{"exp":10,"iss":"i","aud":"a","jti":"x"}"#).unwrap();
        assert_eq!(c.check(&p, 0), Ok(()));
        assert_eq!(c.check(&p, 10), Err(ClaimsError::Expired));
    }
}
