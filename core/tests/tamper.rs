//! Tamper harness: valid ES256 and RS256 tokens, minted here with fixed test keys, are
//! mutated every way a byte-level attacker could — every bit of the signature flipped,
//! every byte of the signing input replaced, every truncation, insertions, and
//! semantically chosen header and payload rewrites — and each result must be rejected
//! with exactly the reason an independent model of the conformance rules predicts.
//!
//! The model ([`Harness::expected`]) has its own strict base64url decoder and reads the header
//! with plain `serde_json`; it shares no code with the verifier's parser. Nothing may
//! panic. Under `--features ring` the same mutations go through the `ring` backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use p256::ecdsa::signature::Signer;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tollgate_core::{b64, Jwks, Policy, Reason, Verifier};

const NOW: i64 = 1_763_800_000;
const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";
/// The EC test key's secret scalar (a test-only key).
const EC_SECRET: [u8; 32] = [0x42; 32];
/// A 2048-bit RSA key made with `openssl genpkey` for these tests only.
const RSA_PEM: &str = include_str!("fixtures/rs256-test-key.pem");

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The algorithm a harness token is signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Es256,
    Rs256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }
    fn kid(self) -> &'static str {
        match self {
            Alg::Es256 => "ec1",
            Alg::Rs256 => "rsa1",
        }
    }
}

/// The test keys, the verifier trusting their public halves, and the model's view of
/// that JWKS: `(kid, alg)` per key.
struct Harness {
    ec: p256::ecdsa::SigningKey,
    rsa: rsa::PrivateKey,
    verifier: Verifier,
    keys: Vec<(&'static str, &'static str)>,
}

impl Harness {
    fn new() -> Harness {
        let ec = p256::ecdsa::SigningKey::from_slice(&EC_SECRET).unwrap();
        let rsa = rsa::PrivateKey::from_pkcs8_pem(RSA_PEM).unwrap();
        let point = ec.verifying_key().to_sec1_point(false);
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256", "use": "sig",
             "x": b64::encode(point.x().unwrap()), "y": b64::encode(point.y().unwrap())},
            {"kty": "RSA", "kid": "rsa1", "alg": "RS256",
             "n": b64::encode(&rsa.n_bytes()), "e": b64::encode(&rsa.e_bytes())},
        ]});
        let jwks = Jwks::from_json(jwks.to_string().as_bytes()).unwrap();
        let policy = Policy::from_json(
            json!({
                "issuers": [ISS], "audiences": [AUD], "required_claims": ["exp", "sub", "jti"], "typ": "JWT",
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        Harness { ec, rsa, verifier: Verifier::new(jwks, policy), keys: vec![("ec1", "ES256"), ("rsa1", "RS256")] }
    }

    fn sign(&self, alg: Alg, input: &[u8]) -> Vec<u8> {
        match alg {
            Alg::Es256 => {
                let sig: p256::ecdsa::Signature = self.ec.sign(input);
                sig.to_bytes().to_vec()
            }
            Alg::Rs256 => self.rsa.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input)).unwrap(),
        }
    }

    /// Signs `header` and `payload` (JSON text, used byte for byte) into a compact JWS.
    fn mint_raw(&self, alg: Alg, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64::encode(header.as_bytes()), b64::encode(payload.as_bytes()));
        let sig = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64::encode(&sig))
    }

    /// A token that verifies: every claim the policy looks at, in range.
    fn mint(&self, alg: Alg) -> String {
        let header = format!(r#"{{"alg":"{}","typ":"JWT","kid":"{}"}}"#, alg.name(), alg.kid());
        let payload = format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","jti":"j-1","sid":"s-1","iat":{},"exp":{}}}"#,
            NOW - 10,
            NOW + 600
        );
        self.mint_raw(alg, &header, &payload)
    }

    fn verify(&self, token: &str) -> Result<(), Reason> {
        self.verifier.verify(token, NOW, None).map(|_| ()).map_err(|e| e.reason())
    }

    /// The model: what the conformance rules say about `token`, given that `original`
    /// is the only correctly signed token around. Independent of the core's parser.
    fn expected(&self, token: &str, original: &str) -> Result<(), Reason> {
        if token.len() > 8192 {
            return Err(Reason::TooLarge);
        }
        let segments: Vec<&str> = token.split('.').collect();
        if segments.len() != 3 {
            return Err(Reason::Malformed);
        }
        let decoded: Option<Vec<Vec<u8>>> = segments.iter().map(|s| model_b64_decode(s)).collect();
        let Some(decoded) = decoded else {
            return Err(Reason::Malformed);
        };
        let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&decoded[0]) else {
            return Err(Reason::Malformed);
        };
        let Some(Value::String(alg)) = header.get("alg") else {
            return Err(Reason::Malformed);
        };
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(Reason::Malformed),
        };
        if alg != "ES256" && alg != "RS256" {
            return Err(Reason::UnsupportedAlgorithm);
        }
        if header.contains_key("crit") {
            return Err(Reason::UnsupportedCriticalHeader);
        }
        let typ_ok = header.get("typ").and_then(Value::as_str).is_some_and(|t| {
            let lower = t.to_ascii_lowercase();
            lower.strip_prefix("application/").unwrap_or(&lower) == "jwt"
        });
        if !typ_ok {
            return Err(Reason::InvalidType);
        }
        if !self.keys.iter().any(|(k, a)| kid.is_none_or(|kid| kid == *k) && a == alg) {
            return Err(Reason::UnknownKey);
        }
        // Canonical base64url means one encoding per byte string: any other token
        // differs in the signed bytes or in the signature, so it cannot verify.
        if token == original {
            Ok(())
        } else {
            Err(Reason::InvalidSignature)
        }
    }
}

