//! Configuration: defaults, then a TOML file, then `TOLLGATE_*` environment variables,
//! then command-line flags; validated before the service starts.
//!
//! Every field can be set in the file under its own name and in the environment as
//! `TOLLGATE_` plus the name in upper case (`max_body_bytes` → `TOLLGATE_MAX_BODY_BYTES`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The service's configuration. See the README for every field's meaning.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory: the sled database, the signing key, checkpoints and API keys.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Deadline for a whole request (long-polls get `max_long_poll_secs` on top), ms.
    pub request_timeout_ms: u64,
    /// Requests handled at once; more are refused with 503.
    pub max_concurrent_requests: usize,
    /// Longest `wait` a delta request may ask for, seconds (longer asks are clamped).
    pub max_long_poll_secs: u64,
    /// Replicas that may long-poll at once; more are refused with 503.
    pub max_replication_clients: usize,
    /// Most events in one `POST /v1/events` (at most 1000).
    pub max_events_per_request: usize,
    /// Most events in one delta; a replica further behind gets several.
    pub max_delta_events: usize,
    /// Most entries listed by the JSON view of the denylist.
    pub max_json_entries: usize,
    /// Reuse interval for a refresh family's immediate predecessor, seconds (0: off).
    pub refresh_grace_secs: u64,
    /// Longest lifetime of any token the origins issue, seconds; retention keeps log
    /// entries at least this long.
    pub max_token_lifetime_secs: u64,
    /// How often expired denylist entries are pruned, seconds.
    pub prune_interval_secs: u64,
    /// How long shutdown waits for in-flight requests, seconds.
    pub shutdown_grace_secs: u64,
    /// Write a checkpoint on graceful shutdown (faster next start).
    pub checkpoint_on_shutdown: bool,
    /// The ES256 signing key as 64 hex digits; default: generated once and kept in
    /// `<data_dir>/signing-key`.
    pub signing_key: Option<String>,
    /// A file holding the signing key as 64 hex digits (instead of `signing_key`).
    pub signing_key_file: Option<PathBuf>,
    /// From accept (or the first byte after an idle spell) to a complete request
    /// head, ms; a connection slower than that is closed.
    pub header_timeout_ms: u64,
    /// How long a kept-alive connection may sit idle between requests, seconds.
    pub keep_alive_timeout_secs: u64,
    /// Deadline for reading a request body, ms (408 `body_timeout`, connection closed).
    pub body_timeout_ms: u64,
    /// Open connections, all clients together (kept below the file limit).
    pub max_connections: usize,
    /// Open connections from one client address (at most half of `max_connections`).
    pub max_connections_per_ip: usize,
    /// Latest `exp` (and `before`) accepted, seconds ahead of now (400 `bad_expiry`).
    pub max_expiry_ahead_secs: u64,
    /// The largest leeway any edge verifies `exp` with, seconds: entries are kept
    /// until `exp` plus this.
    pub edge_leeway_secs: u64,
    /// Events per second one `events:write` key may post, sustained (429 beyond).
    pub key_events_per_sec: u64,
    /// Events one key may post in a burst above the sustained rate.
    pub key_burst_events: u64,
    /// Live denylist entries one key may have created (429 beyond).
    pub key_max_live_entries: u64,
    /// How long after a rotation a retry of it is answered as a retry, seconds; later
    /// it is reuse.
    pub rotation_retry_secs: u64,
    /// Whether `/metrics` needs a key with the `metrics:read` scope.
    pub metrics_require_key: bool,
    /// Upgrade window: answer `GET /v1/denylist` requests that do not ask for a wire
    /// format version (`?wire=2`) in version 1, for replicas built before version 2.
    /// Off by default: version 1 carries no epoch and no creation time.
    pub legacy_wire_v1: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data/revocation"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8790)),
            max_body_bytes: 1 << 20,
            request_timeout_ms: 10_000,
            max_concurrent_requests: 1024,
            max_long_poll_secs: 30,
            max_replication_clients: 4096,
            max_events_per_request: 1000,
            max_delta_events: 10_000,
            max_json_entries: 100_000,
            refresh_grace_secs: 0,
            max_token_lifetime_secs: 86_400,
            prune_interval_secs: 60,
            shutdown_grace_secs: 10,
            checkpoint_on_shutdown: true,
            signing_key: None,
            signing_key_file: None,
            header_timeout_ms: 10_000,
            keep_alive_timeout_secs: 30,
            body_timeout_ms: 10_000,
            max_connections: 8192,
            max_connections_per_ip: 256,
            max_expiry_ahead_secs: 30 * 86_400,
            edge_leeway_secs: 300,
            key_events_per_sec: 1000,
            key_burst_events: 10_000,
            key_max_live_entries: 1_000_000,
            rotation_retry_secs: 30,
            metrics_require_key: true,
            legacy_wire_v1: false,
        }
    }
}

