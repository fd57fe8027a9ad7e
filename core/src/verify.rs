//! The verify pipeline: size → structure → header → key → signature → claim types →
//! `exp` → `nbf` → `iss` → `aud` → required claims → denylist.

use alloc::vec::Vec;

use crate::alg::Algorithm;
use crate::claims::Claims;
use crate::denylist::Denylist;
use crate::error::{Error, HeaderError, KeyError, SignatureError};
use crate::jwk::{Jwk, Jwks};
use crate::policy::Policy;
use crate::signature::{self, DefaultBackend, SignatureBackend};
use crate::token::{Header, UnverifiedToken};

/// A token whose signature, claims and revocation status have all been checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The protected header.
    pub header: Header,
    /// The verified claims.
    pub claims: Claims,
    /// Index in the JWKS of the key that verified the signature.
    pub key_index: usize,
}

/// A JWKS plus a policy: everything needed to verify tokens. Immutable and cheap to
/// share; time and the denylist are passed on each call.
#[derive(Debug, Clone)]
pub struct Verifier {
    jwks: Jwks,
    policy: Policy,
}

impl Verifier {
    /// A verifier trusting `jwks` under `policy`.
    pub fn new(jwks: Jwks, policy: Policy) -> Verifier {
        Verifier { jwks, policy }
    }

    /// The trusted keys.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Verifies `token` at time `now` (seconds since the epoch) with the default
    /// signature backend, checking `denylist` last.
    pub fn verify(&self, token: &str, now: i64, denylist: Option<&Denylist>) -> Result<VerifiedToken, Error> {
        self.verify_with(&DefaultBackend::default(), token, now, denylist)
    }

    /// As [`Verifier::verify`], with an explicit signature backend.
    pub fn verify_with(
        &self,
        backend: &dyn SignatureBackend,
        token: &str,
        now: i64,
        denylist: Option<&Denylist>,
    ) -> Result<VerifiedToken, Error> {
        let pending = self.begin(token)?;
        let key_index = pending.check_signature(backend);
        pending.finish(key_index, now, denylist)
    }

    /// Runs every step before the signature check and returns the signature work to do:
    /// for callers whose signature check is asynchronous (WebCrypto in a Worker).
    pub fn begin<'t>(&self, token: &'t str) -> Result<Pending<'t, '_>, Error> {
        let token = UnverifiedToken::parse(token, self.policy.max_token_bytes)?;
        let header = token.header();
        let alg = match header.alg() {
            Some(a) if self.policy.algorithms.contains(a) => a,
            _ => return Err(Error::Header(HeaderError::UnsupportedAlgorithm)),
        };
        if header.crit() {
            return Err(Error::Header(HeaderError::CriticalHeader));
        }
        if let Some(want) = &self.policy.typ {
            match header.typ() {
                Some(t) if Policy::typ_matches(want, t) => {}
                _ => return Err(Error::Header(HeaderError::Type)),
            }
        }
        let kid = header.kid();
        let mut candidates = Candidates::default();
        for (i, k) in self.jwks.keys().iter().enumerate() {
            if (kid.is_none() || k.kid.as_deref() == kid) && k.fits(alg, self.policy.min_rsa_bits) {
                candidates.push(i);
            }
        }
        if candidates.as_slice().is_empty() {
            return Err(Error::Key(KeyError::NoUsableKey));
        }
        Ok(Pending { verifier: self, token, alg, candidates })
    }

    /// Re-checks a cached verification at a later time: `exp`/`nbf` and the denylist.
    /// (Issuer, audience and required claims cannot change for the same policy.)
    pub fn recheck(&self, claims: &Claims, now: i64, denylist: Option<&Denylist>) -> Result<(), Error> {
        claims.check_time(&self.policy, now).map_err(Error::Claims)?;
        if let Some(d) = denylist {
            d.check(claims).map_err(Error::Denylist)?;
        }
        Ok(())
    }
}

/// A token that passed every check before the signature, with the keys that may
/// verify it. Finish it with the index of the key that verified (or `None`).
#[derive(Debug)]
pub struct Pending<'t, 'v> {
    verifier: &'v Verifier,
    token: UnverifiedToken<'t>,
    alg: Algorithm,
    candidates: Candidates,
}

/// Candidate key indices: up to four inline (a `kid` names one key, as a rule), more
/// on the heap.
#[derive(Debug, Clone)]
enum Candidates {
    Inline { len: u8, items: [usize; 4] },
    Heap(Vec<usize>),
}

impl Default for Candidates {
    fn default() -> Candidates {
        Candidates::Inline { len: 0, items: [0; 4] }
    }
}

