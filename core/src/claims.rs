//! Verified claims: reachable only after the signature holds.
//!
//! The payload is parsed once, strictly (see the `json` module), into typed registered
//! claims: `exp`/`nbf`/`iat` as numbers, `iss`/`sub`/`jti`/`sid` as strings and `aud`
//! as a string or an array of strings, each held as a span of the payload's own text
//! (no copy, no map). Every other member is validated in the same pass and only
//! located; [`Claims::get`] and [`Claims::to_map`] build `serde_json` values on demand
//! for the callers that want them, and [`Claims::json`] is the payload's JSON as signed.

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use crate::error::{Claim, ClaimsError, Error, ParseError};
use crate::json::{self, Parser, RawStr};
use crate::policy::Policy;

/// A range of [`Claims`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Payloads are bounded by the token size cap (at most 1 MiB).
        Span { start: start as u32, end: end as u32 }
    }

    fn of(raw: &RawStr<'_>) -> Span {
        Span::new(raw.start, raw.start + raw.raw.len())
    }

    fn range(self) -> core::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// `aud`: absent, one string, or an array of strings.
#[derive(Debug, Clone, PartialEq)]
enum Aud {
    None,
    One(Span),
    Many(Vec<Span>),
}

/// The registered claims the verifier reads, in the order their type errors are
/// reported.
const REGISTERED: [(&str, Claim); 8] = [
    ("exp", Claim::Exp),
    ("nbf", Claim::Nbf),
    ("iat", Claim::Iat),
    ("iss", Claim::Iss),
    ("sub", Claim::Sub),
    ("jti", Claim::Jti),
    ("sid", Claim::Sid),
    ("aud", Claim::Aud),
];

/// The index in [`REGISTERED`] of a registered claim's name (all have three letters:
/// compared as one integer).
fn registered(name: &str) -> Option<usize> {
    const fn key(n: &[u8]) -> u32 {
        n[0] as u32 | (n[1] as u32) << 8 | (n[2] as u32) << 16
    }
    const KEYS: [u32; 8] =
        [key(b"exp"), key(b"nbf"), key(b"iat"), key(b"iss"), key(b"sub"), key(b"jti"), key(b"sid"), key(b"aud")];
    match name.as_bytes() {
        n @ [_, _, _] => KEYS.iter().position(|&k| k == key(n)),
        _ => None,
    }
}

/// A member that is not a registered claim: where its name and value are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    name: Span,
    escaped: bool,
    value: Span,
}

/// The claims of a token whose signature has been verified. Registered claims have
/// been type-checked, so the typed accessors never fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The payload's JSON, then the decoded text of registered strings written with
    /// escapes (so every accessor is a slice of this one string).
    text: String,
    json_len: u32,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    /// `iss`, `sub`, `jti`, `sid`.
    strings: [Option<Span>; 4],
    aud: Aud,
    /// Where each registered claim's value is written in the JSON (`REGISTERED` order).
    values: [Option<Span>; 8],
    others: Vec<Member>,
}