/// Strict unpadded base64url, written independently of `tollgate_core::b64`.
fn model_b64_decode(s: &str) -> Option<Vec<u8>> {
    let vals: Option<Vec<u32>> = s.bytes().map(|c| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)).collect();
    let vals = vals?;
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let mut n = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        match chunk.len() {
            4 => out.extend_from_slice(&bytes),
            3 if n & 0xff == 0 => out.extend_from_slice(&bytes[..2]),
            2 if n & 0xffff == 0 => out.push(bytes[0]),
            _ => return None, // a lone char, or trailing bits that are not zero
        }
    }
    Some(out)
}

/// Counts outcomes per reason, for a mutation family.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, usize>);

impl Tally {
    fn add(&mut self, r: Result<(), Reason>) {
        *self.0.entry(r.map_or_else(|e| e.as_str(), |()| "accept")).or_default() += 1;
    }
    fn get(&self, r: Reason) -> usize {
        self.0.get(r.as_str()).copied().unwrap_or(0)
    }
    fn total(&self) -> usize {
        self.0.values().sum()
    }
}

/// Verifies one mutated token and checks it against the model; returns the verdict.
fn check(h: &Harness, what: &str, token: &str, original: &str, tally: &mut Tally) -> Result<(), Reason> {
    let got = h.verify(token);
    let want = h.expected(token, original);
    assert_eq!(got, want, "{what}: {token}");
    assert!(got.is_err() || token == original, "{what}: a tampered token was accepted: {token}");
    tally.add(got);
    got
}

fn replace_at(token: &str, i: usize, c: u8) -> String {
    let mut b = token.as_bytes().to_vec();
    b[i] = c;
    String::from_utf8(b).unwrap()
}

fn alphabet_index(c: u8) -> Option<usize> {
    ALPHABET.iter().position(|&a| a == c)
}

fn signature_bits(alg: Alg) {
    let h = Harness::new();
    let token = h.mint(alg);
    assert_eq!(h.verify(&token), Ok(()));
    let (input, sig64) = token.rsplit_once('.').unwrap();
    let sig = b64::decode(sig64.as_bytes()).unwrap();
    assert_eq!(sig.len(), if alg == Alg::Es256 { 64 } else { 256 });
    let mut tally = Tally::default();
    for bit in 0..sig.len() * 8 {
        let mut s = sig.clone();
        s[bit / 8] ^= 0x80 >> (bit % 8);
        let t = format!("{input}.{}", b64::encode(&s));
        assert_eq!(
            check(&h, &format!("{alg:?} signature bit {bit}"), &t, &token, &mut tally),
            Err(Reason::InvalidSignature)
        );
    }
    assert_eq!(tally.get(Reason::InvalidSignature), sig.len() * 8);
    eprintln!("{alg:?} signature bit flips: {:?}", tally.0);
}

