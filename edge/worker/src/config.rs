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
/// JSON array of JWKS URLs or preset names (`google`, `kakao`): the one-issuer shorthand.
pub const JWKS_URLS: &str = "TOLLGATE_JWKS_URLS";
/// An inline JWKS document: the one-issuer shorthand.
pub const JWKS: &str = "TOLLGATE_JWKS";
/// JSON array of issuers: `{"issuer": …, "jwks_url": …}` or `{"issuer": …, "jwks": {…}}`
/// objects (each issuer with its own keys), preset names, or (the one-issuer
/// shorthand) one issuer string whose keys are `TOLLGATE_JWKS_URLS` / `TOLLGATE_JWKS`.
pub const ISSUERS: &str = "TOLLGATE_ISSUERS";
/// JSON array of accepted audiences, or `any` (no `aud` check, asked for by name).
pub const AUDIENCES: &str = "TOLLGATE_AUDIENCES";
/// JSON array of accepted algorithms (default `["ES256","RS256"]`).
pub const ALGORITHMS: &str = "TOLLGATE_ALGORITHMS";
/// Clock skew tolerated on `exp`/`nbf`, seconds (default 60).
pub const LEEWAY_SECONDS: &str = "TOLLGATE_LEEWAY_SECONDS";
/// Required header `typ` (optional; without it any `typ` but a refresh token's passes).
pub const TYP: &str = "TOLLGATE_TYP";
/// JSON array of claims every token must carry (default `["exp"]`).
pub const REQUIRED_CLAIMS: &str = "TOLLGATE_REQUIRED_CLAIMS";
/// `on` (default: a revocation service is required) or `off` (no denylist, by name).
pub const REVOCATION: &str = "TOLLGATE_REVOCATION";
/// Base URL of the revocation service (`https://`, or `http://` on loopback only).
pub const REVOCATION_URL: &str = "TOLLGATE_REVOCATION_URL";
/// Secret: a `denylist:read` API key of the revocation service.
pub const REVOCATION_TOKEN: &str = "TOLLGATE_REVOCATION_TOKEN";
/// The revocation service's public JWK (verifies snapshots and deltas).
pub const DENYLIST_KEY: &str = "TOLLGATE_DENYLIST_KEY";
/// Largest replica age before the fail mode applies, seconds (default 10).
pub const MAX_STALENESS_SECONDS: &str = "TOLLGATE_MAX_STALENESS_SECONDS";
/// `closed` (default: 503 when stale) or `open` (let verified tokens through).
pub const FAIL_MODE: &str = "TOLLGATE_FAIL_MODE";
/// Where the replica's signed messages come from: `service` (default: each isolate
/// long-polls `TOLLGATE_REVOCATION_URL`) or `hub` (the colo's Cache API in front of
/// the `TOLLGATE_HUB` Durable Object, see edge/hub/README.md).
pub const REVOCATION_SOURCE: &str = "TOLLGATE_REVOCATION_SOURCE";
/// The hub shard (`get_by_name`) the replica reads with `hub` (default `default`).
pub const HUB_TENANT: &str = "TOLLGATE_HUB_TENANT";
/// How long an isolate trusts its replica without asking the hub again, ms (default 1000).
pub const HUB_CHECK_INTERVAL_MS: &str = "TOLLGATE_HUB_CHECK_INTERVAL_MS";
/// How long the Cache API keeps the hub's snapshot for cold isolates, seconds (default 300).
pub const HUB_SNAPSHOT_TTL_SECONDS: &str = "TOLLGATE_HUB_SNAPSHOT_TTL_SECONDS";
/// `on` serves the hub's public API under `/__tollgate/hub/{tenant}/` (default `off`).
pub const HUB_API: &str = "TOLLGATE_HUB_API";
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
/// `on` enables `POST /__tollgate/bench` in a build with the `bench` feature (never in production).
pub const BENCH_ENDPOINT: &str = "TOLLGATE_BENCH_ENDPOINT";
/// How the origin tells a request came through the Worker: `hs256` (default), `es256`
/// or `none` (no assertion, asked for by name).
pub const ORIGIN_AUTH: &str = "TOLLGATE_ORIGIN_AUTH";
/// Secret: the HS256 key of `X-Tollgate-Assertion` (at least 32 bytes).
pub const ORIGIN_SECRET: &str = "TOLLGATE_ORIGIN_SECRET";
/// Secret: the ES256 private key of `X-Tollgate-Assertion` (PKCS#8 PEM or private JWK).
pub const ORIGIN_SIGNING_KEY: &str = "TOLLGATE_ORIGIN_SIGNING_KEY";
/// Lifetime of an assertion, seconds (default 60).
pub const ASSERTION_TTL_SECONDS: &str = "TOLLGATE_ASSERTION_TTL_SECONDS";
/// `refuse` (default: `%25` followed by two hex digits is 400 `double_encoding`) or
/// `allow` (for origins that never decode a path twice).
pub const DOUBLE_ENCODING: &str = "TOLLGATE_DOUBLE_ENCODING";

