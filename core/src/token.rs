//! Compact JWS parsing. Trust is a type: an [`UnverifiedToken`] exposes its header
//! and nothing else; claims exist only on a [`crate::VerifiedToken`].

use alloc::string::String;
use alloc::vec::Vec;

use crate::alg::Algorithm;
use crate::b64;
use crate::error::{Error, ParseError};
use crate::json::{self, Parser, RawStr};

/// A range of a [`Header`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> core::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The protected header: its JSON, and the members the verifier reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's JSON, then the decoded text of members written with escapes.
    text: String,
    json_len: u32,
    alg_name: Span,
    alg: Option<Algorithm>,
    kid: Option<Span>,
    typ: Option<Span>,
    crit: bool,
}

impl Header {
    /// `alg`, when it is one this verifier implements.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// `alg`, exactly as written.
    pub fn alg_name(&self) -> &str {
        &self.text[self.alg_name.range()]
    }

    /// `kid`, when present.
    pub fn kid(&self) -> Option<&str> {
        self.kid.map(|s| &self.text[s.range()])
    }

    /// `typ`, when present and a string.
    pub fn typ(&self) -> Option<&str> {
        self.typ.map(|s| &self.text[s.range()])
    }

    /// Whether a `crit` member is present.
    pub fn crit(&self) -> bool {
        self.crit
    }

    /// The header's JSON text, as signed.
    pub fn json(&self) -> &str {
        &self.text[..self.json_len as usize]
    }
}

/// Most signature bytes kept inline: an ES256 signature; longer (RS256) ones go to
/// the heap (kept inline they would cost more in moves than the allocation does).
const INLINE_SIGNATURE: usize = 64;

/// The decoded signature.
#[derive(Clone)]
enum Signature {
    Inline { len: u16, bytes: [u8; INLINE_SIGNATURE] },
    Heap(Vec<u8>),
}

impl Signature {
    fn decode(encoded: &[u8]) -> Result<Signature, b64::Base64Error> {
        let n = b64::decoded_len(encoded.len());
        if n <= INLINE_SIGNATURE {
            let mut bytes = [0; INLINE_SIGNATURE];
            let len = b64::decode_to_slice(encoded, &mut bytes[..n])?;
            Ok(Signature::Inline { len: len as u16, bytes })
        } else {
            b64::decode(encoded).map(Signature::Heap)
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Signature::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Signature::Heap(v) => v,
        }
    }
}

impl core::fmt::Debug for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Signature({} bytes)", self.as_slice().len())
    }
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
    signature: Signature,
}

impl<'t> UnverifiedToken<'t> {
    /// Parses a compact JWS: size cap first, then exactly three canonical base64url
    /// segments, then a strict JSON header.
    pub fn parse(token: &'t str, max_bytes: usize) -> Result<UnverifiedToken<'t>, Error> {
        let bytes = token.as_bytes();
        if bytes.len() > max_bytes {
            return Err(Error::Parse(ParseError::TooLarge { len: bytes.len(), max: max_bytes }));
        }
        let dot = |from: usize| find_dot(&bytes[from..]).map(|i| from + i);
        let (Some(d1), Some(d2)) = (dot(0), dot(0).and_then(|d1| dot(d1 + 1))) else {
            return Err(Error::Parse(ParseError::Segments));
        };
        let (h, p, s) = (&bytes[..d1], &bytes[d1 + 1..d2], &bytes[d2 + 1..]);
        // A third dot can only be in `s`, where the decoder refuses it: so look for one
        // only when decoding fails, to say which error it is.
        let segments_or_base64 =
            |_| Error::Parse(if s.contains(&b'.') { ParseError::Segments } else { ParseError::Base64 });
        let header = b64::decode(h).map_err(segments_or_base64)?;
        let payload = b64::decode(p).map_err(segments_or_base64)?;
        let signature = Signature::decode(s).map_err(segments_or_base64)?;
        let header = parse_header(header)?;
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
        self.signature.as_slice()
    }

    /// Hands over the payload once the signature has been checked. Crate-private: the
    /// only callers are the verification steps that have just checked it.
    pub(crate) fn into_verified_payload(self) -> (Header, Vec<u8>) {
        (self.header, self.payload)
    }
}

/// The offset of the first `.` in `b`, eight bytes at a time (a `.` is the zero byte
/// of `word ^ 0x2e2e…`; the lowest byte the bit trick flags is exact).
fn find_dot(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut chunks = b.chunks_exact(8);
    let mut n = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ (ONES * u64::from(b'.'));
        let hits = w.wrapping_sub(ONES) & !w & (ONES << 7);
        if hits != 0 {
            return Some(n + (hits.trailing_zeros() / 8) as usize);
        }
        n += 8;
    }
    chunks.remainder().iter().position(|&c| c == b'.').map(|i| n + i)
}