/// Every character of the signature segment replaced: another alphabet character gives
/// different bytes (`invalid_signature`) unless it leaves non-zero trailing bits in the
/// last character (`malformed`); a character outside the alphabet is `malformed`.
fn signature_chars(alg: Alg) {
    let h = Harness::new();
    let token = h.mint(alg);
    let start = token.rfind('.').unwrap() + 1;
    let mut tally = Tally::default();
    for i in start..token.len() {
        let idx = alphabet_index(token.as_bytes()[i]).unwrap();
        let last = i + 1 == token.len();
        // Every 6-bit flip on ES256 and near the end of the segment (where trailing bits
        // matter). An RS256 check costs ~10 ms in a debug build and every signature bit
        // is flipped above already, so elsewhere it gets one flip on every 8th character.
        let flips: &[usize] = if alg == Alg::Es256 || i + 4 >= token.len() {
            &[1, 2, 4, 8, 16, 32]
        } else if (i - start).is_multiple_of(8) {
            &[32]
        } else {
            &[]
        };
        for f in flips {
            let t = replace_at(&token, i, ALPHABET[idx ^ f]);
            let r = check(&h, &format!("{alg:?} signature char {i} ^{f}"), &t, &token, &mut tally);
            // The signature segment is 86 or 342 chars (4n + 2): the last carries 2
            // bits, so flipping any of its low 4 bits is non-canonical.
            let want = if last && f & 0xf != 0 { Reason::Malformed } else { Reason::InvalidSignature };
            assert_eq!(r, Err(want), "{alg:?} signature char {i} ^{f}");
        }
        for c in [b'=', b'+', b'/', b' ', b'.', b'~'] {
            let t = replace_at(&token, i, c);
            let r = check(&h, &format!("{alg:?} signature char {i} -> {}", c as char), &t, &token, &mut tally);
            assert_eq!(r, Err(Reason::Malformed));
        }
    }
    assert!(tally.get(Reason::Malformed) > 0 && tally.get(Reason::InvalidSignature) > 0);
    eprintln!("{alg:?} signature chars: {:?}", tally.0);
}

/// Every byte of `header.payload` replaced by a few alternatives.
fn signing_input_bytes(alg: Alg) {
    let h = Harness::new();
    let token = h.mint(alg);
    let end = token.rfind('.').unwrap();
    let payload_start = token.find('.').unwrap() + 1;
    let mut header_tally = Tally::default();
    let mut payload_tally = Tally::default();
    for i in 0..end {
        let c = token.as_bytes()[i];
        let alternatives: Vec<u8> = match alphabet_index(c) {
            Some(idx) if alg == Alg::Es256 => {
                vec![ALPHABET[idx ^ 1], ALPHABET[idx ^ 8], ALPHABET[idx ^ 32], b'.', b'=']
            }
            // RS256 (slow in debug builds): every header byte; every 4th payload byte.
            Some(idx) if i < payload_start || i % 4 == 0 => vec![ALPHABET[idx ^ 1], ALPHABET[idx ^ 32], b'.'],
            Some(_) => vec![b'.', b'='],
            None => vec![b'A', b'=', b'-'],
        };
        let tally = if i < payload_start { &mut header_tally } else { &mut payload_tally };
        for a in alternatives {
            let t = replace_at(&token, i, a);
            let r = check(&h, &format!("{alg:?} signing input byte {i} -> {}", a as char), &t, &token, tally);
            if i >= payload_start && i != end {
                // The payload's JSON is never read before the signature holds: a
                // payload change is invalid_signature or, if not base64url, malformed.
                assert!(matches!(r, Err(Reason::InvalidSignature | Reason::Malformed)), "payload byte {i}: {r:?}");
            }
        }
    }
    // Header changes reach several phases; payload changes only two.
    assert!(header_tally.get(Reason::Malformed) > 0 && header_tally.get(Reason::InvalidSignature) > 0);
    assert!(payload_tally.get(Reason::Malformed) > 0 && payload_tally.get(Reason::InvalidSignature) > 0);
    assert_eq!(
        payload_tally.get(Reason::Malformed) + payload_tally.get(Reason::InvalidSignature),
        payload_tally.total()
    );
    eprintln!("{alg:?} header bytes: {:?}", header_tally.0);
    eprintln!("{alg:?} payload bytes: {:?}", payload_tally.0);
}

