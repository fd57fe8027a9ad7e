//! Compact JWS parsing. Trust is a type: an [`UnverifiedToken`] exposes its header
//! and nothing else; claims exist only on a [`crate::VerifiedToken`].

use alloc::string::String;
use alloc::vec::Vec;

use serde::de;
use serde_json::Value;

use crate::alg::Algorithm;
use crate::b64;
use crate::error::{Error, ParseError};
use crate::json;

/// The protected header members the verifier reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg`, exactly as written.
    pub alg_name: String,
    /// `alg`, when it is one this verifier implements.
    pub alg: Option<Algorithm>,
    /// `kid`, when present.
    pub kid: Option<String>,
    /// `typ`, when present.
    pub typ: Option<String>,
    /// Whether a `crit` member is present.
    pub crit: bool,
}

/// A structurally valid token whose signature has not been checked.
///
/// The payload has been base64url-decoded (so encoding errors are found with the
/// structure) but its JSON is not parsed and not reachable.
#[derive(Debug, Clone)]
pub struct UnverifiedToken<'t> {
    header: Header,
    signing_input: &'t [u8],
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'t> UnverifiedToken<'t> {
    /// Parses a compact JWS: size cap first, then exactly three canonical base64url
    /// segments, then a strict JSON header.
    pub fn parse(token: &'t str, max_bytes: usize) -> Result<UnverifiedToken<'t>, Error> {
        let bytes = token.as_bytes();
        if bytes.len() > max_bytes {
            return Err(Error::Parse(ParseError::TooLarge { len: bytes.len(), max: max_bytes }));
        }
        let mut dots = memchr_dots(bytes);
        let (Some(d1), Some(d2), None) = (dots.next(), dots.next(), dots.next()) else {
            return Err(Error::Parse(ParseError::Segments));
        };
        let (h, p, s) = (&bytes[..d1], &bytes[d1 + 1..d2], &bytes[d2 + 1..]);
        let bad64 = |_| Error::Parse(ParseError::Base64);
        let header_bytes = b64::decode(h).map_err(bad64)?;
        let payload = b64::decode(p).map_err(bad64)?;
        let signature = b64::decode(s).map_err(bad64)?;
        let header = parse_header(&header_bytes)?;
        Ok(UnverifiedToken { header, signing_input: &bytes[..d2], payload, signature })
    }

    /// The protected header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The bytes the signature covers (`base64url(header) . base64url(payload)`).
    pub fn signing_input(&self) -> &'t [u8] {
        self.signing_input
    }

    /// The decoded signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Hands over the payload once the signature has been checked. Crate-private: the
    /// only callers are the verification steps that have just checked it.
    pub(crate) fn into_verified_payload(self) -> (Header, Vec<u8>) {
        (self.header, self.payload)
    }
}

fn memchr_dots(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes.iter().enumerate().filter(|(_, &b)| b == b'.').map(|(i, _)| i)
}

/// Parses the header in one pass without building a JSON map: the members the verifier
/// reads are taken by value, every other member is still parsed strictly (no duplicate
/// names at any depth) and dropped. A third of the non-signature cost of a verification
/// was building and cloning out of a `serde_json` map here.
fn parse_header(bytes: &[u8]) -> Result<Header, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let fields =
        de::Deserializer::deserialize_any(&mut de, HeaderVisitor).map_err(|_| Error::Parse(ParseError::HeaderJson))?;
    de.end().map_err(|_| Error::Parse(ParseError::HeaderJson))?;
    let as_string = |v: Option<Value>| -> Result<Option<String>, Error> {
        match v {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::Parse(ParseError::HeaderMember)),
        }
    };
    let alg_name = as_string(fields.alg)?.ok_or(Error::Parse(ParseError::HeaderMember))?;
    let kid = as_string(fields.kid)?;
    // A non-string typ is not malformed structure: it fails the typ check, if any.
    let typ = match fields.typ {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(Header { alg: Algorithm::from_name(&alg_name), alg_name, kid, typ, crit: fields.crit })
}

#[derive(Default)]
struct HeaderFields {
    alg: Option<Value>,
    kid: Option<Value>,
    typ: Option<Value>,
    crit: bool,
}

enum HeaderKey {
    Alg,
    Kid,
    Typ,
    Crit,
    Other(String),
}

struct HeaderKeyVisitor;

impl<'de> de::Visitor<'de> for HeaderKeyVisitor {
    type Value = HeaderKey;
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderKey, E> {
        Ok(match v {
            "alg" => HeaderKey::Alg,
            "kid" => HeaderKey::Kid,
            "typ" => HeaderKey::Typ,
            "crit" => HeaderKey::Crit,
            other => HeaderKey::Other(String::from(other)),
        })
    }
}