impl Candidates {
    fn push(&mut self, i: usize) {
        match self {
            Candidates::Inline { len, items } if usize::from(*len) < items.len() => {
                items[usize::from(*len)] = i;
                *len += 1;
            }
            Candidates::Inline { items, .. } => {
                let mut v = items.to_vec();
                v.push(i);
                *self = Candidates::Heap(v);
            }
            Candidates::Heap(v) => v.push(i),
        }
    }

    fn as_slice(&self) -> &[usize] {
        match self {
            Candidates::Inline { len, items } => &items[..usize::from(*len)],
            Candidates::Heap(v) => v,
        }
    }
}

impl<'t, 'v> Pending<'t, 'v> {
    /// The token's algorithm (allowed by the policy).
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// JWKS indices of the keys that may verify the token, in order; never empty.
    pub fn candidates(&self) -> &[usize] {
        self.candidates.as_slice()
    }

    /// A candidate key by JWKS index.
    pub fn key(&self, index: usize) -> &'v Jwk {
        &self.verifier.jwks.keys()[index]
    }

    /// The bytes the signature covers.
    pub fn signing_input(&self) -> &'t [u8] {
        self.token.signing_input()
    }

    /// The signature bytes.
    pub fn signature(&self) -> &[u8] {
        self.token.signature()
    }

    /// Tries each candidate with `backend`; the JWKS index of the first that verifies.
    pub fn check_signature(&self, backend: &dyn SignatureBackend) -> Option<usize> {
        self.candidates.as_slice().iter().copied().find(|&i| {
            signature::verify_with(backend, self.alg, &self.key(i).material, self.signing_input(), self.signature())
        })
    }

    /// Completes verification. `verified_by` is the JWKS index of a candidate whose
    /// signature check succeeded (from [`Pending::check_signature`] or an external
    /// backend such as WebCrypto); `None` rejects as `invalid_signature`. An index that
    /// is not a candidate is treated as `None`.
    pub fn finish(
        self,
        verified_by: Option<usize>,
        now: i64,
        denylist: Option<&Denylist>,
    ) -> Result<VerifiedToken, Error> {
        let key_index = verified_by
            .filter(|i| self.candidates.as_slice().contains(i))
            .ok_or(Error::Signature(SignatureError::Invalid))?;
        let policy = &self.verifier.policy;
        let (header, payload) = self.token.into_verified_payload();
        let claims = Claims::from_verified_payload(payload)?;
        claims.check(policy, now).map_err(Error::Claims)?;
        if let Some(d) = denylist {
            d.check(&claims).map_err(Error::Denylist)?;
        }
        Ok(VerifiedToken { header, claims, key_index })
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::string::String;

    use super::*;
    use crate::{b64, Reason};

    /// Accepts every signature: these tests are about what comes before and after it.
    struct AcceptAll;

    impl SignatureBackend for AcceptAll {
        fn verify_es256(&self, _: &crate::jwk::P256Key, _: &[u8], _: &[u8; 64]) -> bool {
            true
        }
        fn verify_rs256(&self, _: &crate::jwk::RsaKey, _: &[u8], _: &[u8]) -> bool {
            true
        }
    }

    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"6cXZzhU_Mm20Gi9eCQXqyZbTfWF5QeUtlaQ7SSLnNlw","y":"AAcfFnYybvrN6QaXSSNRN1swXnICP6k3u9Ur5l1rfVY"}]}"#;

    fn verify(header: &str, payload: &str) -> Result<VerifiedToken, Error> {
        let token =
            format!("{}.{}.{}", b64::encode(header.as_bytes()), b64::encode(payload.as_bytes()), b64::encode(&[7; 64]));
        let verifier = Verifier::new(Jwks::from_json(JWKS.as_bytes()).unwrap(), Policy::default());
        verifier.verify_with(&AcceptAll, &token, 0, None)
    }

    /// A JSON object whose member `deep` makes it `levels` deep (the object is one).
    fn nested(prefix: &str, levels: usize) -> String {
        format!("{{{prefix}\"deep\":{}{}}}", "[".repeat(levels - 1), "]".repeat(levels - 1))
    }

    #[test]
    fn header_and_claims_nest_up_to_128_levels() {
        let (header, claims) = (r#""alg":"ES256","#, r#""exp":10,"#);
        for levels in [100, 128] {
            assert!(verify(&nested(header, levels), &nested(claims, levels)).is_ok(), "{levels}");
        }
        let e = verify(&nested(header, 129), &nested(claims, 2)).unwrap_err();
        assert_eq!((e, e.reason()), (Error::Parse(crate::error::ParseError::HeaderJson), Reason::Malformed));
        let e = verify(&nested(header, 2), &nested(claims, 129)).unwrap_err();
        assert_eq!((e, e.reason()), (Error::Parse(crate::error::ParseError::PayloadJson), Reason::Malformed));
    }
}
