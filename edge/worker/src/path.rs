//! The canonical form of a request path: what route rules are matched against and what
//! the origin is sent, so that the Worker and the origin cannot disagree about which
//! resource a request names.
//!
//! The runtime hands the Worker the path after WHATWG URL parsing, which resolves dot
//! segments (`..`, `%2e%2e`, `.%2E`, ...) and turns `\` into `/`, but keeps `//` and
//! every percent-encoding as sent (`%61`, `%2f`, `%7e`). An origin that decodes or
//! merges slashes before routing (nginx, WSGI's `PATH_INFO`, most frameworks) would
//! then serve `/%61dmin/x` or `//admin/x` as `/admin/x`, a path a rule for `/admin/*`
//! never saw. [`canonical`] removes that freedom, in one pass over the bytes:
//!
//! | in the path | becomes |
//! |---|---|
//! | `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) | that character (`%61` → `a`) |
//! | any other `%XX` | `%XX` with upper-case hex (`%c3%a9` → `%C3%A9`) |
//! | `//`, `///`, ... | `/` |
//! | a byte RFC 3986 does not allow raw in a path (space, `"`, `<`, `>`, `[`, `]`, `^`, `` ` ``, `{`, `|`, `}`, controls, non-ASCII) | `%XX` |
//! | letters, digits, `- . _ ~`, `! $ & ' ( ) * + , = : @`, `/` | kept |
//! | `%2F` | refused: [`PathError::EncodedSlash`] |
//! | `%5C` or `\` | refused: [`PathError::Backslash`] |
//! | `%00` or a NUL byte | refused: [`PathError::Nul`] |
//! | `;` or `%3B` | refused: [`PathError::PathParameter`] (servlet containers strip `;…` from segments: `/admin;x/`, `/public/..;/admin`) |
//! | a `.` or `..` segment, after decoding | refused: [`PathError::DotSegment`] |
//! | a segment ending in `.` or a space (`/admin./x`, `/admin%20/x`) | refused: [`PathError::TrailingDotOrSpace`] (IIS and Windows drop them) |
//! | `%` not followed by two hex digits | refused: [`PathError::BadEscape`] |
//! | `%25` followed by two hex digits (`%252e`) | refused: [`PathError::DoubleEncoding`] (an origin that decodes twice sees another path), unless allowed |
//! | escapes that do not decode to UTF-8 (`%C0%AF`, `%FF`) | refused: [`PathError::InvalidUtf8`] (overlong forms were `/` to old decoders) |
//! | characters that NFKC normalisation changes (fullwidth `／ ． ＼ ａ`, ligatures, a decomposed `é`) | refused: [`PathError::Unnormalized`] (best-fit mappings and NFKC-normalising frameworks read them as other characters) |
//!
//! The result is a fixed point (`canonical(canonical(p)) == canonical(p)`), and a path
//! that is already canonical (the common case) comes back borrowed, with no allocation.
//! Rule paths are restricted to unreserved characters and `/` (see `routes.rs`), so
//! whether a canonical path matches a rule no longer depends on what the origin decodes.

use std::borrow::Cow;

/// Why a path is refused (400 `{"error":"bad_request","reason":…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F`: an encoded `/`, a separator for origins that decode before routing.
    EncodedSlash,
    /// `%5C` or a raw `\`: a separator for some origins (Windows, IIS).
    Backslash,
    /// `%00` or a raw NUL byte.
    Nul,
    /// `;` or `%3B`: a path parameter, stripped by servlet containers before routing.
    PathParameter,
    /// A `.` or `..` segment left after decoding.
    DotSegment,
    /// `%` not followed by two hexadecimal digits.
    BadEscape,
    /// `%25` followed by two hexadecimal digits: an escaped escape.
    DoubleEncoding,
    /// Escapes that do not decode to valid UTF-8 (overlong forms, stray bytes).
    InvalidUtf8,
    /// A character whose Unicode compatibility form (NFKC) differs from it.
    Unnormalized,
    /// A segment that ends in `.` or a space.
    TrailingDotOrSpace,
}