impl Claims {
    /// Parses a verified payload: a strict JSON object whose registered claims have
    /// their RFC 7519 types (`exp`/`nbf`/`iat` numbers; `iss`/`sub`/`jti`/`sid`
    /// strings; `aud` a string or an array of strings). Malformed JSON is reported
    /// before any type error.
    pub(crate) fn from_verified_payload(payload: Vec<u8>) -> Result<Claims, Error> {
        let text = String::from_utf8(payload).map_err(|_| Error::Parse(ParseError::PayloadJson))?;
        let mut c = Claims {
            json_len: 0,
            exp: None,
            nbf: None,
            iat: None,
            strings: [None; 4],
            aud: Aud::None,
            values: [None; 8],
            others: Vec::new(),
            text: String::new(),
        };
        // Registered strings with escapes, decoded, to append to the text.
        let mut decoded = String::new();
        let mut wrong_type = 0u8;
        let parsed = {
            let mut p = Parser::new(&text);
            let r = p.object(1, |p, raw, name| {
                let Some(i) = registered(name) else {
                    let start = value_start(p);
                    p.skip(2)?;
                    c.others.push(Member { name: Span::of(&raw), escaped: raw.escaped, value: span_to(p, start) });
                    // Checked for duplicates among the other names by the parser.
                    return Ok(false);
                };
                if c.values[i].is_some() {
                    return Err(json::Invalid);
                }
                let start = value_start(p);
                // Whether the value was of the right kind to be read (and so consumed).
                let consumed = match i {
                    0..=2 => match p.peek() {
                        Some(b'-' | b'0'..=b'9') => {
                            let v = Some(p.number()?.as_f64()?);
                            match i {
                                0 => c.exp = v,
                                1 => c.nbf = v,
                                _ => c.iat = v,
                            }
                            true
                        }
                        _ => false,
                    },
                    3..=6 => match p.peek() {
                        Some(b'"') => {
                            let s = p.string()?;
                            c.strings[i - 3] = Some(text_span(&s, &mut decoded));
                            true
                        }
                        _ => false,
                    },
                    _ => match p.peek() {
                        Some(b'"') => {
                            let s = p.string()?;
                            c.aud = Aud::One(text_span(&s, &mut decoded));
                            true
                        }
                        Some(b'[') => {
                            let mut all = Vec::new();
                            let mut strings = true;
                            p.array(2, |p| {
                                if p.peek() == Some(b'"') {
                                    let s = p.string()?;
                                    all.push(text_span(&s, &mut decoded));
                                } else {
                                    strings = false;
                                    p.skip(3)?;
                                }
                                Ok(())
                            })?;
                            c.aud = Aud::Many(all);
                            if !strings {
                                wrong_type |= 1 << i;
                            }
                            true
                        }
                        _ => false,
                    },
                };
                if !consumed {
                    wrong_type |= 1 << i;
                    p.skip(2)?;
                }
                c.values[i] = Some(span_to(p, start));
                Ok(true)
            });
            r.and_then(|()| p.end())
        };
        if parsed.is_err() {
            return Err(Error::Parse(ParseError::PayloadJson));
        }
        if wrong_type != 0 {
            let first = wrong_type.trailing_zeros() as usize;
            return Err(Error::Claims(ClaimsError::Type(REGISTERED[first].1)));
        }
        c.json_len = text.len() as u32;
        c.text = text;
        if !decoded.is_empty() {
            c.text.push_str(&decoded);
            let base = c.json_len;
            for s in c.strings.iter_mut().flatten() {
                relocate(s, base);
            }
            match &mut c.aud {
                Aud::None => {}
                Aud::One(s) => relocate(s, base),
                Aud::Many(v) => v.iter_mut().for_each(|s| relocate(s, base)),
            }
        }
        Ok(c)
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
            if self.aud == Aud::None {
                return Err(ClaimsError::Missing(Claim::Aud));
            }
            if !self.audiences().any(|a| audiences.iter().any(|x| x == a)) {
                return Err(ClaimsError::Audience);
            }
        }
        for name in &policy.required_claims {
            if !self.contains(name) {
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
        if let Some(exp) = self.exp {
            if now >= exp + leeway {
                return Err(ClaimsError::Expired);
            }
        }
        if let Some(nbf) = self.nbf {
            if now < nbf - leeway {
                return Err(ClaimsError::NotYetValid);
            }
        }
        Ok(())
    }

    /// The payload's JSON text, exactly as signed.
    pub fn json(&self) -> &str {
        &self.text[..self.json_len as usize]
    }

    /// Whether a claim of this name is present.
    pub fn contains(&self, name: &str) -> bool {
        match registered(name) {
            Some(i) => self.values[i].is_some(),
            None => self.member(name).is_some(),
        }
    }

    /// Any claim by name, as a `serde_json` value built on demand from the payload.
    pub fn get(&self, name: &str) -> Option<Value> {
        let span = match registered(name) {
            Some(i) => self.values[i]?,
            None => self.member(name)?.value,
        };
        let mut p = Parser::new(&self.json()[span.range()]);
        // The payload parsed once: its members parse again (inside the top-level object).
        p.value(2).ok()
    }

    /// All claims as a `serde_json` map, built on demand from the payload.
    pub fn to_map(&self) -> Map<String, Value> {
        // The payload is a strict JSON object (checked on construction).
        json::parse_object(self.json().as_bytes()).unwrap_or_default()
    }

    /// All claims as a `serde_json` map, by value.
    pub fn into_map(self) -> Map<String, Value> {
        self.to_map()
    }

    /// Names of the claims that are not registered claims the verifier reads, in
    /// payload order.
    pub fn other_names(&self) -> impl Iterator<Item = alloc::borrow::Cow<'_, str>> {
        self.others.iter().map(|m| {
            let raw = &self.json()[m.name.range()];
            if m.escaped {
                alloc::borrow::Cow::Owned(json::unescape(raw))
            } else {
                alloc::borrow::Cow::Borrowed(raw)
            }
        })
    }

