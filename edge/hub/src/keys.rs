//! API keys of the hub's public API (`TOLLGATE_HUB_API_KEYS`, a secret): the scopes of
//! the revocation service (`denylist:read`, `events:write`, `admin`) and, for keys that
//! write, the issuers they may write for.
//!
//! ```json
//! [{"name": "edge", "key": "…", "scopes": ["denylist:read"]},
//!  {"name": "origin", "key": "…", "scopes": ["events:write"], "issuers": ["https://issuer.test"]}]
//! ```

use serde::Deserialize;

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Its name (idempotency keys are per name).
    pub name: String,
    /// The bearer secret.
    pub key: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// Issuers it may write events for.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// May post unscoped events (revoking an identifier for every issuer).
    #[serde(default)]
    pub all_issuers: bool,
}

impl ApiKey {
    /// Whether the key has `scope` (`admin` has every scope).
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }
}

/// Parses the key list; a malformed list is an error (the API then refuses every key).
pub fn parse(doc: &str) -> Result<Vec<ApiKey>, String> {
    let keys: Vec<ApiKey> = serde_json::from_str(doc).map_err(|e| e.to_string())?;
    for k in &keys {
        if k.key.len() < 16 {
            return Err(format!("key {:?} is shorter than 16 bytes", k.name));
        }
    }
    Ok(keys)
}

/// The key presented as `Authorization: Bearer <key>`, compared in constant time.
pub fn find<'a>(keys: &'a [ApiKey], authorization: Option<&str>) -> Option<&'a ApiKey> {
    let presented = authorization?.strip_prefix("Bearer ")?.trim().as_bytes();
    let mut found = None;
    for k in keys {
        let want = k.key.as_bytes();
        let mut diff = u8::from(want.len() != presented.len());
        for (i, b) in want.iter().enumerate() {
            diff |= b ^ presented.get(i).copied().unwrap_or(0);
        }
        if diff == 0 && found.is_none() {
            found = Some(k);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let ks = parse(
            r#"[{"name":"a","key":"0123456789abcdef","scopes":["denylist:read"]},
                         {"name":"b","key":"fedcba9876543210","scopes":["admin"],"issuers":["i"]}]"#,
        )
        .unwrap();
        assert_eq!(find(&ks, Some("Bearer 0123456789abcdef")).unwrap().name, "a");
        assert!(find(&ks, Some("Bearer 0123456789abcdeX")).is_none());
        assert!(find(&ks, Some("Bearer 0123456789abcde")).is_none());
        assert!(find(&ks, Some("0123456789abcdef")).is_none());
        assert!(find(&ks, None).is_none());
        assert!(ks[1].has("events:write") && !ks[0].has("events:write"));
        assert!(parse(r#"[{"name":"a","key":"short","scopes":[]}]"#).is_err());
        assert!(parse(r#"[{"name":"a","key":"0123456789abcdef","scopes":[],"extra":1}]"#).is_err());
    }
}