/// Every variable the Worker reads, for the loader.
pub const ALL_VARS: [&str; 32] = [
    ORIGIN,
    JWKS_URLS,
    JWKS,
    ISSUERS,
    AUDIENCES,
    ALGORITHMS,
    LEEWAY_SECONDS,
    TYP,
    REQUIRED_CLAIMS,
    REVOCATION,
    REVOCATION_URL,
    REVOCATION_TOKEN,
    DENYLIST_KEY,
    MAX_STALENESS_SECONDS,
    FAIL_MODE,
    REVOCATION_SOURCE,
    HUB_TENANT,
    HUB_CHECK_INTERVAL_MS,
    HUB_SNAPSHOT_TTL_SECONDS,
    HUB_API,
    ROUTES,
    COOKIE_NAME,
    JWKS_COOLDOWN_SECONDS,
    PRESET_JWKS_URLS,
    TOKEN_CACHE_SIZE,
    CRYPTO,
    BENCH_ENDPOINT,
    ORIGIN_AUTH,
    ORIGIN_SECRET,
    ORIGIN_SIGNING_KEY,
    ASSERTION_TTL_SECONDS,
    DOUBLE_ENCODING,
];

/// Least length of `TOLLGATE_ORIGIN_SECRET`, bytes.
pub const MIN_ORIGIN_SECRET_BYTES: usize = 32;

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

/// Where trusted keys come from, and the issuers they may vouch for: a key verifies
/// only tokens whose `iss` is one of its source's issuers.
#[derive(Debug, Clone)]
pub struct KeySource {
    /// The issuer spellings these keys are bound to (one, or a preset's several).
    pub issuers: Vec<String>,
    /// The preset these keys come from, if any.
    pub preset: Option<&'static str>,
    /// Where the keys are.
    pub keys: Keys,
}

/// A source's keys.
#[derive(Debug, Clone)]
pub enum Keys {
    /// A JWKS fetched over HTTP(S).
    Url(String),
    /// A JWKS document in the configuration.
    Inline(Jwks),
}

/// How the Worker proves to the origin that a request came through it
/// (`X-Tollgate-Assertion`, see `docs/origin-assertion.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginAuth {
    /// HMAC-SHA256 with `TOLLGATE_ORIGIN_SECRET` (the default).
    Hs256 {
        /// The secret, as UTF-8 bytes.
        secret: Vec<u8>,
    },
    /// ECDSA P-256 with `TOLLGATE_ORIGIN_SIGNING_KEY` (PKCS#8 PEM or private JWK).
    Es256 {
        /// The key as configured.
        key: String,
    },
    /// No assertion (`TOLLGATE_ORIGIN_AUTH = "none"`).
    None,
}

/// Where the Worker forwards to, and what the assertion says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The base URL, no trailing slash: the request's path and query are appended.
    pub base: String,
    /// Scheme, host and port as `URL.origin` spells them: the assertion's `aud`.
    pub audience: String,
    /// The base URL's path (empty for none), which the origin's request-target starts with.
    pub path: String,
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
    /// Base URL (no trailing slash; `https://`, or `http://` on loopback).
    pub url: String,
    /// `denylist:read` API key, if the service needs one.
    pub token: Option<String>,
    /// The service's public key.
    pub key: tollgate_core::jwk::P256Key,
    /// Largest tolerated replica age, seconds.
    pub max_staleness_seconds: u64,
    /// What to do when staler than that.
    pub fail_mode: FailMode,
    /// With `TOLLGATE_REVOCATION_SOURCE = "hub"`: the hub tier (`url` is then only a
    /// description).
    pub hub: Option<HubTier>,
}