    /// `exp`, seconds since the epoch.
    pub fn exp(&self) -> Option<f64> {
        self.exp
    }

    /// `nbf`, seconds since the epoch.
    pub fn nbf(&self) -> Option<f64> {
        self.nbf
    }

    /// `iat`, seconds since the epoch.
    pub fn iat(&self) -> Option<f64> {
        self.iat
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.string(0)
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.string(1)
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.string(2)
    }

    /// `sid`.
    pub fn sid(&self) -> Option<&str> {
        self.string(3)
    }

    /// The audiences (`aud` as a string or each string of the array).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<Span>, &[Span]) = match &self.aud {
            Aud::None => (None, &[]),
            Aud::One(s) => (Some(*s), &[]),
            Aud::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter().copied()).map(|s| &self.text[s.range()])
    }

    fn string(&self, i: usize) -> Option<&str> {
        self.strings[i].map(|s| &self.text[s.range()])
    }

    fn member(&self, name: &str) -> Option<&Member> {
        self.others.iter().find(|m| {
            let raw = &self.json()[m.name.range()];
            if m.escaped {
                json::unescape(raw) == name
            } else {
                raw == name
            }
        })
    }
}

/// Where a string's value is: in the JSON itself, or (written with escapes) in the
/// decoded text appended after it; `decoded` is what will be appended.
fn text_span(s: &RawStr<'_>, decoded: &mut String) -> Span {
    if s.escaped {
        // Offsets into `decoded` for now; moved past the JSON by [`relocate`].
        let start = decoded.len();
        decoded.push_str(&json::unescape(s.raw));
        Span { start: start as u32 | ESCAPED_BIT, end: decoded.len() as u32 | ESCAPED_BIT }
    } else {
        Span::of(s)
    }
}

/// Marks a span into the decoded text during parsing (payloads are far below 2^31).
const ESCAPED_BIT: u32 = 1 << 31;

/// Moves a span into the decoded text to where that text ends up: after the JSON.
fn relocate(s: &mut Span, base: u32) {
    if s.start & ESCAPED_BIT != 0 {
        s.start = (s.start & !ESCAPED_BIT) + base;
        s.end = (s.end & !ESCAPED_BIT) + base;
    }
}

fn value_start(p: &mut Parser<'_>) -> usize {
    p.peek();
    p.pos()
}

fn span_to(p: &Parser<'_>, start: usize) -> Span {
    Span::new(start, p.pos())
}