impl<'de> de::Deserialize<'de> for HeaderKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<HeaderKey, D::Error> {
        d.deserialize_str(HeaderKeyVisitor)
    }
}

struct HeaderVisitor;

impl<'de> de::Visitor<'de> for HeaderVisitor {
    type Value = HeaderFields;
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a json object")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<HeaderFields, A::Error> {
        let mut h = HeaderFields::default();
        let mut others: Vec<String> = Vec::new();
        let dup = || de::Error::custom("duplicate member name");
        while let Some(key) = map.next_key::<HeaderKey>()? {
            let json::Nested(v) = map.next_value_seed(json::Seed { depth: 1 })?;
            let slot = match key {
                HeaderKey::Alg => &mut h.alg,
                HeaderKey::Kid => &mut h.kid,
                HeaderKey::Typ => &mut h.typ,
                HeaderKey::Crit => {
                    if core::mem::replace(&mut h.crit, true) {
                        return Err(dup());
                    }
                    continue;
                }
                HeaderKey::Other(name) => {
                    if others.contains(&name) {
                        return Err(dup());
                    }
                    others.push(name);
                    continue;
                }
            };
            if slot.replace(v).is_some() {
                return Err(dup());
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn tok(header: &str, payload: &str, sig: &[u8]) -> String {
        format!("{}.{}.{}", b64::encode(header.as_bytes()), b64::encode(payload.as_bytes()), b64::encode(sig))
    }

    #[test]
    fn parses_header_only() {
        let t = tok(r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#, r#"{"sub":"x"}"#, &[1; 64]);
        let u = UnverifiedToken::parse(&t, 8192).unwrap();
        assert_eq!(u.header().alg, Some(Algorithm::Es256));
        assert_eq!(u.header().kid.as_deref(), Some("k"));
        assert_eq!(u.signature().len(), 64);
        assert_eq!(u.signing_input(), t.rsplit_once('.').unwrap().0.as_bytes());
    }

    #[test]
    fn payload_json_is_not_parsed_before_verification() {
        let t = tok(r#"{"alg":"ES256"}"#, "not json at all", &[1; 64]);
        assert!(UnverifiedToken::parse(&t, 8192).is_ok());
    }

    #[test]
    fn structural_errors() {
        let good = tok(r#"{"alg":"ES256"}"#, "{}", &[1; 64]);
        let cases = [
            (String::from("a.b"), ParseError::Segments),
            (format!("{good}.x"), ParseError::Segments),
            (format!("{good}="), ParseError::Base64),
            (tok("alg=ES256", "{}", &[]), ParseError::HeaderJson),
            (tok(r#"["ES256"]"#, "{}", &[]), ParseError::HeaderJson),
            (tok(r#"{"alg":"ES256","alg":"none"}"#, "{}", &[]), ParseError::HeaderJson),
            (tok(r#"{"alg":"ES256","\u0061lg":"none"}"#, "{}", &[]), ParseError::HeaderJson),
            (tok(r#"{"alg":"ES256","crit":["x"],"crit":[]}"#, "{}", &[]), ParseError::HeaderJson),
            (tok(r#"{"alg":"ES256","x5u":"a","x5u":"b"}"#, "{}", &[]), ParseError::HeaderJson),
            (tok(r#"{"alg":"ES256","jwk":{"kty":"EC","kty":"RSA"}}"#, "{}", &[]), ParseError::HeaderJson),
            (tok(r#"{"alg":"ES256"} {}"#, "{}", &[]), ParseError::HeaderJson),
            (tok("\u{feff}{\"alg\":\"ES256\"}", "{}", &[]), ParseError::HeaderJson),
            (tok(r#"{"alg":5}"#, "{}", &[]), ParseError::HeaderMember),
            (tok(r#"{"kid":"x"}"#, "{}", &[]), ParseError::HeaderMember),
            (tok(r#"{"alg":"ES256","kid":1}"#, "{}", &[]), ParseError::HeaderMember),
        ];
        for (t, want) in cases {
            assert_eq!(UnverifiedToken::parse(&t, 8192).unwrap_err(), Error::Parse(want), "{t}");
        }
    }

    #[test]
    fn size_cap_is_checked_first() {
        let t = "x".repeat(20);
        assert_eq!(
            UnverifiedToken::parse(&t, 10).unwrap_err(),
            Error::Parse(ParseError::TooLarge { len: 20, max: 10 })
        );
    }
}