impl PathError {
    /// The `reason` of the 400 body.
    pub fn as_str(self) -> &'static str {
        match self {
            PathError::EncodedSlash => "encoded_slash",
            PathError::Backslash => "backslash",
            PathError::Nul => "nul",
            PathError::PathParameter => "path_parameter",
            PathError::DotSegment => "dot_segment",
            PathError::BadEscape => "bad_escape",
            PathError::DoubleEncoding => "double_encoding",
            PathError::InvalidUtf8 => "invalid_utf8",
            PathError::Unnormalized => "unnormalized_unicode",
            PathError::TrailingDotOrSpace => "trailing_dot_or_space",
        }
    }
}

/// What a raw byte of the path is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Kept as it is.
    Keep,
    /// `/`: a separator (repeats merged, the segment it ends checked).
    Slash,
    /// `%`: an escape.
    Percent,
    /// Not allowed raw in a path: percent-encoded.
    Encode,
    /// Refused.
    Refuse(PathError),
}

/// Whether `b` is an RFC 3986 unreserved character.
pub const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn class_of(b: u8) -> Class {
    match b {
        b'/' => Class::Slash,
        b'%' => Class::Percent,
        b'\\' => Class::Refuse(PathError::Backslash),
        0 => Class::Refuse(PathError::Nul),
        b';' => Class::Refuse(PathError::PathParameter),
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@' => Class::Keep,
        _ if is_unreserved(b) => Class::Keep,
        _ => Class::Encode,
    }
}

/// Every byte's class, looked up once per byte.
static CLASS: [Class; 256] = {
    let mut t = [Class::Encode; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class_of(i as u8);
        i += 1;
    }
    t
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The output: nothing until the first byte that differs from the input (until then
/// the output is the input's first `i` bytes), then a copy that is written to.
struct Out<'a> {
    src: &'a str,
    buf: Option<String>,
}

impl Out<'_> {
    /// The output so far, `i` being the input consumed.
    fn written(&self, i: usize) -> &[u8] {
        match &self.buf {
            Some(b) => b.as_bytes(),
            None => &self.src.as_bytes()[..i],
        }
    }

    /// The copy to write to, made from the input's first `i` bytes if there is none yet.
    /// Until the first change every byte consumed is ASCII (anything else is encoded, a
    /// change), so the bytes copied are the characters.
    fn owned(&mut self, i: usize) -> &mut String {
        let src = self.src.as_bytes();
        self.buf.get_or_insert_with(|| {
            let mut s = String::with_capacity(src.len() + 8);
            s.extend(src[..i].iter().map(|&b| char::from(b)));
            s
        })
    }

    /// Input bytes kept as they are: a no-op until the first change.
    fn keep(&mut self, bytes: &[u8]) {
        if let Some(b) = &mut self.buf {
            b.extend(bytes.iter().map(|&b| char::from(b)));
        }
    }

    fn push_escape(&mut self, i: usize, v: u8) {
        let b = self.owned(i);
        b.push('%');
        b.push(char::from(HEX[usize::from(v >> 4)]));
        b.push(char::from(HEX[usize::from(v & 15)]));
    }
}

/// Refuses the segment `written[start..]` (canonical already) if it is `.` or `..`, or
/// ends in `.` or an (encoded) space.
fn check_segment(written: &[u8], start: usize) -> Result<(), PathError> {
    match written.get(start..) {
        Some(b".") | Some(b"..") => Err(PathError::DotSegment),
        Some(s) if s.ends_with(b".") || s.ends_with(b"%20") => Err(PathError::TrailingDotOrSpace),
        _ => Ok(()),
    }
}

