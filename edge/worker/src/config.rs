//! The Worker's configuration: `wrangler.toml` `[vars]` and secrets, parsed once per
//! isolate into a validated [`Config`].
//!
//! Every name below is a constant matching `wrangler.toml`. List-valued variables are
//! JSON (a JSON string, or a TOML array/table that wrangler hands over as an object).
//! Anything invalid is an error at the first request, and the Worker then answers 500
//! to every protected request (fail closed) instead of guessing.

use std::collections::BTreeSet;

use serde_json::Value;
use tollgate_core::policy::PolicyConfig;
use tollgate_core::{Jwks, Policy};

use crate::error::ConfigError;
use crate::routes::Routes;

/// Upstream base URL requests are forwarded to.
pub const ORIGIN: &str = "TOLLGATE_ORIGIN";
/// JSON array of JWKS URLs or preset names (`google`, `kakao`).
pub const JWKS_URLS: &str = "TOLLGATE_JWKS_URLS";
/// An inline JWKS document.
pub const JWKS: &str = "TOLLGATE_JWKS";
/// JSON array of accepted issuers or preset names.
pub const ISSUERS: &str = "TOLLGATE_ISSUERS";
/// JSON array of accepted audiences.
pub const AUDIENCES: &str = "TOLLGATE_AUDIENCES";
/// JSON array of accepted algorithms (default `["ES256","RS256"]`).
pub const ALGORITHMS: &str = "TOLLGATE_ALGORITHMS";
/// Clock skew tolerated on `exp`/`nbf`, seconds (default 60).
pub const LEEWAY_SECONDS: &str = "TOLLGATE_LEEWAY_SECONDS";
/// Required header `typ` (optional).
pub const TYP: &str = "TOLLGATE_TYP";
/// JSON array of claims every token must carry (default `["exp"]`).
pub const REQUIRED_CLAIMS: &str = "TOLLGATE_REQUIRED_CLAIMS";
/// Base URL of the revocation service (optional: without it there is no denylist).
pub const REVOCATION_URL: &str = "TOLLGATE_REVOCATION_URL";
/// Secret: a `denylist:read` API key of the revocation service.
pub const REVOCATION_TOKEN: &str = "TOLLGATE_REVOCATION_TOKEN";
/// The revocation service's public JWK (verifies snapshots and deltas).
pub const DENYLIST_KEY: &str = "TOLLGATE_DENYLIST_KEY";
/// Largest replica age before the fail mode applies, seconds (default 10).
pub const MAX_STALENESS_SECONDS: &str = "TOLLGATE_MAX_STALENESS_SECONDS";
/// `closed` (default: 503 when stale) or `open` (let verified tokens through).
pub const FAIL_MODE: &str = "TOLLGATE_FAIL_MODE";
/// JSON list of route rules, first match wins.
pub const ROUTES: &str = "TOLLGATE_ROUTES";
/// Cookie the token is read from when there is no `Authorization: Bearer` (default `access_token`).
pub const COOKIE_NAME: &str = "TOLLGATE_COOKIE_NAME";
/// Least time between two JWKS refetches caused by unknown `kid`s, seconds (default 30).
pub const JWKS_COOLDOWN_SECONDS: &str = "TOLLGATE_JWKS_COOLDOWN_SECONDS";
/// JSON object overriding the JWKS URL of a preset, e.g. `{"google": "http://127.0.0.1:9/g.json"}`
/// (tests and local development: no external host is contacted).
pub const PRESET_JWKS_URLS: &str = "TOLLGATE_PRESET_JWKS_URLS";
/// Capacity of the verified-token cache, entries (default 10000, 0 disables it).
pub const TOKEN_CACHE_SIZE: &str = "TOLLGATE_TOKEN_CACHE_SIZE";
/// Signature backend for cold tokens: `webcrypto` (default) or `rust`.
pub const CRYPTO: &str = "TOLLGATE_CRYPTO";
/// `on` enables `POST /__tollgate/bench` (measurements only; never in production).
pub const BENCH_ENDPOINT: &str = "TOLLGATE_BENCH_ENDPOINT";