/// Every proper prefix of the token, and characters inserted at every position.
fn truncations_and_insertions(alg: Alg) {
    let h = Harness::new();
    let token = h.mint(alg);
    let mut tally = Tally::default();
    for n in 0..token.len() {
        let r = check(&h, &format!("{alg:?} truncated to {n}"), &token[..n], &token, &mut tally);
        assert!(r.is_err());
    }
    let sig_start = token.rfind('.').unwrap() + 1;
    // Cutting the whole signature leaves an empty one: the wrong length, not bad structure.
    assert_eq!(h.verify(&token[..sig_start]), Err(Reason::InvalidSignature));
    assert_eq!(h.verify(&token[..sig_start - 1]), Err(Reason::Malformed));
    for i in 0..=token.len() {
        // RS256 is slow in debug builds: insert alphabet characters in its signing input
        // at every 4th position only; every position otherwise.
        let chars: &[u8] = if alg == Alg::Rs256 && i < sig_start && i % 4 != 0 { b".= " } else { b"A_.= " };
        for &c in chars {
            let mut t = token.clone();
            t.insert(i, c as char);
            let _ = check(&h, &format!("{alg:?} insert {} at {i}", c as char), &t, &token, &mut tally);
        }
    }
    assert!(tally.get(Reason::Malformed) > 0 && tally.get(Reason::InvalidSignature) > 0);
    eprintln!("{alg:?} truncations and insertions: {:?}", tally.0);
}

