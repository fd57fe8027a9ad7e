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

/// The input is not canonical unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base64Error;

/// Decodes canonical unpadded base64url, appending to `out`.
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
    if input.len() % 4 == 1 {
        return Err(Base64Error);
    }
    out.reserve(input.len() / 4 * 3 + 2);
    let mut chunks = input.chunks_exact(4);
    for chunk in &mut chunks {
        let mut n: u32 = 0;
        for &c in chunk {
            let v = DECODE[c as usize];
            if v == INVALID {
                return Err(Base64Error);
            }
            n = (n << 6) | u32::from(v);
        }
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rest = chunks.remainder();
    if rest.is_empty() {
        return Ok(());
    }
    let mut n: u32 = 0;
    for &c in rest {
        let v = DECODE[c as usize];
        if v == INVALID {
            return Err(Base64Error);
        }
        n = (n << 6) | u32::from(v);
    }
    match rest.len() {
        2 => {
            // 12 bits carry 8: the low 4 must be zero.
            if n & 0xf != 0 {
                return Err(Base64Error);
            }
            out.push((n >> 4) as u8);
        }
        3 => {
            // 18 bits carry 16: the low 2 must be zero.
            if n & 0x3 != 0 {
                return Err(Base64Error);
            }
            out.extend_from_slice(&[(n >> 10) as u8, (n >> 2) as u8]);
        }
        _ => return Err(Base64Error),
    }
    Ok(())
}

/// Decodes canonical unpadded base64url into a new vector.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::new();
    decode_into(input, &mut out)?;
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
