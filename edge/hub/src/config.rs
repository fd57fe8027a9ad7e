//! The hub's variables, read from its `env` (the same `[vars]` and secrets as the
//! Worker that exports it). Every one is documented in edge/hub/README.md.

use tollgate_core::jwk::P256Key;

/// `relay` (default: follow the revocation service) or `log` (the hub is the log).
pub const MODE: &str = "TOLLGATE_HUB_MODE";
/// Relay mode: base URL of the revocation service the hub follows.
pub const UPSTREAM_URL: &str = "TOLLGATE_HUB_UPSTREAM_URL";
/// Relay mode, secret: a `denylist:read` key of that service.
pub const UPSTREAM_TOKEN: &str = "TOLLGATE_HUB_UPSTREAM_TOKEN";
/// Relay mode, optional: the service's public JWK; with it the hub also verifies what
/// it stores (edges verify whatever the hub serves either way).
pub const UPSTREAM_KEY: &str = "TOLLGATE_HUB_UPSTREAM_KEY";
/// Relay mode: how long one upstream long-poll waits, seconds (default 4, 1–20).
pub const UPSTREAM_WAIT_SECONDS: &str = "TOLLGATE_HUB_UPSTREAM_WAIT_SECONDS";
/// Secret: JSON list of API keys of the hub's public API.
pub const API_KEYS: &str = "TOLLGATE_HUB_API_KEYS";

/// How the hub is fed.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Following a revocation service.
    Relay(Box<Relay>),
    /// The hub is the event log.
    Log,
}

/// Relay mode's upstream.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Base URL, no trailing slash.
    pub url: String,
    /// `denylist:read` key.
    pub token: Option<String>,
    /// The service's key, when the hub checks too.
    pub key: Option<P256Key>,
    /// Long-poll wait, seconds.
    pub wait_seconds: u64,
}

/// A configuration problem: the variable and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub &'static str, pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

/// Reads a variable or secret from `env` as a string.
pub fn read(env: &worker::Env, name: &str) -> Option<String> {
    let v = js_sys::Reflect::get(env.as_ref(), &wasm_bindgen::JsValue::from_str(name)).ok()?;
    if v.is_undefined() || v.is_null() {
        return None;
    }
    v.as_string().or_else(|| js_sys::JSON::stringify(&v).ok().and_then(|s| s.as_string()))
}

/// The mode from variables (`var` reads one).
pub fn mode(var: &dyn Fn(&str) -> Option<String>) -> Result<Mode, ConfigError> {
    match var(MODE).as_deref() {
        None | Some("relay") => {
            let url = var(UPSTREAM_URL)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| ConfigError(UPSTREAM_URL, "not set (relay mode follows a revocation service)".into()))?;
            if !(url.starts_with("https://")
                || url.starts_with("http://127.0.0.1")
                || url.starts_with("http://localhost"))
            {
                return Err(ConfigError(UPSTREAM_URL, "must be https:// (http:// only on loopback)".into()));
            }
            let key = match var(UPSTREAM_KEY) {
                None => None,
                Some(doc) => match tollgate_core::Jwk::from_json(doc.as_bytes()).map(|j| j.material) {
                    Ok(tollgate_core::KeyMaterial::P256(k)) => Some(k),
                    Ok(_) => return Err(ConfigError(UPSTREAM_KEY, "not an EC P-256 public key".into())),
                    Err(e) => return Err(ConfigError(UPSTREAM_KEY, e.to_string())),
                },
            };
            let wait_seconds = match var(UPSTREAM_WAIT_SECONDS) {
                None => 4,
                Some(s) => s.trim().parse::<u64>().ok().filter(|n| (1..=20).contains(n)).ok_or_else(|| {
                    ConfigError(UPSTREAM_WAIT_SECONDS, format!("{s:?} is not a number of seconds in 1–20"))
                })?,
            };
            Ok(Mode::Relay(Box::new(Relay {
                url: url.trim_end_matches('/').to_owned(),
                token: var(UPSTREAM_TOKEN).filter(|t| !t.is_empty()),
                key,
                wait_seconds,
            })))
        }
        Some("log") => Ok(Mode::Log),
        Some(other) => Err(ConfigError(MODE, format!("{other:?} is not relay or log"))),
    }
}

/// Whether `name` may name a tenant shard: 1–64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_tenant(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Mode, ConfigError> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        mode(&|n| map.get(n).cloned())
    }

    #[test]
    fn modes() {
        assert_eq!(with(&[]).unwrap_err().0, UPSTREAM_URL);
        assert!(matches!(with(&[(MODE, "log")]), Ok(Mode::Log)));
        assert_eq!(with(&[(MODE, "mirror")]).unwrap_err().0, MODE);
        assert_eq!(with(&[(UPSTREAM_URL, "http://example.com")]).unwrap_err().0, UPSTREAM_URL);
        let Ok(Mode::Relay(r)) = with(&[(UPSTREAM_URL, "http://127.0.0.1:8790/")]) else { panic!() };
        assert_eq!(
            (r.url.as_str(), r.wait_seconds, r.token, r.key.is_none()),
            ("http://127.0.0.1:8790", 4, None, true)
        );
        assert_eq!(
            with(&[(UPSTREAM_URL, "https://a"), (UPSTREAM_WAIT_SECONDS, "0")]).unwrap_err().0,
            UPSTREAM_WAIT_SECONDS
        );
        assert_eq!(with(&[(UPSTREAM_URL, "https://a"), (UPSTREAM_KEY, "{}")]).unwrap_err().0, UPSTREAM_KEY);
    }

    #[test]
    fn tenants() {
        assert!(valid_tenant("default") && valid_tenant("issuer.test_1-a"));
        assert!(!valid_tenant("") && !valid_tenant("a/b") && !valid_tenant(&"x".repeat(65)) && !valid_tenant("é"));
    }
}