/// Every variable the Worker reads, for the loader.
pub const ALL_VARS: [&str; 21] = [
    ORIGIN,
    JWKS_URLS,
    JWKS,
    ISSUERS,
    AUDIENCES,
    ALGORITHMS,
    LEEWAY_SECONDS,
    TYP,
    REQUIRED_CLAIMS,
    REVOCATION_URL,
    REVOCATION_TOKEN,
    DENYLIST_KEY,
    MAX_STALENESS_SECONDS,
    FAIL_MODE,
    ROUTES,
    COOKIE_NAME,
    JWKS_COOLDOWN_SECONDS,
    PRESET_JWKS_URLS,
    TOKEN_CACHE_SIZE,
    CRYPTO,
    BENCH_ENDPOINT,
];

/// An issuer preset: the issuer spellings and the JWKS of a well-known identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Name usable in `TOLLGATE_ISSUERS` and `TOLLGATE_JWKS_URLS`.
    pub name: &'static str,
    /// Every `iss` value the provider uses.
    pub issuers: &'static [&'static str],
    /// The provider's JWKS.
    pub jwks_url: &'static str,
}

/// Google (both issuer spellings it uses) and Kakao.
pub const PRESETS: [Preset; 2] = [
    Preset {
        name: "google",
        issuers: &["https://accounts.google.com", "accounts.google.com"],
        jwks_url: "https://www.googleapis.com/oauth2/v3/certs",
    },
    Preset {
        name: "kakao",
        issuers: &["https://kauth.kakao.com"],
        jwks_url: "https://kauth.kakao.com/.well-known/jwks.json",
    },
];

fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Where trusted keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// A JWKS fetched over HTTP(S); `issuers` binds its keys to those issuers (presets).
    Url {
        /// The JWKS URL.
        url: String,
        /// When set, tokens verified by these keys must carry one of these `iss`.
        issuers: Option<Vec<String>>,
    },
    /// The inline `TOLLGATE_JWKS` document.
    Inline,
}

/// What happens when the denylist replica is staler than the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Answer 503 with `Retry-After` (the default).
    Closed,
    /// Let verified tokens through, checking the (stale) replica held.
    Open,
}

/// Which implementation checks cold tokens' signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoBackend {
    /// The platform's `crypto.subtle.verify` (the default).
    WebCrypto,
    /// Pure-Rust `p256`/`rsa` compiled to wasm.
    Rust,
}

/// The revocation service the denylist replica follows.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// Base URL (no trailing slash).
    pub url: String,
    /// `denylist:read` API key, if the service needs one.
    pub token: Option<String>,
    /// The service's public key.
    pub key: tollgate_core::jwk::P256Key,
    /// Largest tolerated replica age, seconds.
    pub max_staleness_seconds: u64,
    /// What to do when staler than that.
    pub fail_mode: FailMode,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Upstream base URL, no trailing slash.
    pub origin: String,
    /// Key sources in order: URLs, then the inline set.
    pub sources: Vec<KeySource>,
    /// The inline JWKS, when configured.
    pub inline_jwks: Option<Jwks>,
    /// The verification policy.
    pub policy: Policy,
    /// The revocation service, when configured.
    pub revocation: Option<Revocation>,
    /// Route rules.
    pub routes: Routes,
    /// Cookie name for the token.
    pub cookie_name: String,
    /// Unknown-`kid` refetch cooldown, seconds.
    pub jwks_cooldown_seconds: u64,
    /// Verified-token cache capacity.
    pub token_cache_size: usize,
    /// Signature backend for cold tokens.
    pub crypto: CryptoBackend,
    /// Whether the bench endpoint is on.
    pub bench_endpoint: bool,
}

impl Config {
    /// Builds the configuration from variable values (`get(name)` returns the raw
    /// string of a variable, JSON for structured ones, `None` when unset).
    pub fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let origin = var(ORIGIN).ok_or(ConfigError::Missing(ORIGIN))?;
        check_url(ORIGIN, &origin)?;
        let origin = origin.trim_end_matches('/').to_owned();