/// A header member as found: absent, a string, or another JSON type.
enum Found<'a> {
    Absent,
    Str(RawStr<'a>),
    Other,
}

/// Parses the header in one pass without building a JSON map: `alg`, `kid` and `typ`
/// are read as they go by, `crit` is noted, and every other member is still parsed
/// strictly (no duplicate names at any depth) and dropped. Malformed JSON is reported
/// before a member of the wrong type.
fn parse_header(bytes: Vec<u8>) -> Result<Header, Error> {
    let mut text = String::from_utf8(bytes).map_err(|_| Error::Parse(ParseError::HeaderJson))?;
    let json_len = text.len();
    let mut decoded = String::new();
    let (alg_name, kid, typ, crit) = {
        let mut p = Parser::new(&text);
        let (mut alg, mut kid, mut typ, mut crit) = (Found::Absent, Found::Absent, Found::Absent, false);
        p.object(1, |p, _, name| {
            let slot = match name {
                "alg" => &mut alg,
                "kid" => &mut kid,
                "typ" => &mut typ,
                "crit" => {
                    if core::mem::replace(&mut crit, true) {
                        return Err(json::Invalid);
                    }
                    p.skip(2)?;
                    return Ok(true);
                }
                _ => {
                    p.skip(2)?;
                    return Ok(false);
                }
            };
            if !matches!(slot, Found::Absent) {
                return Err(json::Invalid);
            }
            *slot = if p.peek() == Some(b'"') {
                Found::Str(p.string()?)
            } else {
                p.skip(2)?;
                Found::Other
            };
            Ok(true)
        })
        .and_then(|()| p.end())
        .map_err(|_| Error::Parse(ParseError::HeaderJson))?;
        let mut span = |s: &RawStr<'_>| {
            if s.escaped {
                let start = json_len + decoded.len();
                decoded.push_str(&json::unescape(s.raw));
                Span { start: start as u32, end: (json_len + decoded.len()) as u32 }
            } else {
                Span { start: s.start as u32, end: (s.start + s.raw.len()) as u32 }
            }
        };
        let alg_name = match &alg {
            Found::Str(s) => span(s),
            _ => return Err(Error::Parse(ParseError::HeaderMember)),
        };
        let kid = match &kid {
            Found::Absent => None,
            Found::Str(s) => Some(span(s)),
            Found::Other => return Err(Error::Parse(ParseError::HeaderMember)),
        };
        // A non-string typ is not malformed structure: it fails the typ check, if any.
        let typ = match &typ {
            Found::Str(s) => Some(span(s)),
            _ => None,
        };
        (alg_name, kid, typ, crit)
    };
    text.push_str(&decoded);
    let alg = Algorithm::from_name(&text[alg_name.range()]);
    Ok(Header { text, json_len: json_len as u32, alg_name, alg, kid, typ, crit })
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
        assert_eq!(u.header().alg(), Some(Algorithm::Es256));
        assert_eq!(u.header().kid(), Some("k"));
        assert_eq!(u.header().typ(), Some("JWT"));
        assert_eq!(u.header().json(), r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#);
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
    fn header_nesting_up_to_128_levels() {
        let header = |levels: usize| {
            // The header object is level 1; the member's value adds `levels - 1`.
            let inner = "[".repeat(levels - 1) + &"]".repeat(levels - 1);
            format!(r#"{{"alg":"ES256","x":{inner}}}"#)
        };
        assert!(UnverifiedToken::parse(&tok(&header(100), "{}", &[1; 64]), 8192).is_ok());
        assert!(UnverifiedToken::parse(&tok(&header(128), "{}", &[1; 64]), 8192).is_ok());
        assert_eq!(
            UnverifiedToken::parse(&tok(&header(129), "{}", &[1; 64]), 8192).unwrap_err(),
            Error::Parse(ParseError::HeaderJson)
        );
    }

    #[test]
    fn find_dot_finds_the_first() {
        let text: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz0123456789-_".to_vec();
        assert_eq!(find_dot(&text), None);
        for at in 0..text.len() {
            let mut t = text.clone();
            t.insert(at, b'.');
            t.push(b'.');
            assert_eq!(find_dot(&t), Some(at));
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
