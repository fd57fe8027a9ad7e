//! Configuration: defaults → TOML file (`--config` or `TOLLGATE_AUTH_CONFIG`) →
//! `TOLLGATE_AUTH_*` environment → flags; validated before anything listens, and
//! logged with secrets redacted.
//!
//! Environment values are read as TOML values when they parse as one (`300`, `true`,
//! `["https://app.example"]`) and as strings otherwise. Unknown file keys and unknown
//! `TOLLGATE_AUTH_*` variables are refused: a misspelt security setting must not be
//! silently ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::ratelimit::Quota;
use crate::social::ProviderConfig;

/// The environment prefix.
pub const ENV_PREFIX: &str = "TOLLGATE_AUTH_";

/// Every setting of the service. See `auth/README.md` for each one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database lives (`auth.db`), unless `database_url` is set.
    pub data_dir: PathBuf,
    /// `postgres://user:pass@host:port/db`, or `sqlite://…`; default: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Database connections in the pool.
    pub max_db_connections: u32,
    /// Listen address.
    pub listen: SocketAddr,
    /// The tokens' `iss`.
    pub issuer: String,
    /// The access tokens' `aud`.
    pub audience: String,
    /// Access-token life, seconds.
    pub access_ttl_secs: u64,
    /// Refresh-token life, seconds (sliding: each refresh issues a new one).
    pub refresh_ttl_secs: u64,
    /// How long after a rotation a replay of the immediate predecessor returns the same
    /// successor pair (seconds).
    pub refresh_reuse_window_secs: u64,
    /// `ES256` (default) or `RS256`.
    pub signing_alg: String,
    /// Days between scheduled key rotations (0: never rotate on a schedule).
    pub key_rotation_days: u64,
    /// `max-age` of the JWKS document, seconds.
    pub jwks_max_age_secs: u64,
    /// The revocation service's base URL.
    pub revocation_url: String,
    /// Its `events:write` API key (secret).
    pub revocation_token: String,
    /// Drops `Secure` from cookies, for plain-HTTP localhost development only.
    pub insecure_dev_cookies: bool,
    /// Origins allowed to make credentialed cross-origin requests (CORS) and to send
    /// cookie-authenticated state-changing requests (CSRF), e.g. `https://app.example`.
    pub allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` hops are believed (CIDR or address).
    pub trusted_proxies: Vec<String>,
    /// Login attempts per account (GCRA).
    pub rate_login_account: Quota,
    /// Login attempts per client network.
    pub rate_login_ip: Quota,
    /// Login attempts, all clients.
    pub rate_login_global: Quota,
    /// Registrations per client network.
    pub rate_register_ip: Quota,
    /// Registrations, all clients.
    pub rate_register_global: Quota,
    /// Refreshes per client network.
    pub rate_refresh_ip: Quota,
    /// Rate-limit buckets held at most.
    pub rate_max_buckets: usize,
    /// Argon2id memory, KiB.
    pub argon2_m_kib: u32,
    /// Argon2id passes.
    pub argon2_t: u32,
    /// Argon2id lanes.
    pub argon2_p: u32,
    /// Password hashes computed at once (each takes `argon2_m_kib`).
    pub max_concurrent_hashes: usize,
    /// Request body limit, bytes.
    pub max_body_bytes: usize,
    /// Per-request deadline, milliseconds.
    pub request_timeout_ms: u64,
    /// Requests in flight at most (503 `overloaded` beyond).
    pub max_concurrent_requests: usize,
    /// Secrets the edge signs `X-Tollgate-Assertion` with (HS256); when set, the
    /// protected routes (`/profile`, `/admin/*`) require a valid assertion as well as a
    /// valid access token.
    pub edge_assertion_secrets: Vec<String>,
    /// The assertion's expected `aud` (the origin as the Worker's `TOLLGATE_ORIGIN`
    /// spells it, e.g. `http://127.0.0.1:8791`); unset: not checked.
    pub edge_assertion_audience: Option<String>,
    /// Roles given to a new account.
    pub default_roles: Vec<String>,
    /// The service's public base URL as browsers see it (through the edge), e.g.
    /// `https://app.example`: the providers' default redirect URIs are
    /// `{public_url}/auth/{provider}/callback`.
    pub public_url: Option<String>,
    /// Social-login providers by name (the routes' `{provider}`), each from a preset
    /// (`google`, `kakao`, `oidc`); see `auth/README.md`.
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./data/auth"),
            database_url: None,
            max_db_connections: 8,
            listen: SocketAddr::from(([127, 0, 0, 1], 8791)),
            issuer: "https://issuer.test".into(),
            audience: "https://api.test".into(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 7 * 24 * 3600,
            refresh_reuse_window_secs: 10,
            signing_alg: "ES256".into(),
            key_rotation_days: 30,
            jwks_max_age_secs: 300,
            revocation_url: "http://127.0.0.1:8790".into(),
            revocation_token: String::new(),
            insecure_dev_cookies: false,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            rate_login_account: Quota { burst: 5, interval_ms: 20_000 },
            rate_login_ip: Quota { burst: 20, interval_ms: 3_000 },
            rate_login_global: Quota { burst: 200, interval_ms: 5 },
            rate_register_ip: Quota { burst: 5, interval_ms: 60_000 },
            rate_register_global: Quota { burst: 100, interval_ms: 20 },
            rate_refresh_ip: Quota { burst: 60, interval_ms: 500 },
            rate_max_buckets: 1_000_000,
            argon2_m_kib: 19_456,
            argon2_t: 2,
            argon2_p: 1,
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            max_concurrent_requests: 1024,
            edge_assertion_secrets: Vec::new(),
            edge_assertion_audience: None,
            default_roles: vec!["user".into()],
            public_url: None,
            providers: BTreeMap::new(),
        }
    }
}

/// Flags given on the command line (they win over everything else).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--insecure-dev-cookies`.
    pub insecure_dev_cookies: bool,
}

impl Config {
    /// Builds the configuration from the file, the given environment variables and
    /// the flags, then validates it.
    pub fn load(overrides: &Overrides, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        let file = overrides
            .config_file
            .clone()
            .or_else(|| env.iter().find(|(k, _)| k == "TOLLGATE_AUTH_CONFIG").map(|(_, v)| PathBuf::from(v)));
        let mut table = match &file {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        for (key, raw) in &env {
            let name = key[ENV_PREFIX.len()..].to_ascii_lowercase();
            if name == "config" {
                continue;
            }
            table.insert(name, env_value(raw));
        }
        let mut config: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError(e.message().to_owned()))?;
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(l) = overrides.listen {
            config.listen = l;
        }
        if let Some(u) = &overrides.database_url {
            config.database_url = Some(u.clone());
        }
        if overrides.insecure_dev_cookies {
            config.insecure_dev_cookies = true;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting; the first problem found is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.issuer.is_empty() || self.audience.is_empty() {
            return err("issuer and audience may not be empty".into());
        }
        if self.access_ttl_secs == 0 || self.access_ttl_secs > 24 * 3600 {
            return err("access_ttl_secs must be between 1 and 86400".into());
        }
        if self.refresh_ttl_secs <= self.access_ttl_secs || self.refresh_ttl_secs > 366 * 24 * 3600 {
            return err("refresh_ttl_secs must be longer than access_ttl_secs and at most a year".into());
        }
        if self.refresh_reuse_window_secs > 60 {
            return err("refresh_reuse_window_secs may be at most 60".into());
        }
        if !matches!(self.signing_alg.as_str(), "ES256" | "RS256") {
            return err(format!("signing_alg must be ES256 or RS256, not {:?}", self.signing_alg));
        }
        if self.revocation_url.is_empty()
            || !(self.revocation_url.starts_with("http://") || self.revocation_url.starts_with("https://"))
        {
            return err("revocation_url must be an http(s) URL".into());
        }
        if self.revocation_token.is_empty() {
            return err("revocation_token (an events:write key of the revocation service) is required".into());
        }
        for o in &self.allowed_origins {
            if !is_origin(o) {
                return err(format!("allowed_origins: {o:?} is not an origin (scheme://host[:port], no path)"));
            }
        }
        self.trusted_networks()?;
        for (name, q) in self.quotas() {
            if q.burst == 0 || q.interval_ms == 0 {
                return err(format!("{name}: burst and interval_ms must be positive"));
            }
        }
        if argon2::Params::new(self.argon2_m_kib, self.argon2_t, self.argon2_p, None).is_err() {
            return err("argon2_m_kib / argon2_t / argon2_p are not valid Argon2 parameters".into());
        }
        if self.max_concurrent_hashes == 0 || self.max_concurrent_requests == 0 || self.max_body_bytes < 1024 {
            return err(
                "max_concurrent_hashes, max_concurrent_requests must be positive, max_body_bytes at least 1024".into(),
            );
        }
        for s in &self.edge_assertion_secrets {
            if s.len() < 32 {
                return err("edge_assertion_secrets: each secret needs at least 32 bytes".into());
            }
        }
        if let Some(u) = &self.public_url {
            crate::social::provider::check_url(u).map_err(|e| ConfigError(format!("public_url: {e}")))?;
        }
        for (name, p) in &self.providers {
            p.validate(name, self.public_url.as_deref()).map_err(ConfigError)?;
        }
        if self.insecure_dev_cookies && !self.listen.ip().is_loopback() {
            return err("insecure_dev_cookies is only allowed when listening on a loopback address".into());
        }
        Ok(())
    }

    /// The trusted proxy networks.
    pub fn trusted_networks(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| ConfigError(format!("trusted_proxies: {p:?} is not an address or CIDR")))
            })
            .collect()
    }

    /// The database URL in use (SQLite in `data_dir` by default).
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("auth.db").display()),
        }
    }

    fn quotas(&self) -> [(&'static str, Quota); 6] {
        [
            ("rate_login_account", self.rate_login_account),
            ("rate_login_ip", self.rate_login_ip),
            ("rate_login_global", self.rate_login_global),
            ("rate_register_ip", self.rate_register_ip),
            ("rate_register_global", self.rate_register_global),
            ("rate_refresh_ip", self.rate_refresh_ip),
        ]
    }

    /// The configuration as JSON with secrets redacted (for the start-up log).
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("revocation_token".into(), serde_json::json!("***"));
            let n = self.edge_assertion_secrets.len();
            o.insert("edge_assertion_secrets".into(), serde_json::json!(format!("*** ({n})")));
            if let Some(serde_json::Value::Object(providers)) = o.get_mut("providers") {
                for p in providers.values_mut() {
                    if let Some(p) = p.as_object_mut() {
                        p.insert("client_secret".into(), serde_json::json!("***"));
                    }
                }
            }
            if let Some(u) = &self.database_url {
                o.insert("database_url".into(), serde_json::json!(crate::store::redact(u)));
            }
        }
        v
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    text.parse::<toml::Table>().map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))
}

fn env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else { return false };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains('/')
        && !rest.contains('?')
        && !rest.contains('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn layers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.toml");
        std::fs::write(
            &file,
            "access_ttl_secs = 60\nrevocation_token = \"file\"\nrate_login_ip = { burst = 2, interval_ms = 10 }\n",
        )
        .unwrap();
        let o =
            Overrides { config_file: Some(file), listen: Some("127.0.0.1:9".parse().unwrap()), ..Overrides::default() };
        let c = Config::load(
            &o,
            env(&[
                ("TOLLGATE_AUTH_REVOCATION_TOKEN", "env"),
                ("TOLLGATE_AUTH_ALLOWED_ORIGINS", "[\"https://app.test\"]"),
                ("TOLLGATE_AUTH_ISSUER", "https://login.test"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.access_ttl_secs, 60);
        assert_eq!(c.revocation_token, "env");
        assert_eq!(c.allowed_origins, vec!["https://app.test".to_owned()]);
        assert_eq!(c.issuer, "https://login.test");
        assert_eq!(c.rate_login_ip, Quota { burst: 2, interval_ms: 10 });
        assert_eq!(c.listen, "127.0.0.1:9".parse().unwrap());
        assert_eq!(c.redacted()["revocation_token"], "***");
    }

    #[test]
    fn refuses_what_it_does_not_know_or_cannot_use() {
        let o = Overrides::default();
        let e = |pairs: &[(&str, &str)]| Config::load(&o, env(pairs)).unwrap_err().0;
        assert!(e(&[]).contains("revocation_token"));
        assert!(e(&[("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"), ("TOLLGATE_AUTH_COOKIE_SECUR", "false")])
            .contains("unknown field"));
        assert!(e(&[("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"), ("TOLLGATE_AUTH_SIGNING_ALG", "HS256")])
            .contains("signing_alg"));
        assert!(e(&[
            ("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"),
            ("TOLLGATE_AUTH_ALLOWED_ORIGINS", "[\"https://a.test/x\"]")
        ])
        .contains("allowed_origins"));
        assert!(e(&[("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"), ("TOLLGATE_AUTH_TRUSTED_PROXIES", "[\"nope\"]")])
            .contains("trusted_proxies"));
        assert!(e(&[
            ("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"),
            ("TOLLGATE_AUTH_INSECURE_DEV_COOKIES", "true"),
            ("TOLLGATE_AUTH_LISTEN", "0.0.0.0:8791")
        ])
        .contains("loopback"));
        let ok = Config::load(
            &o,
            env(&[
                ("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"),
                ("TOLLGATE_AUTH_TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"127.0.0.1\"]"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.trusted_networks().unwrap().len(), 2);
        let social = Config::load(
            &o,
            env(&[
                ("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"),
                ("TOLLGATE_AUTH_PUBLIC_URL", "https://app.test"),
                (
                    "TOLLGATE_AUTH_PROVIDERS",
                    "{ kakao = { preset = \"kakao\", client_id = \"c\", client_secret = \"s3cret\" } }",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(social.providers["kakao"].issuer().as_deref(), Some("https://kauth.kakao.com"));
        assert_eq!(social.redacted()["providers"]["kakao"]["client_secret"], "***");
        assert!(e(&[
            ("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"),
            ("TOLLGATE_AUTH_PROVIDERS", "{ kakao = { preset = \"kakao\", client_id = \"c\", client_secret = \"s\" } }")
        ])
        .contains("public_url"));
        assert!(e(&[
            ("TOLLGATE_AUTH_REVOCATION_TOKEN", "k"),
            ("TOLLGATE_AUTH_PUBLIC_URL", "https://app.test"),
            ("TOLLGATE_AUTH_PROVIDERS", "{ g = { preset = \"google\", client_id = \"c\", client_secret = \"s\", issuer = \"http://idp.example\" } }")
        ])
        .contains("https"));
        assert!(!ok.insecure_dev_cookies, "Secure cookies are the default");
    }
}