fn claim_of(name: &str) -> Claim {
    match registered(name) {
        Some(i) => REGISTERED[i].1,
        None => Claim::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Result<Claims, Error> {
        Claims::from_verified_payload(json.as_bytes().to_vec())
    }

    #[test]
    fn registered_names_index_their_table() {
        for (i, (name, _)) in REGISTERED.iter().enumerate() {
            assert_eq!(registered(name), Some(i));
        }
        assert_eq!(registered("ex"), None);
        assert_eq!(registered("expx"), None);
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
        // Malformed JSON is reported before a wrong type, wherever it is.
        assert_eq!(claims(r#"{"exp":"1","x":}"#).unwrap_err().reason(), crate::Reason::Malformed);
        assert_eq!(claims(r#"{"exp":"1","x":1,"x":2}"#).unwrap_err().reason(), crate::Reason::Malformed);
        // Type errors in the fixed order, whatever the member order.
        assert_eq!(claims(r#"{"aud":1,"sub":2,"nbf":"x"}"#).unwrap_err(), Error::Claims(ClaimsError::Type(Claim::Nbf)));
        // A duplicate registered claim, also in an escaped spelling.
        assert_eq!(claims(r#"{"exp":1,"exp":2}"#).unwrap_err().reason(), crate::Reason::Malformed);
        assert_eq!(claims(r#"{"sub":"a","\u0073ub":"b"}"#).unwrap_err().reason(), crate::Reason::Malformed);
    }

    #[test]
    fn typed_accessors_and_general_values() {
        let c = claims(
            r#"{ "iss":"https://i", "sub":"a\u00e9\"b", "aud":["x","y\n"], "exp":1763800000, "iat":1.5e3,
                 "role":"admin", "ro\u006ces":["a","b"], "n":{"deep":[1,{"k":null}]} }"#,
        )
        .unwrap();
        assert_eq!(c.iss(), Some("https://i"));
        assert_eq!(c.sub(), Some("aé\"b"));
        assert_eq!(c.audiences().collect::<Vec<_>>(), ["x", "y\n"]);
        assert_eq!((c.exp(), c.iat(), c.nbf()), (Some(1_763_800_000.0), Some(1500.0), None));
        assert_eq!(c.jti(), None);
        assert_eq!(c.get("role"), Some(Value::String("admin".into())));
        assert_eq!(c.get("roles"), Some(serde_json::json!(["a", "b"])));
        assert_eq!(c.get("sub"), Some(Value::String("aé\"b".into())));
        assert_eq!(c.get("exp"), Some(serde_json::json!(1763800000)));
        assert_eq!(c.get("missing"), None);
        assert!(c.contains("n") && c.contains("exp") && !c.contains("nbf"));
        assert_eq!(c.other_names().collect::<Vec<_>>(), ["role", "roles", "n"]);
        let theirs: Map<String, Value> = serde_json::from_str(c.json()).unwrap();
        assert_eq!(c.to_map(), theirs);
        assert!(c.json().starts_with("{ \"iss\""));
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
            required_claims: alloc::vec!["exp".into(), "jti".into(), "role".into()],
            ..Policy::default()
        };
        let c = claims(r#"{"exp":10,"iss":"j"}"#).unwrap();
        assert_eq!(c.check(&p, 0), Err(ClaimsError::Issuer));
        let c = claims(r#"{"exp":10,"iss":"i"}"#).unwrap();
        assert_eq!(c.check(&p, 0), Err(ClaimsError::Missing(Claim::Aud)));
        let c = claims(r#"{"exp":10,"iss":"i","aud":["b","a"]}"#).unwrap();
        assert_eq!(c.check(&p, 0), Err(ClaimsError::Missing(Claim::Jti)));
        let c = claims(r#"{"exp":10,"iss":"i","aud":"a","jti":"x"}"#).unwrap();
        assert_eq!(c.check(&p, 0), Err(ClaimsError::Missing(Claim::Other)));
        let c = claims(r#"{"exp":10,"iss":"i","aud":"a","jti":"x","role":null}"#).unwrap();
        assert_eq!(c.check(&p, 0), Ok(()));
        assert_eq!(c.check(&p, 10), Err(ClaimsError::Expired));
    }

    #[test]
    fn nesting_bound_is_128_levels_with_the_claims_object() {
        let nested = |levels: usize| {
            // The claims object is level 1; the claim's value adds `levels - 1`.
            let inner = "[".repeat(levels - 1) + &"]".repeat(levels - 1);
            alloc::format!(r#"{{"exp":1,"deep":{inner}}}"#)
        };
        assert!(claims(&nested(100)).is_ok());
        assert!(claims(&nested(128)).is_ok());
        assert_eq!(claims(&nested(129)).unwrap_err(), Error::Parse(ParseError::PayloadJson));
    }
}