/// The cache-tier replica path: the hub's shard and how often it is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubTier {
    /// The shard name.
    pub tenant: String,
    /// Least time between two checks of the hub's head, ms.
    pub check_interval_ms: u64,
    /// Cache API lifetime of the snapshot, seconds.
    pub snapshot_ttl_seconds: u64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where requests go.
    pub origin: Origin,
    /// Key sources, each bound to its issuers.
    pub sources: Vec<KeySource>,
    /// The verification policy (issuers: every source's; audiences unless `any`).
    pub policy: Policy,
    /// Whether a refresh token's `typ` (`refresh+jwt`) is refused (when no `TOLLGATE_TYP`
    /// is configured).
    pub refuse_refresh_typ: bool,
    /// The revocation service; `None` only with `TOLLGATE_REVOCATION = "off"`.
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
    /// Whether the bench endpoint is on (only in a build with the `bench` feature).
    pub bench_endpoint: bool,
    /// Whether the hub's public API is served (`TOLLGATE_HUB_API = "on"`).
    pub hub_api: bool,
    /// How the origin authenticates the Worker.
    pub origin_auth: OriginAuth,
    /// Assertion lifetime, seconds.
    pub assertion_ttl_seconds: u64,
    /// Whether `%25XX` is let through.
    pub allow_double_encoding: bool,
}

