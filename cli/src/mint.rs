//! `tollgate mint`: issue test tokens.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use tollgate_origin::SigningKey;

/// What goes into a minted token.
pub(crate) struct MintArgs<'a> {
    pub(crate) key: &'a SigningKey,
    pub(crate) sub: &'a str,
    pub(crate) ttl_seconds: u64,
    pub(crate) now: u64,
    pub(crate) iss: Option<&'a str>,
    pub(crate) aud: Option<&'a str>,
    pub(crate) sid: Option<&'a str>,
    pub(crate) jti: Option<&'a str>,
    pub(crate) typ: Option<&'a str>,
    pub(crate) claims: &'a [String],
}

/// Builds the claims and signs them (header `alg`, `kid`, `typ`, default `JWT`).
pub(crate) fn mint(a: &MintArgs<'_>) -> Result<String> {
    let mut claims = Map::new();
    if let Some(iss) = a.iss {
        claims.insert("iss".into(), json!(iss));
    }
    claims.insert("sub".into(), json!(a.sub));
    if let Some(aud) = a.aud {
        claims.insert("aud".into(), json!(aud));
    }
    claims.insert("iat".into(), json!(a.now));
    claims.insert("exp".into(), json!(a.now + a.ttl_seconds));
    let jti = match a.jti {
        Some(j) => j.to_string(),
        None => tollgate_origin::random_id()?,
    };
    claims.insert("jti".into(), json!(jti));
    if let Some(sid) = a.sid {
        claims.insert("sid".into(), json!(sid));
    }
    for kv in a.claims {
        let (k, v) = kv.split_once('=').with_context(|| format!("--claim {kv:?} is not k=v"))?;
        // A value that parses as JSON is taken as JSON (numbers, arrays); else a string.
        let v = serde_json::from_str::<Value>(v).unwrap_or_else(|_| json!(v));
        claims.insert(k.to_string(), v);
    }
    Ok(a.key.sign_compact(Some(a.typ.unwrap_or("JWT")), serde_json::to_string(&claims)?.as_bytes())?)
}

/// Parses a duration like `90`, `90s`, `15m`, `2h`, `1d`.
pub(crate) fn parse_ttl(s: &str) -> Result<u64> {
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86400),
        Some(c) if c.is_ascii_digit() => (s, 1),
        _ => bail!("ttl {s:?}: use e.g. 90s, 15m, 2h, 1d"),
    };
    let n: u64 = num.parse().with_context(|| format!("ttl {s:?}: not a number"))?;
    n.checked_mul(mult).filter(|&t| t > 0).with_context(|| format!("ttl {s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("15m").unwrap(), 900);
        assert_eq!(parse_ttl("2h").unwrap(), 7200);
        assert_eq!(parse_ttl("1d").unwrap(), 86400);
        for bad in ["", "m", "0s", "-1m", "5y", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
