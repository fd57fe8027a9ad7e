//! Strict JSON (RFC 8259), parsed in one pass by hand.
//!
//! What is accepted: UTF-8 text without a byte order mark; one value with optional
//! whitespace around it; no duplicate member names in any object at any depth (names
//! compared after decoding escapes, so `"a"` and `"\u0061"` are the same name); at most
//! [`MAX_DEPTH`] levels of nested arrays and objects, the outermost counting as one;
//! finite numbers only (`1e400` is refused); strings without raw control characters
//! and without lone UTF-16 surrogates in `\u` escapes. Everything else RFC 8259 allows
//! is accepted, as `serde_json` would.
//!
//! The same [`Parser`] serves three callers: the token header and the claims read
//! their registered members into typed fields as they go (the `token` and `claims`
//! modules) and only validate the rest; [`parse_value`] builds a `serde_json::Value`
//! for the callers that want a general tree (JWKS documents, claims by name).
//!
//! Costs and bounds: time is linear in the input, except that an object's member
//! names are compared pairwise up to 16 members and sorted beyond that (O(n log n)),
//! so a header of thousands of members costs no more than sorting them. Recursion is
//! bounded by [`MAX_DEPTH`]. Only decoded escaped names and the general tree allocate.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Number, Value};

/// Most levels of nested arrays and objects accepted, the outermost value counting as
/// one (`{"a":[1]}` has two). 129 and more are refused as malformed.
pub const MAX_DEPTH: usize = 128;

/// The input is not strict JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

pub(crate) type Result<T> = core::result::Result<T, Invalid>;

/// A string as written between its quotes, escapes not yet decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawStr<'a> {
    /// The text between the quotes.
    pub(crate) raw: &'a str,
    /// Offset of `raw` in the parser's input.
    pub(crate) start: usize,
    /// Whether `raw` holds a backslash escape.
    pub(crate) escaped: bool,
}

impl<'a> RawStr<'a> {
    /// The string's value, borrowed when it has no escapes.
    pub(crate) fn decode(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

/// A number as written, and whether it is an integer (no fraction, no exponent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawNum<'a> {
    pub(crate) text: &'a str,
    pub(crate) integer: bool,
}

impl RawNum<'_> {
    /// The value as `serde_json` represents it: integers that fit as `u64` or `i64`
    /// exactly, everything else as a finite `f64`.
    pub(crate) fn number(&self) -> Result<Number> {
        if self.integer {
            if let Some(digits) = self.text.strip_prefix('-') {
                if let Ok(v) = digits.parse::<u64>() {
                    if v == 0 {
                        // serde_json keeps the sign of negative zero, as a float.
                        return Number::from_f64(-0.0).ok_or(Invalid);
                    }
                    if v <= 1 << 63 {
                        return Ok(Number::from((v as i64).wrapping_neg()));
                    }
                }
            } else if let Ok(v) = self.text.parse::<u64>() {
                return Ok(Number::from(v));
            }
        }
        Number::from_f64(self.float()?).ok_or(Invalid)
    }

    /// The value as an `f64` (what `serde_json::Value::as_f64` gives).
    pub(crate) fn as_f64(&self) -> Result<f64> {
        if self.integer && self.text.len() <= 15 {
            // At most 15 digits: exact in an f64, and the common case (`exp`, `iat`).
            let (neg, digits) = match self.text.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, self.text),
            };
            let mut v: u64 = 0;
            for b in digits.bytes() {
                v = v * 10 + u64::from(b - b'0');
            }
            let f = v as f64;
            return Ok(if neg { -f } else { f });
        }
        match self.number()?.as_f64() {
            Some(f) => Ok(f),
            None => Err(Invalid),
        }
    }

    fn float(&self) -> Result<f64> {
        match self.text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(f),
            _ => Err(Invalid),
        }
    }
}

/// A strict JSON parser over UTF-8 text.
pub(crate) struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Member names of the objects being parsed, innermost last (see [`Parser::names`]).
    names: Vec<Cow<'a, str>>,
}

