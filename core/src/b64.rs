//! Strict, unpadded base64url (RFC 4648 §5, RFC 7515 §2).
//!
//! Rejects padding, whitespace, the standard alphabet, lengths of `4n + 1`, and
//! non-canonical trailing bits, so every byte string has exactly one accepted encoding.

use alloc::vec::Vec;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const INVALID: u8 = 0xff;

const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Each character's 6 bits already in place for the four positions of a quantum, so
/// a quantum decodes with four lookups and three ORs; an invalid character's entry
/// sets bit 31 (outside the 24 bits a quantum carries), checked once at the end.
const QUAD: [[u32; 256]; 4] = {
    let mut t = [[1u32 << 31; 256]; 4];
    let mut i = 0;
    while i < 64 {
        let c = ALPHABET[i] as usize;
        t[0][c] = (i as u32) << 18;
        t[1][c] = (i as u32) << 12;
        t[2][c] = (i as u32) << 6;
        t[3][c] = i as u32;
        i += 1;
    }
    t
};

/// The input is not canonical unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base64Error;

/// How many bytes `encoded_len` characters of unpadded base64url decode to (for a
/// length that is not `4n + 1`, which is never valid).
pub const fn decoded_len(encoded_len: usize) -> usize {
    encoded_len / 4 * 3 + (encoded_len % 4) * 3 / 4
}

/// Decodes canonical unpadded base64url into `out`, which must be exactly
/// [`decoded_len`] bytes long; returns that length. Every character is looked up and
/// the lookups are checked once at the end (an invalid character's entry has a high
/// bit set), so the loop has no branch per character.
pub fn decode_to_slice(input: &[u8], out: &mut [u8]) -> Result<usize, Base64Error> {
    if input.len() % 4 == 1 || out.len() != decoded_len(input.len()) {
        return Err(Base64Error);
    }
    let mut quads = input.chunks_exact(4);
    let mut triples = out.chunks_exact_mut(3);
    let mut seen = 0u32;
    for (q, t) in (&mut quads).zip(&mut triples) {
        let n = QUAD[0][q[0] as usize] | QUAD[1][q[1] as usize] | QUAD[2][q[2] as usize] | QUAD[3][q[3] as usize];
        seen |= n;
        t.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    let mut seen = (seen >> 24) as u8;
    let tail = triples.into_remainder();
    match *quads.remainder() {
        [] => {}
        [a, b] => {
            let (a, b) = (DECODE[a as usize], DECODE[b as usize]);
            seen |= a | b;
            // 12 bits carry 8: the low 4 must be zero.
            if b & 0xf != 0 {
                return Err(Base64Error);
            }
            tail[0] = (a << 2) | (b >> 4);
        }
        [a, b, c] => {
            let (a, b, c) = (DECODE[a as usize], DECODE[b as usize], DECODE[c as usize]);
            seen |= a | b | c;
            // 18 bits carry 16: the low 2 must be zero.
            if c & 0x3 != 0 {
                return Err(Base64Error);
            }
            let n = (u32::from(a) << 12) | (u32::from(b) << 6) | u32::from(c);
            tail[0] = (n >> 10) as u8;
            tail[1] = (n >> 2) as u8;
        }
        _ => return Err(Base64Error),
    }
    if seen & 0xc0 != 0 {
        return Err(Base64Error);
    }
    Ok(out.len())
}

/// Decodes canonical unpadded base64url, appending to `out`.
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
    if input.len() % 4 == 1 {
        return Err(Base64Error);
    }
    let start = out.len();
    out.resize(start + decoded_len(input.len()), 0);
    match decode_to_slice(input, &mut out[start..]) {
        Ok(_) => Ok(()),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Decodes canonical unpadded base64url into a new vector.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, Base64Error> {
    if input.len() % 4 == 1 {
        return Err(Base64Error);
    }
    let mut out = alloc::vec![0; decoded_len(input.len())];
    decode_to_slice(input, &mut out)?;
    Ok(out)
}

/// Encodes bytes as unpadded base64url.
pub fn encode(input: &[u8]) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
        }
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.push(ALPHABET[((n >> 18) & 63) as usize] as char);
            out.push(ALPHABET[((n >> 12) & 63) as usize] as char);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            for shift in [18, 12, 6] {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let enc = encode(&data[..len]);
            assert!(!enc.contains('='));
            assert_eq!(decode(enc.as_bytes()).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn rfc4648_vectors() {
        for (raw, enc) in
            [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE")]
        {
            assert_eq!(encode(raw.as_bytes()), enc);
            assert_eq!(decode(enc.as_bytes()).unwrap(), raw.as_bytes());
        }
    }

    #[test]
    fn rejects_non_canonical_forms() {
        for bad in ["Zg==", "Zm8=", "Z", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm 9v", "Zm9v\n", "*abc"] {
            assert_eq!(decode(bad.as_bytes()), Err(Base64Error), "{bad}");
        }
        // "Zh" decodes to 'f' only with non-zero trailing bits.
        assert!(decode(b"Zg").is_ok());
        assert!(decode(b"Zm8").is_ok());
        assert!(decode(b"Zm9").is_err());
    }
}