/// A configuration error, naming the source and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse<T: std::str::FromStr>(var: &str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| ConfigError(format!("{var}={v:?}: {e}")))
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("config file: {e}")))
    }

    /// Applies `TOLLGATE_*` variables from `vars` (e.g. `std::env::vars()`) and returns
    /// the `TOLLGATE_` names it does not know, for the caller to log as warnings. They are
    /// not refused: the edge Worker's settings share the prefix (`TOLLGATE_ORIGIN`, ...)
    /// and may well be exported in the same shell. A known name with a bad value is an
    /// error. `TOLLGATE_CONFIG` (the file) and `TOLLGATE_LOG` (log filter) are read
    /// elsewhere.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<Vec<String>, ConfigError> {
        let mut unknown = Vec::new();
        for (k, v) in vars {
            let Some(name) = k.strip_prefix("TOLLGATE_") else { continue };
            let k = k.as_str();
            match name {
                "CONFIG" | "LOG" | "LOG_FORMAT" => {}
                "DATA_DIR" => self.data_dir = PathBuf::from(v),
                "LISTEN" => self.listen = parse(k, &v)?,
                "MAX_BODY_BYTES" => self.max_body_bytes = parse(k, &v)?,
                "REQUEST_TIMEOUT_MS" => self.request_timeout_ms = parse(k, &v)?,
                "MAX_CONCURRENT_REQUESTS" => self.max_concurrent_requests = parse(k, &v)?,
                "MAX_LONG_POLL_SECS" => self.max_long_poll_secs = parse(k, &v)?,
                "MAX_REPLICATION_CLIENTS" => self.max_replication_clients = parse(k, &v)?,
                "MAX_EVENTS_PER_REQUEST" => self.max_events_per_request = parse(k, &v)?,
                "MAX_DELTA_EVENTS" => self.max_delta_events = parse(k, &v)?,
                "MAX_JSON_ENTRIES" => self.max_json_entries = parse(k, &v)?,
                "REFRESH_GRACE_SECS" => self.refresh_grace_secs = parse(k, &v)?,
                "MAX_TOKEN_LIFETIME_SECS" => self.max_token_lifetime_secs = parse(k, &v)?,
                "PRUNE_INTERVAL_SECS" => self.prune_interval_secs = parse(k, &v)?,
                "SHUTDOWN_GRACE_SECS" => self.shutdown_grace_secs = parse(k, &v)?,
                "CHECKPOINT_ON_SHUTDOWN" => self.checkpoint_on_shutdown = parse(k, &v)?,
                "SIGNING_KEY" => self.signing_key = Some(v),
                "SIGNING_KEY_FILE" => self.signing_key_file = Some(PathBuf::from(v)),
                "HEADER_TIMEOUT_MS" => self.header_timeout_ms = parse(k, &v)?,
                "KEEP_ALIVE_TIMEOUT_SECS" => self.keep_alive_timeout_secs = parse(k, &v)?,
                "BODY_TIMEOUT_MS" => self.body_timeout_ms = parse(k, &v)?,
                "MAX_CONNECTIONS" => self.max_connections = parse(k, &v)?,
                "MAX_CONNECTIONS_PER_IP" => self.max_connections_per_ip = parse(k, &v)?,
                "MAX_EXPIRY_AHEAD_SECS" => self.max_expiry_ahead_secs = parse(k, &v)?,
                "EDGE_LEEWAY_SECS" => self.edge_leeway_secs = parse(k, &v)?,
                "KEY_EVENTS_PER_SEC" => self.key_events_per_sec = parse(k, &v)?,
                "KEY_BURST_EVENTS" => self.key_burst_events = parse(k, &v)?,
                "KEY_MAX_LIVE_ENTRIES" => self.key_max_live_entries = parse(k, &v)?,
                "ROTATION_RETRY_SECS" => self.rotation_retry_secs = parse(k, &v)?,
                "METRICS_REQUIRE_KEY" => self.metrics_require_key = parse(k, &v)?,
                "LEGACY_WIRE_V1" => self.legacy_wire_v1 = parse(k, &v)?,
                _ => unknown.push(k.to_string()),
            }
        }
        Ok(unknown)
    }

    /// Checks bounds and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_string()));
        if self.max_body_bytes < 1024 || self.max_body_bytes > 64 << 20 {
            return bad("max_body_bytes must be between 1 KiB and 64 MiB");
        }
        if !(1..=1000).contains(&self.max_events_per_request) {
            return bad("max_events_per_request must be between 1 and 1000");
        }
        if self.request_timeout_ms < 100 || self.request_timeout_ms > 300_000 {
            return bad("request_timeout_ms must be between 100 and 300000");
        }
        if self.max_concurrent_requests == 0 || self.max_replication_clients == 0 {
            return bad("max_concurrent_requests and max_replication_clients must be positive");
        }
        if self.max_long_poll_secs > 300 {
            return bad("max_long_poll_secs must be at most 300");
        }
        if self.max_delta_events == 0 || self.max_json_entries == 0 || self.prune_interval_secs == 0 {
            return bad("max_delta_events, max_json_entries and prune_interval_secs must be positive");
        }
        if !(100..=300_000).contains(&self.header_timeout_ms) || !(100..=300_000).contains(&self.body_timeout_ms) {
            return bad("header_timeout_ms and body_timeout_ms must be between 100 and 300000");
        }
        if !(1..=3600).contains(&self.keep_alive_timeout_secs) {
            return bad("keep_alive_timeout_secs must be between 1 and 3600");
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return bad("max_connections and max_connections_per_ip must be positive");
        }
        if !(60..=10 * 365 * 86_400).contains(&self.max_expiry_ahead_secs) {
            return bad("max_expiry_ahead_secs must be between 60 and 315360000 (ten years)");
        }
        if self.edge_leeway_secs > 86_400 {
            return bad("edge_leeway_secs must be at most 86400");
        }
        if self.key_events_per_sec == 0 || self.key_max_live_entries == 0 {
            return bad("key_events_per_sec and key_max_live_entries must be positive");
        }
        if self.key_burst_events < self.max_events_per_request as u64 {
            return bad("key_burst_events must be at least max_events_per_request (a full batch must fit)");
        }
        if self.rotation_retry_secs > 3600 {
            return bad("rotation_retry_secs must be at most 3600");
        }
        if self.signing_key.is_some() && self.signing_key_file.is_some() {
            return bad("set signing_key or signing_key_file, not both");
        }
        if let Some(k) = &self.signing_key {
            parse_secret(k)?;
        }
        Ok(())
    }
}