impl<'a> Parser<'a> {
    /// A parser at the start of `src`.
    pub(crate) fn new(src: &'a str) -> Parser<'a> {
        Parser { src, bytes: src.as_bytes(), pos: 0, names: Vec::new() }
    }

    /// The current offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Skips whitespace and returns the next byte, without taking it.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                _ => return Some(b),
            }
        }
        None
    }

    /// Skips whitespace, then takes `b` or fails.
    pub(crate) fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Succeeds when only whitespace is left.
    pub(crate) fn end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Invalid),
        }
    }

    /// Iterates over the members of an object (the `{` not yet taken) nested at
    /// `depth` (the object's own level: 1 for the outermost value). `member` is given
    /// the decoded name and must consume the value; it returns whether the name is one
    /// it tracks itself (and so checks for duplicates itself). Other names are checked
    /// for duplicates here.
    pub(crate) fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Parser<'a>, RawStr<'a>, &str) -> Result<bool>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Invalid);
        }
        self.expect(b'{')?;
        let mark = self.names.len();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(Invalid);
            }
            let raw = self.string()?;
            let name = raw.decode();
            self.expect(b':')?;
            if !member(self, raw, &name)? {
                self.names.push(name);
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Invalid),
            }
        }
        let unique = all_distinct(&mut self.names[mark..]);
        self.names.truncate(mark);
        if unique {
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Iterates over the elements of an array (the `[` not yet taken) nested at
    /// `depth`; `element` must consume each element.
    pub(crate) fn array(&mut self, depth: usize, mut element: impl FnMut(&mut Parser<'a>) -> Result<()>) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Invalid);
        }
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Validates one value nested at `depth` (its own level if it is a container) and
    /// skips it.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<()> {
        match self.peek().ok_or(Invalid)? {
            b'{' => self.object(depth, |p, _, _| p.skip(depth + 1).map(|()| false)),
            b'[' => self.array(depth, |p| p.skip(depth + 1)),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => {
                let n = self.number()?;
                if !n.integer || n.text.len() > 18 {
                    // Only these can be out of range (1e400, 400 digits).
                    n.number()?;
                }
                Ok(())
            }
        }
    }

    /// Parses one value nested at `depth` into a `serde_json::Value`.
    pub(crate) fn value(&mut self, depth: usize) -> Result<Value> {
        match self.peek().ok_or(Invalid)? {
            b'{' => {
                let mut map = Map::new();
                self.object(depth, |p, _, name| {
                    let v = p.value(depth + 1)?;
                    match map.insert(String::from(name), v) {
                        None => Ok(true),
                        Some(_) => Err(Invalid),
                    }
                })?;
                Ok(Value::Object(map))
            }
            b'[' => {
                let mut items = Vec::new();
                self.array(depth, |p| {
                    items.push(p.value(depth + 1)?);
                    Ok(())
                })?;
                Ok(Value::Array(items))
            }
            b'"' => Ok(Value::String(self.string()?.decode().into_owned())),
            b't' => self.literal(b"true").map(|()| Value::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Value::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Value::Null),
            _ => Ok(Value::Number(self.number()?.number()?)),
        }
    }

    /// A string (at its opening quote: after [`Parser::peek`] saw it).
    pub(crate) fn string(&mut self) -> Result<RawStr<'a>> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(Invalid);
        }
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos += plain_prefix(self.bytes, self.pos);
            match *self.bytes.get(self.pos).ok_or(Invalid)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(Invalid),
            }
        }
        let raw = self.src.get(start..self.pos).ok_or(Invalid)?;
        self.pos += 1;
        Ok(RawStr { raw, start, escaped })
    }

    /// A number (at its first character), checked against the JSON grammar.
    pub(crate) fn number(&mut self) -> Result<RawNum<'a>> {
        let start = self.pos;
        let b = self.bytes;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return Err(Invalid),
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            if !b.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(Invalid);
            }
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !b.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(Invalid);
            }
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        self.pos = i;
        Ok(RawNum { text: self.src.get(start..i).ok_or(Invalid)?, integer })
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// A backslash escape (at the backslash).
    fn escape(&mut self) -> Result<()> {
        match self.bytes.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(self.pos + 2)?;
                self.pos += 6;
                match unit {
                    0xd800..=0xdbff => {
                        // A high surrogate must be followed by an escaped low one.
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(Invalid);
                        }
                        if !(0xdc00..=0xdfff).contains(&self.hex4(self.pos + 2)?) {
                            return Err(Invalid);
                        }
                        self.pos += 6;
                        Ok(())
                    }
                    0xdc00..=0xdfff => Err(Invalid),
                    _ => Ok(()),
                }
            }
            _ => Err(Invalid),
        }
    }

    fn hex4(&self, at: usize) -> Result<u32> {
        let digits = self.bytes.get(at..at + 4).ok_or(Invalid)?;
        let mut v = 0u32;
        for &d in digits {
            let x = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(Invalid),
            };
            v = (v << 4) | u32::from(x);
        }
        Ok(v)
    }
}