/// Refuses a canonical path with non-ASCII bytes (escaped) that do not decode to UTF-8
/// or whose characters NFKC normalisation would change.
fn check_unicode(canonical: &[u8]) -> Result<(), PathError> {
    let mut decoded = Vec::with_capacity(canonical.len());
    let mut i = 0;
    while let Some(&b) = canonical.get(i) {
        match (b, canonical.get(i + 1).copied().and_then(hex_value), canonical.get(i + 2).copied().and_then(hex_value))
        {
            (b'%', Some(hi), Some(lo)) => {
                decoded.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let text = std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
    use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};
    let same = match is_nfkc_quick(text.chars()) {
        IsNormalized::Yes => true,
        IsNormalized::No => false,
        IsNormalized::Maybe => text.nfkc().eq(text.chars()),
    };
    if same {
        Ok(())
    } else {
        Err(PathError::Unnormalized)
    }
}

/// The canonical form of `path` (the part of the URL before `?`), borrowed when
/// `path` is canonical already; see the module documentation. `%25` followed by two hex
/// digits is refused unless `allow_double_encoding`.
pub fn canonical(path: &str, allow_double_encoding: bool) -> Result<Cow<'_, str>, PathError> {
    let src = path.as_bytes();
    let mut out = Out { src: path, buf: None };
    let mut i = 0;
    // Where the current segment starts in the output, and whether the output ends in `/`.
    let mut segment = 0;
    let mut after_slash = false;
    // Whether any byte is (or decodes to) non-ASCII: only then is Unicode checked.
    let mut non_ascii = false;
    // Whether a `%25` was seen: only then is the output checked for escaped escapes.
    let mut escaped_percent = false;
    while let Some(&b) = src.get(i) {
        match CLASS[usize::from(b)] {
            Class::Keep => {
                out.keep(&[b]);
                i += 1;
                after_slash = false;
            }
            Class::Slash => {
                if after_slash {
                    // A repeated `/` is dropped; the empty segment needs no check.
                    out.owned(i);
                } else {
                    check_segment(out.written(i), segment)?;
                    out.keep(b"/");
                }
                i += 1;
                segment = out.written(i).len();
                after_slash = true;
            }
            Class::Percent => {
                let escape = src.get(i..i + 3).ok_or(PathError::BadEscape)?;
                let (Some(hi), Some(lo)) = (hex_value(escape[1]), hex_value(escape[2])) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi << 4 | lo;
                non_ascii |= v >= 0x80;
                escaped_percent |= v == b'%';
                match CLASS[usize::from(v)] {
                    Class::Refuse(e) => return Err(e),
                    Class::Slash => return Err(PathError::EncodedSlash),
                    _ if is_unreserved(v) => out.owned(i).push(char::from(v)),
                    _ if !escape[1].is_ascii_lowercase() && !escape[2].is_ascii_lowercase() => out.keep(escape),
                    _ => out.push_escape(i, v),
                }
                i += 3;
                after_slash = false;
            }
            Class::Encode => {
                non_ascii |= b >= 0x80;
                out.push_escape(i, b);
                i += 1;
                after_slash = false;
            }
            Class::Refuse(e) => return Err(e),
        }
    }
    check_segment(out.written(i), segment)?;
    // Checked on the output, where `%25%41%41` has become `%25AA`.
    if escaped_percent
        && !allow_double_encoding
        && out
            .written(i)
            .windows(5)
            .any(|w| w[..3] == *b"%25" && hex_value(w[3]).is_some() && hex_value(w[4]).is_some())
    {
        return Err(PathError::DoubleEncoding);
    }
    if non_ascii {
        check_unicode(out.written(i))?;
    }
    Ok(match out.buf {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(path),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canon(p: &str) -> Result<String, PathError> {
        canonical(p, false).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in [
            "/",
            "/admin/x",
            "/public/a-b_c.d~e/",
            "/caf%C3%A9",
            "/a%20b",
            "/a%25b",
            "/a%3Fb%23c",
            "/x:y@z!$&'()*+,=",
            "/.a/a.b/..b",
            "/a/",
            "/__tollgate/bench",
            "/%EC%84%9C%EC%9A%B8",
            "/a%2561",
            "",
        ] {
            let allow = p.contains("%25");
            assert!(matches!(canonical(p, allow), Ok(Cow::Borrowed(q)) if q == p), "{p}");
        }
    }

    #[test]
    fn ordinary_non_ascii_text_passes() {
        for (p, want) in [
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/\u{c11c}\u{c6b8}", "/%EC%84%9C%EC%9A%B8"),
            ("/caf%c3%a9/\u{65e5}\u{672c}", "/caf%C3%A9/%E6%97%A5%E6%9C%AC"),
        ] {
            assert_eq!(canon(p).as_deref(), Ok(want), "{p}");
        }
    }

    #[test]
    fn what_an_origin_would_read_otherwise_is_refused() {
        for (p, err) in [
            ("/public/%252e%252e/admin/users", PathError::DoubleEncoding),
            ("/%2561dmin", PathError::DoubleEncoding),
            ("/a%25%41%42", PathError::DoubleEncoding),
            ("/%C0%AF", PathError::InvalidUtf8),
            ("/%C0%AE%C0%AE/admin", PathError::InvalidUtf8),
            ("/%FF", PathError::InvalidUtf8),
            ("/%C3", PathError::InvalidUtf8),
            ("/%C3\u{e9}", PathError::InvalidUtf8),
            ("/%ED%A0%80", PathError::InvalidUtf8),
            ("/admin\u{ff0f}users", PathError::Unnormalized),
            ("/%EF%BC%8Fadmin", PathError::Unnormalized),
            ("/admin\u{ff0e}json", PathError::Unnormalized),
            ("/a\u{ff3c}b", PathError::Unnormalized),
            ("/\u{ff41}dmin", PathError::Unnormalized),
            ("/\u{fb01}le", PathError::Unnormalized),
            ("/cafe\u{301}", PathError::Unnormalized),
            ("/admin./users", PathError::TrailingDotOrSpace),
            ("/admin%20/users", PathError::TrailingDotOrSpace),
            ("/admin ", PathError::TrailingDotOrSpace),
            ("/...", PathError::TrailingDotOrSpace),
            ("/a./", PathError::TrailingDotOrSpace),
            ("/admin%2E", PathError::TrailingDotOrSpace),
        ] {
            assert_eq!(canon(p), Err(err), "{p}");
        }
        // The documented switch lets double encoding through, as it is.
        assert_eq!(canonical("/public/%252e%252e/x", true).as_deref(), Ok("/public/%252e%252e/x"));
    }

    #[test]
    fn rewrites() {
        for (p, want) in [
            ("/%61dmin/x", "/admin/x"),
            ("/%41DMIN/%7e%7E", "/ADMIN/~~"),
            ("//admin/x", "/admin/x"),
            ("/admin///x//", "/admin/x/"),
            ("///", "/"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%2b%2Bb", "/a%2B%2Bb"),
            ("/a b", "/a%20b"),
            ("/a|b[c]^`{}\"<>", "/a%7Cb%5Bc%5D%5E%60%7B%7D%22%3C%3E"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/\u{7f}\t", "/%7F%09"),
            ("/%2e%2e%2ex", "/...x"),
            ("/a%2Eb", "/a.b"),
            ("/%25", "/%25"),
            ("/%25zz", "/%25zz"),
        ] {
            assert_eq!(canon(p).as_deref(), Ok(want), "{p}");
        }
    }

    #[test]
    fn refusals() {
        for (p, err) in [
            ("/public/..%2fadmin/x", PathError::EncodedSlash),
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%5cb", PathError::Backslash),
            ("/a\\b", PathError::Backslash),
            ("/a%00", PathError::Nul),
            ("/a\0", PathError::Nul),
            ("/admin;x=1/users", PathError::PathParameter),
            ("/public/..;/admin", PathError::PathParameter),
            ("/a%3bb", PathError::PathParameter),
            ("/public/%2e%2e/admin", PathError::DotSegment),
            ("/public/.%2E/admin", PathError::DotSegment),
            ("/public/%2E/admin", PathError::DotSegment),
            ("/public/..", PathError::DotSegment),
            ("/public//../admin", PathError::DotSegment),
            ("/public/./", PathError::DotSegment),
            ("..", PathError::DotSegment),
            ("/a%", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/a%g1", PathError::BadEscape),
            ("/%%361dmin", PathError::BadEscape),
            ("/a%\u{e9}", PathError::BadEscape),
        ] {
            assert_eq!(canon(p), Err(err), "{p}");
        }
    }

    /// The check's cost per request, native (a figure, not a test: run with
    /// `cargo test --release -p tollgate-edge --lib path_check_cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn path_check_cost() {
        let n = 200_000u32;
        for p in
            ["/api/v1/profile/settings", "/public/caf%C3%A9/menu", "/%EC%84%9C%EC%9A%B8/%EC%A7%80%EB%8F%84", "/a%2Fb"]
        {
            let t = std::time::Instant::now();
            let mut ok = 0u32;
            for _ in 0..n {
                ok += u32::from(canonical(std::hint::black_box(p), false).is_ok());
            }
            let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
            println!("canonical({p:?}): {ns:.0} ns ({} bytes, ok {})", p.len(), ok == n);
        }
    }

    /// A small deterministic generator (xorshift), so the property tests need no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    /// Paths made of the pieces that matter: separators, dots, escapes in both cases,
    /// raw bytes of every class, a multi-byte character.
    fn random_path(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "/",
            "//",
            "a",
            "Z",
            "9",
            ".",
            "..",
            "-",
            "~",
            "%",
            "%2",
            "%2e",
            "%2E",
            "%2f",
            "%41",
            "%61",
            "%7e",
            "%7C",
            "%c3%a9",
            "%25",
            "%3b",
            "%3A",
            "%00",
            "%5c",
            ";",
            "\\",
            " ",
            "|",
            ":",
            "@",
            "!",
            "é",
            "\0",
            "%zz",
            "%C0%AF",
            "%ff",
            "\u{ff0f}",
            "e\u{301}",
            "서울",
            "%ef%bc%8f",
            "%2561",
        ];
        let mut p = String::new();
        for _ in 0..(rng.next() % 12) {
            p.push_str(rng.pick(PIECES));
        }
        p
    }

    #[test]
    fn properties() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..200_000 {
            let p = random_path(&mut rng);
            match canonical(&p, false) {
                Ok(c) => {
                    ok += 1;
                    // Idempotent, and the canonical form comes back borrowed.
                    assert!(matches!(canonical(&c, false), Ok(Cow::Borrowed(q)) if q == c), "{p:?} → {c:?}");
                    // Borrowed exactly when nothing changed.
                    assert_eq!(matches!(c, Cow::Borrowed(_)), c == p, "{p:?}");
                    // What an origin that decodes and merges slashes sees is what the
                    // rules saw: no new `/`, no dot segment, no `;`, `\` or NUL.
                    let decoded = percent_decode(&c);
                    assert!(!decoded.windows(2).any(|w| w == b"//"), "{p:?}");
                    assert_eq!(decoded.iter().filter(|&&b| b == b'/').count(), c.matches('/').count(), "{p:?}");
                    assert!(!decoded.iter().any(|b| matches!(b, b';' | b'\\' | 0)), "{p:?}");
                    assert!(!decoded.split(|&b| b == b'/').any(|s| s == b"." || s == b".."), "{p:?}");
                    // No segment ends in a dot or a space; the text is UTF-8 in NFKC;
                    // decoding once more changes nothing (no escaped escapes).
                    assert!(!decoded.split(|&b| b == b'/').any(|s| s.ends_with(b".") || s.ends_with(b" ")), "{p:?}");
                    let text = std::str::from_utf8(&decoded).unwrap();
                    assert!(unicode_normalization::is_nfkc(text), "{p:?}");
                    let escape = |w: &[u8]| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit();
                    assert!(!decoded.windows(3).any(escape), "{p:?}");
                    assert!(c.bytes().all(|b| b.is_ascii_graphic()), "{p:?}");
                }
                Err(_) => refused += 1,
            }
        }
        assert!(ok > 10_000 && refused > 10_000, "{ok} canonical, {refused} refused");
    }

    fn percent_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }
}