impl Config {
    /// Builds the configuration from variable values (`get(name)` returns the raw
    /// string of a variable, JSON for structured ones, `None` when unset).
    pub fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let origin = origin(&var(ORIGIN).ok_or(ConfigError::Missing(ORIGIN))?)?;
        let overrides = match var(PRESET_JWKS_URLS) {
            None => serde_json::Map::new(),
            Some(s) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(ConfigError::Invalid(PRESET_JWKS_URLS, "a JSON object of preset name to URL".into())),
            },
        };
        let preset_source = |p: &Preset| -> Result<KeySource, ConfigError> {
            let url = match overrides.get(p.name) {
                Some(Value::String(u)) => u.clone(),
                Some(_) => return Err(ConfigError::Invalid(PRESET_JWKS_URLS, format!("{} is not a string", p.name))),
                None => p.jwks_url.to_owned(),
            };
            check_fetch_url(PRESET_JWKS_URLS, &url)?;
            Ok(KeySource {
                issuers: p.issuers.iter().map(|s| (*s).to_owned()).collect(),
                preset: Some(p.name),
                keys: Keys::Url(url),
            })
        };
        let sources = key_sources(&var(ISSUERS), &var(JWKS_URLS), &var(JWKS), &preset_source)?;
        let uses_preset = sources.iter().any(|s| s.preset.is_some());
        let issuers = dedup(sources.iter().flat_map(|s| s.issuers.iter().cloned()).collect());

        let audiences = match var(AUDIENCES).as_deref() {
            None => {
                return Err(ConfigError::Invalid(
                    AUDIENCES,
                    "not set: name the audiences your tokens carry (a JSON array), or \"any\" to skip the check".into(),
                ))
            }
            Some("any") | Some("\"any\"") => None,
            Some(list) => match string_list(AUDIENCES, Some(list.to_owned()))? {
                Some(a) if !a.is_empty() => Some(a),
                _ => return Err(ConfigError::Invalid(AUDIENCES, "an empty list: name an audience, or \"any\"".into())),
            },
        };
        // A provider's keys sign ID tokens for every app of all its clients: without an
        // audience, any Google or Kakao account's token for any app would pass.
        if uses_preset && audiences.is_none() {
            return Err(ConfigError::Invalid(
                AUDIENCES,
                "required with the google/kakao presets: name your client IDs (their tokens' aud)".into(),
            ));
        }
        let leeway_seconds = number(LEEWAY_SECONDS, var(LEEWAY_SECONDS), 60)?;
        let typ = var(TYP);
        let refuse_refresh_typ = typ.is_none();
        let policy = PolicyConfig {
            issuers: Some(issuers),
            audiences,
            algorithms: string_list(ALGORITHMS, var(ALGORITHMS))?,
            leeway_seconds: Some(leeway_seconds),
            required_claims: string_list(REQUIRED_CLAIMS, var(REQUIRED_CLAIMS))?,
            typ,
            max_token_bytes: None,
            min_rsa_bits: None,
        }
        .into_policy()
        .map_err(|e| ConfigError::Invalid(ALGORITHMS, e.to_string()))?;

        let hub = match var(REVOCATION_SOURCE).as_deref() {
            None | Some("service") => None,
            Some("hub") => {
                let tenant = var(HUB_TENANT).unwrap_or_else(|| "default".to_owned());
                if !tollgate_hub::config::valid_tenant(&tenant) {
                    return Err(ConfigError::Invalid(HUB_TENANT, format!("{tenant:?}: 1-64 of A-Z a-z 0-9 . _ -")));
                }
                let check_interval_ms = number(HUB_CHECK_INTERVAL_MS, var(HUB_CHECK_INTERVAL_MS), 1000)?;
                if check_interval_ms == 0 {
                    return Err(ConfigError::Invalid(HUB_CHECK_INTERVAL_MS, "must be at least 1".into()));
                }
                let snapshot_ttl_seconds = number(HUB_SNAPSHOT_TTL_SECONDS, var(HUB_SNAPSHOT_TTL_SECONDS), 300)?;
                Some(HubTier { tenant, check_interval_ms, snapshot_ttl_seconds })
            }
            Some(other) => {
                return Err(ConfigError::Invalid(REVOCATION_SOURCE, format!("{other:?} is not service or hub")))
            }
        };
        let hub_api = match var(HUB_API).as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => return Err(ConfigError::Invalid(HUB_API, format!("{other:?} is not on or off"))),
        };
        // With the hub tier the replica needs no service URL of its own.
        let revocation_url = match (&hub, var(REVOCATION_URL)) {
            (Some(h), None) => Some(format!("durable-object:{}/{}", tollgate_hub::api::BINDING, h.tenant)),
            (_, url) => url,
        };
        let revocation = match (var(REVOCATION).as_deref(), revocation_url) {
            (Some("off"), None) => None,
            (Some("off"), Some(_)) => {
                return Err(ConfigError::Invalid(REVOCATION, format!("\"off\" while {REVOCATION_URL} is set")))
            }
            (Some(other), _) if other != "on" => {
                return Err(ConfigError::Invalid(REVOCATION, format!("{other:?} is not on or off")))
            }
            (_, None) => {
                return Err(ConfigError::Invalid(
                    REVOCATION_URL,
                    format!("not set: revocation needs a service (or {REVOCATION} = \"off\", asked for by name)"),
                ))
            }
            (_, Some(url)) => {
                if hub.is_none() {
                    check_fetch_url(REVOCATION_URL, &url)?;
                }
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
                    hub: hub.clone(),
                })
            }
        };

        let origin_auth = match var(ORIGIN_AUTH).as_deref() {
            None | Some("hs256") => {
                let secret = get(ORIGIN_SECRET).filter(|s| !s.is_empty()).ok_or(ConfigError::Invalid(
                    ORIGIN_SECRET,
                    format!(
                        "not set: the origin cannot tell a request came through the Worker without it \
                         (wrangler secret put {ORIGIN_SECRET}; or {ORIGIN_AUTH} = \"es256\" with \
                         {ORIGIN_SIGNING_KEY}, or \"none\" for origins only Cloudflare can reach)"
                    ),
                ))?;
                if secret.len() < MIN_ORIGIN_SECRET_BYTES {
                    return Err(ConfigError::Invalid(
                        ORIGIN_SECRET,
                        format!("{} bytes: at least {MIN_ORIGIN_SECRET_BYTES} are needed", secret.len()),
                    ));
                }
                OriginAuth::Hs256 { secret: secret.into_bytes() }
            }
            Some("es256") => {
                OriginAuth::Es256 { key: var(ORIGIN_SIGNING_KEY).ok_or(ConfigError::Missing(ORIGIN_SIGNING_KEY))? }
            }
            Some("none") => OriginAuth::None,
            Some(other) => {
                return Err(ConfigError::Invalid(ORIGIN_AUTH, format!("{other:?} is not hs256, es256 or none")))
            }
        };
        let assertion_ttl_seconds = number(ASSERTION_TTL_SECONDS, var(ASSERTION_TTL_SECONDS), 60)?;
        if assertion_ttl_seconds == 0 {
            return Err(ConfigError::Invalid(ASSERTION_TTL_SECONDS, "must be at least 1".into()));
        }
        let allow_double_encoding = match var(DOUBLE_ENCODING).as_deref() {
            None | Some("refuse") => false,
            Some("allow") => true,
            Some(other) => {
                return Err(ConfigError::Invalid(DOUBLE_ENCODING, format!("{other:?} is not refuse or allow")))
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
            policy,
            refuse_refresh_typ,
            revocation,
            routes,
            cookie_name: var(COOKIE_NAME).unwrap_or_else(|| "access_token".to_owned()),
            jwks_cooldown_seconds: number(JWKS_COOLDOWN_SECONDS, var(JWKS_COOLDOWN_SECONDS), 30)?,
            token_cache_size: usize::try_from(number(TOKEN_CACHE_SIZE, var(TOKEN_CACHE_SIZE), 10_000)?)
                .map_err(|_| ConfigError::Invalid(TOKEN_CACHE_SIZE, "too large".into()))?,
            crypto,
            bench_endpoint: var(BENCH_ENDPOINT).is_some_and(|v| v == "on"),
            hub_api,
            origin_auth,
            assertion_ttl_seconds,
            allow_double_encoding,
        })
    }

    /// A one-line summary for the log (no secrets).
    pub fn summary(&self) -> String {
        let sources: Vec<String> = self
            .sources
            .iter()
            .map(|s| {
                let keys = match &s.keys {
                    Keys::Url(url) => url.clone(),
                    Keys::Inline(j) => format!("inline ({} keys)", j.keys().len()),
                };
                format!("{} <- {keys}", s.issuers.join("|"))
            })
            .collect();
        let audiences = match &self.policy.audiences {
            Some(a) => format!("{a:?}"),
            None => "any (aud not checked, as configured)".to_owned(),
        };
        let auth = match &self.origin_auth {
            OriginAuth::Hs256 { .. } => "hs256",
            OriginAuth::Es256 { .. } => "es256",
            OriginAuth::None => "none (no X-Tollgate-Assertion, as configured)",
        };
        format!(
            "origin={} keys={:?} audiences={audiences} typ={} leeway={}s revocation={} routes={} crypto={:?} \
             origin_auth={auth} assertion_ttl={}s double_encoding={}",
            self.origin.base,
            sources,
            self.policy.typ.as_deref().unwrap_or("any but refresh+jwt"),
            self.policy.leeway_seconds,
            self.revocation.as_ref().map_or_else(
                || "off (as configured)".to_owned(),
                |r| format!("{} (max staleness {}s, fail {:?})", r.url, r.max_staleness_seconds, r.fail_mode)
            ),
            self.routes.len(),
            self.crypto,
            self.assertion_ttl_seconds,
            if self.allow_double_encoding { "allow" } else { "refuse" },
        )
    }
}