/// Rewritten headers and payloads, re-encoded canonically and kept with the original
/// signature: each hits the phase named.
fn semantic_rewrites(alg: Alg) {
    let h = Harness::new();
    let token = h.mint(alg);
    let mut parts = token.split('.');
    let (h64, p64, s64) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let (name, kid, other) = (alg.name(), alg.kid(), if alg == Alg::Es256 { "RS256" } else { "ES256" });
    let headers = [
        (r#"{"alg":"none","typ":"JWT"}"#.to_string(), Reason::UnsupportedAlgorithm),
        (format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#), Reason::UnsupportedAlgorithm),
        (format!(r#"{{"alg":"{}","typ":"JWT","kid":"{kid}"}}"#, name.to_lowercase()), Reason::UnsupportedAlgorithm),
        (format!(r#"{{"alg":"{other}","typ":"JWT","kid":"{kid}"}}"#), Reason::UnknownKey),
        (format!(r#"{{"alg":"{name}","typ":"JWT","kid":"{kid}","crit":["exp"]}}"#), Reason::UnsupportedCriticalHeader),
        (format!(r#"{{"alg":"{name}","typ":"at+jwt","kid":"{kid}"}}"#), Reason::InvalidType),
        (format!(r#"{{"alg":"{name}","kid":"{kid}"}}"#), Reason::InvalidType),
        (format!(r#"{{"alg":"{name}","typ":"JWT","kid":"other"}}"#), Reason::UnknownKey),
        (format!(r#"{{"alg":"{name}","typ":"JWT","kid":"{kid}","kid":"{kid}"}}"#), Reason::Malformed),
        (format!(r#"{{"alg":"{name}","typ":"JWT","kid":7}}"#), Reason::Malformed),
        (format!(r#"["{name}"]"#), Reason::Malformed),
        (format!("\u{feff}{{\"alg\":\"{name}\",\"typ\":\"JWT\"}}"), Reason::Malformed),
        // Well-formed and allowed, so only the signature can tell.
        (format!(r#"{{"alg":"{name}","typ":"JWT"}}"#), Reason::InvalidSignature),
        (format!(r#"{{"alg":"{name}","typ":"application/jwt","kid":"{kid}"}}"#), Reason::InvalidSignature),
        (format!(r#"{{ "alg": "{name}", "typ": "JWT", "kid": "{kid}" }}"#), Reason::InvalidSignature),
        (format!(r#"{{"alg":"{name}","typ":"JWT","kid":"{kid}","jwk":{{"kty":"EC"}}}}"#), Reason::InvalidSignature),
    ];
    for (header, want) in headers {
        let t = format!("{}.{p64}.{s64}", b64::encode(header.as_bytes()));
        assert_eq!(h.verify(&t), Err(want), "header {header}");
    }
    let payloads = [
        format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","jti":"j-1","exp":{}}}"#, NOW + 999_999),
        format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"admin","jti":"j-1","exp":{}}}"#, NOW + 600),
        "not json".to_string(),
        "[]".to_string(),
        String::new(),
        r#"{"exp":"soon"}"#.to_string(),
    ];
    for payload in payloads {
        let t = format!("{h64}.{}.{s64}", b64::encode(payload.as_bytes()));
        assert_eq!(h.verify(&t), Err(Reason::InvalidSignature), "payload {payload}");
    }
    // Validly signed by the right key, with a payload that is not a JSON object or has
    // a bad claim: now the payload's own faults are found, in order.
    let header = format!(r#"{{"alg":"{name}","typ":"JWT","kid":"{kid}"}}"#);
    for (payload, want) in [
        ("not json".to_string(), Reason::Malformed),
        ("[1]".to_string(), Reason::Malformed),
        (r#"{"sub":"a","sub":"b","exp":1}"#.to_string(), Reason::Malformed),
        (r#"{"exp":"soon"}"#.to_string(), Reason::InvalidClaim),
        (format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"a","jti":"j","exp":{NOW}}}"#), Reason::Expired),
        (
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"a","jti":"j","exp":{},"nbf":{}}}"#, NOW + 9, NOW + 1),
            Reason::NotYetValid,
        ),
        (
            format!(r#"{{"iss":"https://evil.test","aud":"{AUD}","sub":"a","jti":"j","exp":{}}}"#, NOW + 9),
            Reason::InvalidIssuer,
        ),
        (
            format!(r#"{{"iss":"{ISS}","aud":["x","y"],"sub":"a","jti":"j","exp":{}}}"#, NOW + 9),
            Reason::InvalidAudience,
        ),
        (format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"a","exp":{}}}"#, NOW + 9), Reason::MissingClaim),
    ] {
        let t = h.mint_raw(alg, &header, &payload);
        assert_eq!(h.verify(&t), Err(want), "signed payload {payload}");
    }
}

/// A token signed by the other algorithm's key under a header naming this one, and the
/// signature of one token pasted onto another: both `invalid_signature`.
#[test]
fn signatures_do_not_transplant() {
    let h = Harness::new();
    let es = h.mint(Alg::Es256);
    let rs = h.mint(Alg::Rs256);
    let (es_input, es_sig) = es.rsplit_once('.').unwrap();
    let (rs_input, rs_sig) = rs.rsplit_once('.').unwrap();
    assert_eq!(h.verify(&format!("{es_input}.{rs_sig}")), Err(Reason::InvalidSignature));
    assert_eq!(h.verify(&format!("{rs_input}.{es_sig}")), Err(Reason::InvalidSignature));
    let other = h.mint_raw(Alg::Es256, r#"{"alg":"ES256","typ":"JWT","kid":"ec1"}"#, r#"{"sub":"bob"}"#);
    assert_eq!(h.verify(&format!("{es_input}.{}", other.rsplit_once('.').unwrap().1)), Err(Reason::InvalidSignature));
}

#[test]
fn model_decoder_agrees_with_rfc4648() {
    assert_eq!(model_b64_decode("Zm9vYmE").unwrap(), b"fooba");
    assert_eq!(model_b64_decode("Zg").unwrap(), b"f");
    assert!(model_b64_decode("Zh").is_none() && model_b64_decode("Zm9").is_none());
    assert!(model_b64_decode("Z").is_none() && model_b64_decode("Zg==").is_none());
}

#[test]
fn es256_signature_bits() {
    signature_bits(Alg::Es256);
}

#[test]
fn rs256_signature_bits() {
    signature_bits(Alg::Rs256);
}

#[test]
fn es256_signature_chars() {
    signature_chars(Alg::Es256);
}

#[test]
fn rs256_signature_chars() {
    signature_chars(Alg::Rs256);
}

#[test]
fn es256_signing_input_bytes() {
    signing_input_bytes(Alg::Es256);
}

#[test]
fn rs256_signing_input_bytes() {
    signing_input_bytes(Alg::Rs256);
}

#[test]
fn es256_truncations_and_insertions() {
    truncations_and_insertions(Alg::Es256);
}

#[test]
fn rs256_truncations_and_insertions() {
    truncations_and_insertions(Alg::Rs256);
}

#[test]
fn es256_semantic_rewrites() {
    semantic_rewrites(Alg::Es256);
}

#[test]
fn rs256_semantic_rewrites() {
    semantic_rewrites(Alg::Rs256);
}