/// The offset, from `at`, of the first byte of `b` at or after `at` that is not plain
/// string content: `"`, `\\` or a control character (`b.len()` if none). Eight bytes
/// at a time, reading past the string into what follows it in the document when there
/// is room (the bit tricks find, in a 64-bit word, the bytes equal to `"` or `\\` or
/// below 0x20; the lowest one they flag is exact).
fn plain_prefix(b: &[u8], at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = at;
    while let Some(c) = b.get(i..i + 8) {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let hits = hits & HIGH;
        if hits != 0 {
            return i - at + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i - at + b[i.min(b.len())..].iter().take_while(|&&c| !matches!(c, b'"' | b'\\' | 0..=0x1f)).count()
}

/// Whether no two names are equal: pairwise for small objects, sorted beyond.
fn all_distinct(names: &mut [Cow<'_, str>]) -> bool {
    if names.len() <= 16 {
        (1..names.len()).all(|i| !names[..i].contains(&names[i]))
    } else {
        names.sort_unstable();
        names.windows(2).all(|w| w[0] != w[1])
    }
}

/// Decodes the escapes of a string the parser has validated.
pub(crate) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let b = rest.as_bytes();
        let (c, used) = match b.get(i + 1) {
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => {
                let unit = hex_at(b, i + 2);
                if (0xd800..=0xdbff).contains(&unit) {
                    let low = hex_at(b, i + 8);
                    let c = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                    (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 12)
                } else {
                    (char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER), 6)
                }
            }
            Some(&c) => (char::from(c), 2),
            None => break,
        };
        out.push(c);
        rest = rest.get(i + used..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

fn hex_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |digits| digits.iter().fold(0, |v, &d| (v << 4) | char::from(d).to_digit(16).unwrap_or(0)))
}

/// Parses `bytes` as any strict JSON value.
pub(crate) fn parse_value(bytes: &[u8]) -> Option<Value> {
    let src = core::str::from_utf8(bytes).ok()?;
    let mut p = Parser::new(src);
    let v = p.value(1).ok()?;
    p.end().ok()?;
    Some(v)
}

/// Parses `bytes` as a strict JSON object.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match parse_value(bytes)? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn ok(s: &str) -> bool {
        parse_value(s.as_bytes()).is_some()
    }

    #[test]
    fn accepts_plain_objects() {
        let m = parse_object(br#"{"a":1,"b":[1,2,{"c":null}],"d":"\u00e9"}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m["d"], Value::String("é".into()));
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(parse_object(br#"{"x":{"a":1,"a":2}}"#).is_none());
        assert!(parse_object(br#"{"x":[{"a":1,"a":2}]}"#).is_none());
        // Escaped spelling of the same name is still a duplicate.
        assert!(parse_object(br#"{"a":1,"\u0061":2}"#).is_none());
        // Same names in sibling objects are fine.
        assert!(parse_object(br#"{"x":{"a":1},"y":{"a":2}}"#).is_some());
        // Many members: the sorted check.
        let many: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
        assert!(ok(&format!("{{{}}}", many.join(","))));
        assert!(!ok(&format!("{{{},\"m7\":0}}", many.join(","))));
    }

    #[test]
    fn rejects_non_objects_bom_and_garbage() {
        assert!(parse_object(b"[1]").is_none());
        assert!(parse_object(b"\xef\xbb\xbf{}").is_none());
        assert!(parse_object(b"{} x").is_none());
        assert!(parse_object(b"{\"a\":\"\xff\"}").is_none());
        assert!(parse_object(b"").is_none());
        for bad in [
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[+1]",
            "[-]",
            "[tru]",
            "[nul]",
            "{'a':1}",
            "{\"a\":1 \"b\":2}",
            "[\"\t\"]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"\\ud800\"]",
            "[\"\\udc00\"]",
            "[\"\\ud800\\u0041\"]",
            "[1e400]",
            "[-1e400]",
            "[NaN]",
            "[Infinity]",
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
        for good in [
            " {} ",
            "[]",
            "[1,-0,0.5,1e5,1E-5,-1.25e+3]",
            "\"\\ud83d\\ude00\"",
            "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
            "[true,false,null]",
            "1",
            "[1e-400]",
            "[123456789012345678901234567890]",
        ] {
            assert!(ok(good), "{good:?}");
        }
    }

    #[test]
    fn values_match_serde_json() {
        for s in [
            r#"{"a":[1,-2,3.5,-0,18446744073709551615,-9223372036854775808,1e300,"x\u00e9\ud83d\ude00\n"],"b":{"c":true}}"#,
            "[12345678901234567890123, -12345678901234567890123, 0.1, 2.5e-3]",
        ] {
            let ours = parse_value(s.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(s).unwrap();
            assert_eq!(ours, theirs, "{s}");
        }
    }

    #[test]
    fn f64_of_integers_and_floats() {
        for (text, integer, want) in [
            ("1763800000", true, 1_763_800_000.0),
            ("-5", true, -5.0),
            ("123456789012345678", true, 123_456_789_012_345_678.0),
            ("1.5", false, 1.5),
            ("1e3", false, 1000.0),
        ] {
            assert_eq!(RawNum { text, integer }.as_f64(), Ok(want), "{text}");
        }
    }

    #[test]
    fn nesting_up_to_128_levels() {
        let nest = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(parse_value(nest(MAX_DEPTH).as_bytes()).is_some());
        assert!(parse_value(nest(MAX_DEPTH + 1).as_bytes()).is_none());
        let objects = |n: usize| "{\"a\":".repeat(n - 1) + "{}" + &"}".repeat(n - 1);
        assert!(parse_value(objects(MAX_DEPTH).as_bytes()).is_some());
        assert!(parse_value(objects(MAX_DEPTH + 1).as_bytes()).is_none());
        // Far deeper input is refused without exhausting the stack.
        assert!(parse_value(nest(100_000).as_bytes()).is_none());
    }

    #[test]
    fn plain_prefix_stops_at_the_first_special_byte() {
        let mut text: Vec<u8> = (0x20u8..0x7f).filter(|&c| c != b'"' && c != b'\\').collect();
        text.extend_from_slice("é😀".as_bytes());
        for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..text.len() {
                let mut t = text.clone();
                t.insert(at, stop);
                assert_eq!(plain_prefix(&t, 0), at, "{stop:#x} at {at}");
                if at > 3 {
                    assert_eq!(plain_prefix(&t, 3), at - 3, "{stop:#x} at {at}, from 3");
                }
            }
        }
        assert_eq!(plain_prefix(&text, 0), text.len());
        assert_eq!(plain_prefix(&text, text.len()), 0);
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape(r"a\u0062\n\ud83d\ude00\/"), "ab\n😀/");
    }
}