/// The key sources of `TOLLGATE_ISSUERS` (objects and presets: each issuer with its own
/// keys), or of the one-issuer shorthand (one issuer string, its keys in
/// `TOLLGATE_JWKS_URLS` / `TOLLGATE_JWKS`; presets there bring their own issuers).
fn key_sources(
    issuers: &Option<String>,
    jwks_urls: &Option<String>,
    jwks: &Option<String>,
    preset_source: &dyn Fn(&Preset) -> Result<KeySource, ConfigError>,
) -> Result<Vec<KeySource>, ConfigError> {
    let items: Vec<Value> = match issuers {
        None => Vec::new(),
        Some(doc) => serde_json::from_str(doc)
            .map_err(|_| ConfigError::Invalid(ISSUERS, "a JSON array of issuers (strings or objects)".into()))?,
    };
    let structured = items.iter().any(Value::is_object);
    let mut sources = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for item in &items {
        match item {
            Value::String(name) => match preset(name) {
                Some(p) => sources.push(preset_source(p)?),
                None => plain.push(name.clone()),
            },
            Value::Object(o) => sources.push(issuer_object(o, preset_source)?),
            _ => return Err(ConfigError::Invalid(ISSUERS, "each issuer is a string or an object".into())),
        }
    }
    let mut shorthand: Vec<Keys> = Vec::new();
    for entry in string_list(JWKS_URLS, jwks_urls.clone())?.unwrap_or_default() {
        match preset(&entry) {
            // A preset brings its own issuers; listed in both places it is one source.
            Some(p) => {
                let s = preset_source(p)?;
                if !sources.iter().any(|x: &KeySource| x.preset == s.preset) {
                    sources.push(s);
                }
            }
            None => {
                check_fetch_url(JWKS_URLS, &entry)?;
                shorthand.push(Keys::Url(entry));
            }
        }
    }
    if let Some(doc) = jwks {
        shorthand.push(Keys::Inline(
            Jwks::from_json(doc.as_bytes()).map_err(|e| ConfigError::Invalid(JWKS, e.to_string()))?,
        ));
    }
    if structured && !plain.is_empty() {
        return Err(ConfigError::Invalid(
            ISSUERS,
            format!("{:?} has no keys: write it as {{\"issuer\": …, \"jwks_url\": …}}", plain[0]),
        ));
    }
    match (plain.len(), shorthand.is_empty()) {
        (_, true) if !plain.is_empty() => {
            return Err(ConfigError::Invalid(
                ISSUERS,
                format!("{:?} has no keys: set {JWKS_URLS} or {JWKS}, or write it as an object", plain[0]),
            ))
        }
        (0, false) => {
            return Err(ConfigError::Invalid(
                ISSUERS,
                format!("not set: name the issuer whose tokens the keys of {JWKS_URLS} / {JWKS} verify"),
            ))
        }
        (1, false) => {
            let issuer = &plain[0];
            for keys in shorthand {
                sources.push(KeySource { issuers: vec![issuer.clone()], preset: None, keys });
            }
        }
        (n, false) if n > 1 => {
            return Err(ConfigError::Invalid(
                ISSUERS,
                format!(
                    "{n} issuers share the keys of {JWKS_URLS} / {JWKS}: that form is for one issuer; give each \
                     issuer its own keys ({{\"issuer\": …, \"jwks_url\": …}})"
                ),
            ))
        }
        _ => {}
    }
    if sources.is_empty() {
        return Err(ConfigError::Missing("TOLLGATE_ISSUERS (with keys) or TOLLGATE_JWKS_URLS / TOLLGATE_JWKS"));
    }
    Ok(sources)
}