        let overrides = match var(PRESET_JWKS_URLS) {
            None => serde_json::Map::new(),
            Some(s) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(ConfigError::Invalid(PRESET_JWKS_URLS, "a JSON object of preset name to URL".into())),
            },
        };
        let mut sources = Vec::new();
        for entry in string_list(JWKS_URLS, var(JWKS_URLS))?.unwrap_or_default() {
            let source = match preset(&entry) {
                Some(p) => {
                    let url = match overrides.get(p.name) {
                        Some(Value::String(u)) => u.clone(),
                        Some(_) => {
                            return Err(ConfigError::Invalid(PRESET_JWKS_URLS, format!("{} is not a string", p.name)))
                        }
                        None => p.jwks_url.to_owned(),
                    };
                    KeySource::Url { url, issuers: Some(p.issuers.iter().map(|s| (*s).to_owned()).collect()) }
                }
                None => KeySource::Url { url: entry, issuers: None },
            };
            if let KeySource::Url { url, .. } = &source {
                check_url(JWKS_URLS, url)?;
            }
            sources.push(source);
        }
        let inline_jwks = match var(JWKS) {
            None => None,
            Some(doc) => {
                let set = Jwks::from_json(doc.as_bytes()).map_err(|e| ConfigError::Invalid(JWKS, e.to_string()))?;
                sources.push(KeySource::Inline);
                Some(set)
            }
        };
        if sources.is_empty() {
            return Err(ConfigError::Missing("TOLLGATE_JWKS_URLS or TOLLGATE_JWKS"));
        }

        let issuers = string_list(ISSUERS, var(ISSUERS))?.map(|list| {
            let mut out: Vec<String> = Vec::new();
            for i in list {
                match preset(&i) {
                    Some(p) => out.extend(p.issuers.iter().map(|s| (*s).to_owned())),
                    None => out.push(i),
                }
            }
            dedup(out)
        });
        let audiences = string_list(AUDIENCES, var(AUDIENCES))?;
        // A provider's keys sign ID tokens for every app of all its clients: without an
        // audience, any Google or Kakao account's token for any app would pass.
        let uses_preset = sources.iter().any(|s| matches!(s, KeySource::Url { issuers: Some(_), .. }));
        if uses_preset && audiences.as_ref().is_none_or(Vec::is_empty) {
            return Err(ConfigError::Invalid(
                AUDIENCES,
                "required with the google/kakao presets: name your client IDs (their tokens' aud)".into(),
            ));
        }
        let leeway_seconds = number(LEEWAY_SECONDS, var(LEEWAY_SECONDS), 60)?;
        let policy = PolicyConfig {
            issuers,
            audiences,
            algorithms: string_list(ALGORITHMS, var(ALGORITHMS))?,
            leeway_seconds: Some(leeway_seconds),
            required_claims: string_list(REQUIRED_CLAIMS, var(REQUIRED_CLAIMS))?,
            typ: var(TYP),
            max_token_bytes: None,
            min_rsa_bits: None,
        }
        .into_policy()
        .map_err(|e| ConfigError::Invalid(ALGORITHMS, e.to_string()))?;

        let revocation = match var(REVOCATION_URL) {
            None => None,
            Some(url) => {
                check_url(REVOCATION_URL, &url)?;
                let key_doc = var(DENYLIST_KEY).ok_or(ConfigError::Missing(DENYLIST_KEY))?;
                let jwk = tollgate_core::Jwk::from_json(key_doc.as_bytes())
                    .map_err(|e| ConfigError::Invalid(DENYLIST_KEY, e.to_string()))?;
                let key = match jwk.material {
                    tollgate_core::KeyMaterial::P256(k) => k,
                    _ => return Err(ConfigError::Invalid(DENYLIST_KEY, "not an EC P-256 public key".into())),
                };
                let fail_mode = match var(FAIL_MODE).as_deref() {
                    None | Some("closed") => FailMode::Closed,
                    Some("open") => FailMode::Open,
                    Some(other) => {
                        return Err(ConfigError::Invalid(FAIL_MODE, format!("{other:?} is not closed or open")))
                    }
                };
                let max_staleness_seconds = number(MAX_STALENESS_SECONDS, var(MAX_STALENESS_SECONDS), 10)?;
                if max_staleness_seconds == 0 {
                    return Err(ConfigError::Invalid(MAX_STALENESS_SECONDS, "must be at least 1".into()));
                }
                Some(Revocation {
                    url: url.trim_end_matches('/').to_owned(),
                    token: var(REVOCATION_TOKEN),
                    key,
                    max_staleness_seconds,
                    fail_mode,
                })
            }
        };

        let routes = match var(ROUTES) {
            None => Routes::default(),
            Some(doc) => Routes::from_json(&doc).map_err(|e| ConfigError::Invalid(ROUTES, e))?,
        };
        let crypto = match var(CRYPTO).as_deref() {
            None | Some("webcrypto") => CryptoBackend::WebCrypto,
            Some("rust") => CryptoBackend::Rust,
            Some(other) => return Err(ConfigError::Invalid(CRYPTO, format!("{other:?} is not webcrypto or rust"))),
        };
        Ok(Config {
            origin,
            sources,
            inline_jwks,
            policy,
            revocation,
            routes,
            cookie_name: var(COOKIE_NAME).unwrap_or_else(|| "access_token".to_owned()),
            jwks_cooldown_seconds: number(JWKS_COOLDOWN_SECONDS, var(JWKS_COOLDOWN_SECONDS), 30)?,
            token_cache_size: usize::try_from(number(TOKEN_CACHE_SIZE, var(TOKEN_CACHE_SIZE), 10_000)?)
                .map_err(|_| ConfigError::Invalid(TOKEN_CACHE_SIZE, "too large".into()))?,
            crypto,
            bench_endpoint: var(BENCH_ENDPOINT).is_some_and(|v| v == "on"),
        })
    }

    /// A one-line summary for the log (no secrets).
    pub fn summary(&self) -> String {
        let sources: Vec<String> = self
            .sources
            .iter()
            .map(|s| match s {
                KeySource::Url { url, .. } => url.clone(),
                KeySource::Inline => "inline".to_owned(),
            })
            .collect();
        format!(
            "origin={} jwks={:?} issuers={:?} audiences={:?} leeway={}s revocation={} routes={} crypto={:?}",
            self.origin,
            sources,
            self.policy.issuers,
            self.policy.audiences,
            self.policy.leeway_seconds,
            self.revocation.as_ref().map_or_else(
                || "off".to_owned(),
                |r| format!("{} (max staleness {}s, fail {:?})", r.url, r.max_staleness_seconds, r.fail_mode)
            ),
            self.routes.len(),
            self.crypto,
        )
    }
}