/// Parses a signing key of 64 hex digits.
pub(crate) fn parse_secret(hex: &str) -> Result<[u8; 32], ConfigError> {
    let hex = hex.trim();
    let mut out = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(ConfigError("signing key must be 64 hex digits".into()));
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| ConfigError("signing key must be 64 hex digits".into()))?;
    }
    Ok(out)
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("max_long_poll_secs", &self.max_long_poll_secs)
            .field("max_replication_clients", &self.max_replication_clients)
            .field("max_events_per_request", &self.max_events_per_request)
            .field("max_delta_events", &self.max_delta_events)
            .field("max_json_entries", &self.max_json_entries)
            .field("refresh_grace_secs", &self.refresh_grace_secs)
            .field("max_token_lifetime_secs", &self.max_token_lifetime_secs)
            .field("prune_interval_secs", &self.prune_interval_secs)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("checkpoint_on_shutdown", &self.checkpoint_on_shutdown)
            .field("signing_key", &self.signing_key.as_ref().map(|_| "<redacted>"))
            .field("signing_key_file", &self.signing_key_file)
            .field("header_timeout_ms", &self.header_timeout_ms)
            .field("keep_alive_timeout_secs", &self.keep_alive_timeout_secs)
            .field("body_timeout_ms", &self.body_timeout_ms)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_expiry_ahead_secs", &self.max_expiry_ahead_secs)
            .field("edge_leeway_secs", &self.edge_leeway_secs)
            .field("key_events_per_sec", &self.key_events_per_sec)
            .field("key_burst_events", &self.key_burst_events)
            .field("key_max_live_entries", &self.key_max_live_entries)
            .field("rotation_retry_secs", &self.rotation_retry_secs)
            .field("metrics_require_key", &self.metrics_require_key)
            .field("legacy_wire_v1", &self.legacy_wire_v1)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_secrets_are_redacted() {
        let mut c = Config::from_toml("listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_events_per_request, 1000);
        let env = [("TOLLGATE_MAX_BODY_BYTES", "8192"), ("TOLLGATE_SIGNING_KEY", &"ab".repeat(32)), ("PATH", "x")];
        c.apply_env(env.iter().map(|(a, b)| (a.to_string(), b.to_string()))).unwrap();
        assert_eq!(c.max_body_bytes, 8192);
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("abab"));
        assert!(Config::from_toml("nope = 1").is_err());
        let mut d = Config::default();
        assert!(d.apply_env([("TOLLGATE_LISTEN".to_string(), "x".to_string())]).is_err());
        let unknown = d.apply_env([("TOLLGATE_TYPO".to_string(), "1".to_string())]).unwrap();
        assert_eq!(unknown, vec!["TOLLGATE_TYPO".to_string()]);
        d.max_events_per_request = 1001;
        assert!(d.validate().is_err());
    }
}