/// One `{"issuer": …, "jwks_url": …}` or `{"issuer": …, "jwks": {…}}` object (a preset
/// name as the issuer takes the preset's keys).
fn issuer_object(
    o: &serde_json::Map<String, Value>,
    preset_source: &dyn Fn(&Preset) -> Result<KeySource, ConfigError>,
) -> Result<KeySource, ConfigError> {
    let bad = |why: String| ConfigError::Invalid(ISSUERS, why);
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "issuer" | "jwks_url" | "jwks")) {
        return Err(bad(format!("unknown field {k:?} (issuer, jwks_url, jwks)")));
    }
    let Some(Value::String(issuer)) = o.get("issuer") else {
        return Err(bad("every object needs an \"issuer\" string".into()));
    };
    let keys = match (o.get("jwks_url"), o.get("jwks")) {
        (Some(Value::String(url)), None) => {
            check_fetch_url(ISSUERS, url)?;
            Keys::Url(url.clone())
        }
        (None, Some(doc)) => {
            Keys::Inline(Jwks::from_json(doc.to_string().as_bytes()).map_err(|e| bad(format!("{issuer}: jwks: {e}")))?)
        }
        (None, None) => match preset(issuer) {
            Some(p) => return preset_source(p),
            None => return Err(bad(format!("{issuer:?} has no keys: add \"jwks_url\" or \"jwks\""))),
        },
        _ => return Err(bad(format!("{issuer:?}: one of jwks_url (a string) or jwks"))),
    };
    Ok(KeySource { issuers: vec![issuer.clone()], preset: None, keys })
}

/// `TOLLGATE_ORIGIN`, split as the assertion needs it.
fn origin(url: &str) -> Result<Origin, ConfigError> {
    let bad = |why: &str| ConfigError::Invalid(ORIGIN, format!("{url:?} {why}"));
    let base = url.trim_end_matches('/');
    let (scheme, rest) = base.split_once("://").ok_or_else(|| bad("is not an http(s) URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err(bad("is not an http(s) URL")),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') || !authority.is_ascii() {
        return Err(bad("needs a plain host (ASCII, punycode for international names; no user info)"));
    }
    if path.contains(['?', '#']) {
        return Err(bad("may not hold a query or a fragment"));
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("has an unclosed IPv6 address"))?;
            match after {
                "" => (format!("[{h}]"), None),
                _ => (format!("[{h}]"), Some(after.strip_prefix(':').ok_or_else(|| bad("has an invalid port"))?)),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.clone(), None),
        },
    };
    let host = match port {
        None => host,
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() => {
            return Err(bad("has an invalid port"))
        }
        Some(p) if p.parse::<u16>().ok() == default_port.parse::<u16>().ok() => host,
        Some(p) => format!("{host}:{}", p.parse::<u16>().unwrap_or_default()),
    };
    Ok(Origin { base: base.to_owned(), audience: format!("{scheme}://{host}"), path: path.to_owned() })
}

/// A URL the Worker fetches trusted data from: `https://`, or `http://` on loopback
/// (`127.0.0.0/8`, `[::1]`, `localhost`) for local development.
fn check_fetch_url(name: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(ConfigError::Invalid(name, format!("{url:?} is not an http(s) URL")));
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if is_loopback(authority) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(name, format!("{url:?}: http:// is allowed only on loopback; use https://")))
    }
}