fn check_url(name: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(ConfigError::Invalid(name, format!("{url:?} is not an http(s) URL")))
    }
}

fn string_list(name: &'static str, raw: Option<String>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    match serde_json::from_str::<Vec<String>>(&raw) {
        Ok(list) => Ok(Some(list)),
        Err(_) => Err(ConfigError::Invalid(name, "a JSON array of strings".into())),
    }
}

fn number(name: &'static str, raw: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match raw {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| ConfigError::Invalid(name, format!("{s:?} is not a whole number"))),
    }
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    list.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","x":"6cXZzhU_Mm20Gi9eCQXqyZbTfWF5QeUtlaQ7SSLnNlw","y":"AAcfFnYybvrN6QaXSSNRN1swXnICP6k3u9Ur5l1rfVY"}"#;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_vars(&|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[(ORIGIN, "http://127.0.0.1:1/"), (JWKS_URLS, r#"["https://i.test/jwks"]"#)]).unwrap();
        assert_eq!(c.origin, "http://127.0.0.1:1");
        assert_eq!(c.policy.leeway_seconds, 60);
        assert_eq!(c.cookie_name, "access_token");
        assert_eq!(c.jwks_cooldown_seconds, 30);
        assert_eq!(c.crypto, CryptoBackend::WebCrypto);
        assert!(c.revocation.is_none() && c.policy.issuers.is_none());
        assert_eq!(c.routes.len(), 1);
    }

    #[test]
    fn presets_expand_and_can_be_overridden() {
        let c = cfg(&[
            (ORIGIN, "https://o.test"),
            (JWKS_URLS, r#"["google","kakao"]"#),
            (ISSUERS, r#"["google","kakao","https://x.test"]"#),
            (AUDIENCES, r#"["my-client-id"]"#),
            (PRESET_JWKS_URLS, r#"{"kakao":"http://127.0.0.1:9/k.json"}"#),
        ])
        .unwrap();
        assert_eq!(
            c.policy.issuers.unwrap(),
            ["https://accounts.google.com", "accounts.google.com", "https://kauth.kakao.com", "https://x.test"]
        );
        match &c.sources[..] {
            [KeySource::Url { url: g, issuers: Some(gi) }, KeySource::Url { url: k, issuers: Some(ki) }] => {
                assert_eq!(g, "https://www.googleapis.com/oauth2/v3/certs");
                assert_eq!(gi.len(), 2);
                assert_eq!(k, "http://127.0.0.1:9/k.json");
                assert_eq!(ki, &["https://kauth.kakao.com"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn presets_need_audiences() {
        for audiences in [None, Some("[]")] {
            let mut v = vec![(ORIGIN, "https://o.test"), (JWKS_URLS, r#"["https://keys.test/a.json","kakao"]"#)];
            v.extend(audiences.map(|a| (AUDIENCES, a)));
            assert!(matches!(cfg(&v).unwrap_err(), ConfigError::Invalid(AUDIENCES, _)), "{audiences:?}");
        }
        // Without a preset, audiences stay optional.
        assert!(cfg(&[(ORIGIN, "https://o.test"), (JWKS_URLS, r#"["https://keys.test/a.json"]"#)]).is_ok());
    }

    #[test]
    fn revocation_needs_a_p256_key() {
        let base = [(ORIGIN, "https://o.test"), (JWKS, r#"{"keys":[]}"#), (REVOCATION_URL, "http://127.0.0.1:8790")];
        assert_eq!(cfg(&base).unwrap_err(), ConfigError::Missing(DENYLIST_KEY));
        let mut v = base.to_vec();
        v.push((DENYLIST_KEY, EC));
        v.push((FAIL_MODE, "open"));
        let c = cfg(&v).unwrap();
        let r = c.revocation.unwrap();
        assert_eq!((r.max_staleness_seconds, r.fail_mode), (10, FailMode::Open));
        v.push((FAIL_MODE, "ajar"));
        let map: HashMap<_, _> = v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert!(Config::from_vars(&|n| map.get(n).cloned()).is_err());
    }

    #[test]
    fn invalid_values_fail_closed() {
        for bad in [
            vec![(JWKS_URLS, "https://not-json")],
            vec![(JWKS_URLS, r#"["ftp://x"]"#)],
            vec![(JWKS, "{}")],
            vec![(JWKS, r#"{"keys":[]}"#), (ALGORITHMS, r#"["HS256"]"#)],
            vec![(JWKS, r#"{"keys":[]}"#), (LEEWAY_SECONDS, "-1")],
            vec![(JWKS, r#"{"keys":[]}"#), (ROUTES, r#"[{"path":"/x","roles":"admin"}]"#)],
            vec![(JWKS, r#"{"keys":[]}"#), (CRYPTO, "fast")],
            vec![],
        ] {
            let mut v = vec![(ORIGIN, "https://o.test")];
            v.extend(bad.iter().copied());
            assert!(cfg(&v).is_err(), "{bad:?}");
        }
        assert_eq!(cfg(&[(JWKS, r#"{"keys":[]}"#)]).unwrap_err(), ConfigError::Missing(ORIGIN));
    }
}