/// Whether an authority (`host[:port]`) names this machine.
fn is_loopback(authority: &str) -> bool {
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next() == Some("::1");
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts[0] == "127"
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
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
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// The least configuration that starts, with `vars` on top (an empty value unsets).
    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = [
            (ORIGIN, "http://127.0.0.1:1/"),
            (ISSUERS, r#"["https://i.test"]"#),
            (JWKS_URLS, r#"["https://i.test/jwks"]"#),
            (AUDIENCES, r#"["api"]"#),
            (REVOCATION, "off"),
            (ORIGIN_SECRET, SECRET),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in vars {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_vars(&|name| map.get(name).cloned())
    }

    fn invalid(r: Result<Config, ConfigError>, name: &str) -> bool {
        matches!(r, Err(ConfigError::Invalid(n, _)) | Err(ConfigError::Missing(n)) if n == name)
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c.origin,
            Origin { base: "http://127.0.0.1:1".into(), audience: "http://127.0.0.1:1".into(), path: String::new() }
        );
        assert_eq!(c.policy.leeway_seconds, 60);
        assert_eq!(c.cookie_name, "access_token");
        assert_eq!(c.jwks_cooldown_seconds, 30);
        assert_eq!(c.crypto, CryptoBackend::WebCrypto);
        assert_eq!(c.origin_auth, OriginAuth::Hs256 { secret: SECRET.as_bytes().to_vec() });
        assert_eq!(c.assertion_ttl_seconds, 60);
        assert!(!c.allow_double_encoding && c.refuse_refresh_typ && c.revocation.is_none());
        assert_eq!(c.policy.issuers.as_deref(), Some(&["https://i.test".to_owned()][..]));
        assert_eq!(c.routes.len(), 1);
    }

    #[test]
    fn origins_as_url_origin_spells_them() {
        for (url, audience, path) in [
            ("https://API.example.com:443/base/", "https://api.example.com", "/base"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080", ""),
            ("http://h.test:80/a/b", "http://h.test", "/a/b"),
            ("http://[::1]:9/", "http://[::1]:9", ""),
            ("HTTP://h.test:0080", "http://h.test", ""),
        ] {
            let o = cfg(&[(ORIGIN, url)]).unwrap().origin;
            assert_eq!((o.audience.as_str(), o.path.as_str()), (audience, path), "{url}");
        }
        for bad in ["ftp://x", "http://u:p@h.test", "https://h.test/?q=1", "http://h.test:x", "https://bücher.test"] {
            assert!(invalid(cfg(&[(ORIGIN, bad)]), ORIGIN), "{bad}");
        }
    }

    #[test]
    fn the_origin_needs_a_secret_unless_told_otherwise() {
        assert!(invalid(cfg(&[(ORIGIN_SECRET, "")]), ORIGIN_SECRET));
        assert!(invalid(cfg(&[(ORIGIN_SECRET, "short")]), ORIGIN_SECRET));
        assert_eq!(cfg(&[(ORIGIN_SECRET, ""), (ORIGIN_AUTH, "none")]).unwrap().origin_auth, OriginAuth::None);
        assert!(invalid(cfg(&[(ORIGIN_AUTH, "es256")]), ORIGIN_SIGNING_KEY));
        assert!(matches!(
            cfg(&[(ORIGIN_AUTH, "es256"), (ORIGIN_SIGNING_KEY, "{}")]).unwrap().origin_auth,
            OriginAuth::Es256 { .. }
        ));
        assert!(invalid(cfg(&[(ORIGIN_AUTH, "hmac")]), ORIGIN_AUTH));
        assert!(invalid(cfg(&[(ASSERTION_TTL_SECONDS, "0")]), ASSERTION_TTL_SECONDS));
    }

    #[test]
    fn issuers_and_their_keys() {
        let c = cfg(&[
            (JWKS_URLS, ""),
            (
                ISSUERS,
                r#"[{"issuer":"https://a.test","jwks_url":"https://a.test/k"},
                    {"issuer":"https://b.test","jwks":{"keys":[]}}, "kakao"]"#,
            ),
            (AUDIENCES, r#"["api"]"#),
        ])
        .unwrap();
        let bound: Vec<Vec<String>> = c.sources.iter().map(|s| s.issuers.clone()).collect();
        assert_eq!(
            bound,
            [
                vec!["https://a.test".to_owned()],
                vec!["https://b.test".to_owned()],
                vec!["https://kauth.kakao.com".to_owned()]
            ]
        );
        // The shorthand: one issuer for the keys of TOLLGATE_JWKS_URLS / TOLLGATE_JWKS.
        assert!(cfg(&[(ISSUERS, r#"["https://a.test","https://b.test"]"#)]).is_err());
        assert!(invalid(cfg(&[(ISSUERS, "")]), ISSUERS));
        assert!(invalid(cfg(&[(ISSUERS, r#"[{"issuer":"https://a.test"}]"#)]), ISSUERS));
        assert!(invalid(
            cfg(&[(ISSUERS, r#"[{"issuer":"https://a.test","jwks_url":"https://a.test/k"},"https://b.test"]"#)]),
            ISSUERS
        ));
        assert!(invalid(cfg(&[(ISSUERS, r#"[{"issuer":"x","jwks_url":"https://k","extra":1}]"#)]), ISSUERS));
    }

    #[test]
    fn presets_expand_and_can_be_overridden() {
        let c = cfg(&[
            (JWKS_URLS, r#"["google","kakao","https://x.test/k"]"#),
            (ISSUERS, r#"["google","kakao","https://x.test"]"#),
            (AUDIENCES, r#"["my-client-id"]"#),
            (PRESET_JWKS_URLS, r#"{"kakao":"http://127.0.0.1:9/k.json"}"#),
        ])
        .unwrap();
        assert_eq!(
            c.policy.issuers.unwrap(),
            ["https://accounts.google.com", "accounts.google.com", "https://kauth.kakao.com", "https://x.test"]
        );
        let urls: Vec<(&str, Option<&str>)> = c
            .sources
            .iter()
            .map(|s| match &s.keys {
                Keys::Url(u) => (u.as_str(), s.preset),
                Keys::Inline(_) => ("inline", s.preset),
            })
            .collect();
        assert_eq!(
            urls,
            [
                ("https://www.googleapis.com/oauth2/v3/certs", Some("google")),
                ("http://127.0.0.1:9/k.json", Some("kakao")),
                ("https://x.test/k", None)
            ]
        );
    }

    #[test]
    fn audiences_are_required_unless_any_is_asked_for() {
        assert!(invalid(cfg(&[(AUDIENCES, "")]), AUDIENCES));
        assert!(invalid(cfg(&[(AUDIENCES, "[]")]), AUDIENCES));
        assert_eq!(cfg(&[(AUDIENCES, "any")]).unwrap().policy.audiences, None);
        // A provider's keys sign for every app: "any" is not enough there.
        assert!(invalid(cfg(&[(AUDIENCES, "any"), (ISSUERS, r#"["google"]"#), (JWKS_URLS, "")]), AUDIENCES));
    }

    #[test]
    fn revocation_is_on_unless_turned_off_by_name() {
        assert!(invalid(cfg(&[(REVOCATION, "")]), REVOCATION_URL));
        let on = [(REVOCATION, ""), (REVOCATION_URL, "http://127.0.0.1:8790")];
        assert_eq!(cfg(&on).unwrap_err(), ConfigError::Missing(DENYLIST_KEY));
        let mut v = on.to_vec();
        v.extend([(DENYLIST_KEY, EC), (FAIL_MODE, "open")]);
        let r = cfg(&v).unwrap().revocation.unwrap();
        assert_eq!((r.max_staleness_seconds, r.fail_mode), (10, FailMode::Open));
        v.push((FAIL_MODE, "ajar"));
        assert!(invalid(cfg(&v), FAIL_MODE));
        assert!(invalid(cfg(&[(REVOCATION, "off"), (REVOCATION_URL, "http://127.0.0.1:1")]), REVOCATION));
        assert!(invalid(cfg(&[(REVOCATION, "maybe")]), REVOCATION));
    }

    #[test]
    fn trusted_data_comes_over_https_or_loopback() {
        let with_url = |u: &str| cfg(&[(REVOCATION, ""), (REVOCATION_URL, u), (DENYLIST_KEY, EC)]);
        for ok in [
            "https://revocation.example.com",
            "http://127.0.0.1:8790",
            "http://127.9.9.9",
            "http://localhost:1",
            "http://[::1]:1/",
        ] {
            assert!(with_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://revocation.example.com",
            "http://10.0.0.1:8790",
            "http://127.0.0.1.evil.test",
            "http://localhost.evil.test",
            "http://u@127.0.0.1",
        ] {
            assert!(invalid(with_url(bad), REVOCATION_URL), "{bad}");
        }
        assert!(invalid(cfg(&[(JWKS_URLS, r#"["http://keys.example.com/k"]"#)]), JWKS_URLS));
    }

    #[test]
    fn invalid_values_fail_closed() {
        for bad in [
            vec![(JWKS_URLS, "https://not-json")],
            vec![(JWKS_URLS, r#"["ftp://x"]"#)],
            vec![(JWKS_URLS, ""), (JWKS, "{}")],
            vec![(ALGORITHMS, r#"["HS256"]"#)],
            vec![(LEEWAY_SECONDS, "-1")],
            vec![(ROUTES, r#"[{"path":"/x","roles":"admin"}]"#)],
            vec![(CRYPTO, "fast")],
            vec![(DOUBLE_ENCODING, "sometimes")],
            vec![(JWKS_URLS, "")],
        ] {
            assert!(cfg(&bad).is_err(), "{bad:?}");
        }
        assert!(cfg(&[(DOUBLE_ENCODING, "allow")]).unwrap().allow_double_encoding);
        assert_eq!(cfg(&[(ORIGIN, "")]).unwrap_err(), ConfigError::Missing(ORIGIN));
    }
}
