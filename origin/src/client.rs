//! A typed async client of the revocation service (`revocation-service/openapi.yaml` is
//! the source of truth).
//!
//! - Every logical call has an idempotency key, made once and sent on every retry:
//!   `POST /v1/events` carries it per event (`idempotency_key`; a batch's events get
//!   `<key>.<index>`), and `/v1/sessions` and `/v1/refresh/rotate` are idempotent by
//!   their content (the service recognises a retried start and a retried rotation).
//!   So a retry after a lost answer appends nothing new: it gets the original `seq`
//!   with `duplicate: true`.
//! - Retries: on connection errors, timeouts and 503 only, never on another status;
//!   at most [`RetryPolicy::max_attempts`] attempts, exponential backoff with jitter
//!   (at least the service's `Retry-After`), each attempt bounded by
//!   `attempt_timeout`, the whole call by `call_timeout`.
//! - Errors keep the service's `error` kind, typed ([`ServiceErrorKind`]) and as sent.
//!
//! HTTP stack: `reqwest` (hyper underneath, one connection pool per client) with
//! rustls, so there is no OpenSSL to install or link; redirects are never followed (the
//! API key must not travel elsewhere), and plain `http://` is accepted only for a
//! loopback host unless [`ClientConfig::allow_plain_http`] asks for it by name.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use tokio::time::Instant;
use tollgate_core::jwk::{Jwk, KeyMaterial, P256Key};

use crate::clock::{self, Clock};
use crate::error::{ClientError, ServiceErrorKind};
use crate::random;

mod transport;
mod types;

pub use transport::RetryPolicy;
pub use types::{Appended, Event, EventKind, RotateOutcome, Rotation, SessionStart, SessionStarted};

/// Default timeout of one attempt.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default timeout of one call, retries included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Default life of a denylist entry posted without `exp`: the default access token
/// life (15 minutes) plus 5 minutes for clock skew and edge leeway.
pub const DEFAULT_ENTRY_LIFE: Duration = Duration::from_secs(20 * 60);
/// Longest `wait` of one long-poll of `wait_for_edge`, seconds (the service's default
/// `max_long_poll_secs`).
pub const MAX_LONG_POLL_SECS: u64 = 30;

/// How a [`RevocationClient`] talks to the service. Build with [`ClientConfig::new`]
/// and set fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The service's base URL (`https://revocation.example`, `http://127.0.0.1:8790`).
    pub base_url: String,
    /// An API key with scope `events:write` (`tollgate-revocation keys create`).
    pub api_key: String,
    /// A `denylist:read` key for [`RevocationClient::wait_for_edge`]; `None`: the
    /// `api_key` (enough when it has `admin`).
    pub read_key: Option<String>,
    /// Timeout of one attempt (default 5 s).
    pub attempt_timeout: Duration,
    /// Timeout of one call, retries included (default 15 s).
    pub call_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// `exp` of an event posted without one: now + this (revoke_subject: `before` +
    /// this). Set it to your access token life plus a margin (default 20 minutes).
    pub entry_life: Duration,
    /// The service's public JWK (`GET /v1/denylist/key`, pinned); when set,
    /// `wait_for_edge` checks the signature of the deltas it reads.
    pub denylist_key: Option<Value>,
    /// Accept `http://` to a host that is not loopback (the API key then travels in
    /// the clear). Off by default.
    pub allow_plain_http: bool,
}

impl ClientConfig {
    /// A configuration with the defaults.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            read_key: None,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            retry: RetryPolicy::default(),
            entry_life: DEFAULT_ENTRY_LIFE,
            denylist_key: None,
            allow_plain_http: false,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("attempt_timeout", &self.attempt_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("retry", &self.retry)
            .field("entry_life", &self.entry_life)
            .finish_non_exhaustive()
    }
}

/// The revocation service's client. Cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct RevocationClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
    denylist_key: Option<P256Key>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RevocationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationClient").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl RevocationClient {
    /// A client of the service at `base_url` with an `events:write` key and the
    /// default configuration.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<RevocationClient, ClientError> {
        RevocationClient::from_config(ClientConfig::new(base_url, api_key))
    }

    /// A client with this configuration, on the system clock.
    pub fn from_config(config: ClientConfig) -> Result<RevocationClient, ClientError> {
        let url = Url::parse(&config.base_url).map_err(|e| ClientError::Config(format!("base_url: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if config.allow_plain_http || is_loopback(&url) => {}
            "http" => {
                return Err(ClientError::Config(
                    "base_url: plain http to a host that is not loopback would send the API key in the clear; \
                     use https (or set allow_plain_http)"
                        .into(),
                ))
            }
            other => return Err(ClientError::Config(format!("base_url: unsupported scheme {other:?}"))),
        }
        for (name, k) in [("api_key", Some(&config.api_key)), ("read_key", config.read_key.as_ref())] {
            if let Some(k) = k {
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ClientError::Config(format!("{name}: expected printable ASCII without spaces")));
                }
            }
        }
        if config.retry.max_attempts == 0 {
            return Err(ClientError::Config("retry.max_attempts: at least 1".into()));
        }
        let denylist_key = match &config.denylist_key {
            None => None,
            Some(jwk) => Some(p256_from_jwk(jwk)?),
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.attempt_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("tollgate-origin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("http client: {e}")))?;
        let base = config.base_url.trim_end_matches('/').to_string();
        Ok(RevocationClient { inner: Arc::new(Inner { http, base, config, denylist_key, clock: clock::system() }) })
    }

    /// Uses `clock` for default `exp` values.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> RevocationClient {
        let i = &self.inner;
        RevocationClient {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                base: i.base.clone(),
                config: i.config.clone(),
                denylist_key: i.denylist_key.clone(),
                clock,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Starts a refresh family (at login): `POST /v1/sessions`. A retried start gets the
    /// original `seq` with `duplicate: true`.
    pub async fn start_session(&self, start: &SessionStart) -> Result<SessionStarted, ClientError> {
        let body = start.to_json();
        let a = self.post_json("/v1/sessions", &body).await?;
        match a.status {
            StatusCode::CREATED | StatusCode::OK => a.json(),
            _ => Err(a.error()),
        }
    }

    /// Rotates a refresh token: `POST /v1/refresh/rotate`. An earlier token of the
    /// family is reuse: [`RotateOutcome::ReuseDetected`], the family already revoked.
    /// Other refusals (`session_revoked`, `unknown_session`, `unknown_token`,
    /// `jti_conflict`, `issuer_mismatch`) are [`ClientError::Service`].
    pub async fn rotate(&self, rotation: &Rotation) -> Result<RotateOutcome, ClientError> {
        let body = rotation.to_json();
        let a = self.post_json("/v1/refresh/rotate", &body).await?;
        match a.status {
            StatusCode::OK => {
                let r: types::RotatedBody = a.json()?;
                Ok(RotateOutcome::Rotated { seq: r.seq, duplicate: r.duplicate, grace: r.grace })
            }
            StatusCode::CONFLICT => match a.error() {
                ClientError::Service(e) if e.kind == ServiceErrorKind::ReuseDetected => {
                    Ok(RotateOutcome::ReuseDetected { seq: e.body["seq"].as_u64() })
                }
                other => Err(other),
            },
            _ => Err(a.error()),
        }
    }

    /// Ends session `sid` (`logout`). Await it, or set `iss`/`exp` first:
    /// `client.logout(sid).iss(ISS).await`.
    pub fn logout(&self, sid: impl Into<String>) -> EventCall<'_> {
        EventCall { client: self, event: Event::logout(sid) }
    }

    /// Revokes the token with this `jti` (`revoke_token`).
    pub fn revoke_token(&self, jti: impl Into<String>) -> EventCall<'_> {
        EventCall { client: self, event: Event::revoke_token(jti) }
    }

    /// Revokes every token of `sub` issued before `before` (`revoke_subject`).
    pub fn revoke_subject(&self, sub: impl Into<String>, before: u64) -> EventCall<'_> {
        EventCall { client: self, event: Event::revoke_subject(sub, before) }
    }

    /// Posts one event.
    pub async fn post(&self, event: Event) -> Result<Appended, ClientError> {
        let mut v = self.post_events(std::slice::from_ref(&event), false).await?;
        v.pop().ok_or_else(|| ClientError::Protocol("no accepted entry".into()))
    }

    /// Posts a batch (at most 1000 events): appended whole or not at all; one
    /// acknowledgement per event, in order.
    pub async fn post_batch(&self, events: &[Event]) -> Result<Vec<Appended>, ClientError> {
        self.post_events(events, true).await
    }

    async fn post_events(&self, events: &[Event], batch: bool) -> Result<Vec<Appended>, ClientError> {
        let key = random::id128().map_err(|e| ClientError::Config(e.to_string()))?;
        let now = self.inner.clock.now();
        let life = self.inner.config.entry_life.as_secs();
        let default_exp = |e: &Event| match e.before {
            Some(b) => b.max(now).saturating_add(life),
            None => now.saturating_add(life),
        };
        let body = if batch {
            let items: Vec<Value> =
                events.iter().enumerate().map(|(i, e)| e.to_json(default_exp(e), format!("{key}.{i}"))).collect();
            json!({ "events": items })
        } else {
            let e = events.first().ok_or_else(|| ClientError::Config("no event".into()))?;
            e.to_json(default_exp(e), key)
        };
        let a = self.post_json("/v1/events", &body).await?;
        if a.status != StatusCode::OK {
            return Err(a.error());
        }
        let accepted = a.json::<types::AcceptedBody>()?.accepted;
        if accepted.len() != events.len() {
            return Err(ClientError::Protocol(format!("{} events posted, {} accepted", events.len(), accepted.len())));
        }
        Ok(accepted)
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<transport::Answer, ClientError> {
        let req = transport::Request {
            method: Method::POST,
            url: format!("{}{path}", self.inner.base),
            key: &self.inner.config.api_key,
            body: Some(body),
            accept: None,
            extra_time: Duration::ZERO,
        };
        self.call(&req, self.inner.config.call_timeout).await
    }

    async fn call(&self, req: &transport::Request<'_>, budget: Duration) -> Result<transport::Answer, ClientError> {
        let c = &self.inner.config;
        transport::call(&self.inner.http, req, &c.retry, c.attempt_timeout, Instant::now() + budget).await
    }

    /// The service's public denylist key (`GET /v1/denylist/key`), to pin in edge and
    /// client configuration.
    pub async fn fetch_denylist_key(&self) -> Result<Value, ClientError> {
        let req = transport::Request {
            method: Method::GET,
            url: format!("{}/v1/denylist/key", self.inner.base),
            key: &self.inner.config.api_key,
            body: None,
            accept: None,
            extra_time: Duration::ZERO,
        };
        let a = self.call(&req, self.inner.config.call_timeout).await?;
        if a.status != StatusCode::OK {
            return Err(a.error());
        }
        a.json()
    }

    /// Waits until the service replicates the denylist up to `seq` (an event's sequence
    /// number): long-polls `GET /v1/denylist?since=…&wait=…` (with the `read_key`) until
    /// a delta reaches `seq`, checking each delta's signature when `denylist_key` is
    /// set. Returns the sequence number reached. For tests and demos: after it returns,
    /// every replica that keeps up (the Worker, `RemoteDenylist`) holds the event on its
    /// next poll.
    pub async fn wait_for_edge(&self, seq: u64, within: Duration) -> Result<u64, ClientError> {
        let deadline = Instant::now() + within;
        let key = self.inner.config.read_key.as_deref().unwrap_or(&self.inner.config.api_key);
        let mut since = seq.saturating_sub(1);
        let mut attempts = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Deadline { attempts, last: format!("replicated up to {since}") });
            }
            attempts += 1;
            let wait = left.as_secs().min(MAX_LONG_POLL_SECS);
            let req = transport::Request {
                method: Method::GET,
                url: format!("{}/v1/denylist?since={since}&wait={wait}", self.inner.base),
                key,
                body: None,
                accept: None,
                extra_time: Duration::from_secs(wait),
            };
            let a = self.call(&req, left).await?;
            let reached = match a.status {
                StatusCode::OK => self.delta_to(&a)?,
                StatusCode::GONE => self.snapshot_seq(key, deadline).await?,
                _ => return Err(a.error()),
            };
            if reached >= seq {
                return Ok(reached);
            }
            if reached == since && wait == 0 {
                // Less than a second left and nothing new: one short pause, then the
                // deadline decides.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            since = reached;
        }
    }

    fn delta_to(&self, a: &transport::Answer) -> Result<u64, ClientError> {
        match &self.inner.denylist_key {
            Some(k) => tollgate_core::wire::decode_delta(&a.body, k)
                .map(|d| d.to)
                .map_err(|e| ClientError::Protocol(format!("delta: {e}"))),
            None => seq_header(a),
        }
    }

    async fn snapshot_seq(&self, key: &str, deadline: Instant) -> Result<u64, ClientError> {
        let req = transport::Request {
            method: Method::GET,
            url: format!("{}/v1/denylist", self.inner.base),
            key,
            body: None,
            accept: None,
            extra_time: Duration::ZERO,
        };
        let a = self.call(&req, deadline.saturating_duration_since(Instant::now())).await?;
        if a.status != StatusCode::OK {
            return Err(a.error());
        }
        if let Some(k) = &self.inner.denylist_key {
            let list = tollgate_core::wire::decode_snapshot(&a.body, k)
                .map_err(|e| ClientError::Protocol(format!("snapshot: {e}")))?;
            return Ok(list.seq());
        }
        seq_header(&a)
    }
}

fn seq_header(a: &transport::Answer) -> Result<u64, ClientError> {
    a.headers
        .get("x-tollgate-seq")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol("no X-Tollgate-Seq header".into()))
}

fn p256_from_jwk(jwk: &Value) -> Result<P256Key, ClientError> {
    let bad = || ClientError::Config("denylist_key: expected the service's P-256 public JWK".into());
    let obj = jwk.as_object().ok_or_else(bad)?;
    match Jwk::from_object(obj).map_err(|_| bad())?.material {
        KeyMaterial::P256(k) => Ok(k),
        _ => Err(bad()),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// One event call, sent when awaited: `client.logout(sid).iss(ISS).exp(EXP).await`.
#[must_use = "an event call does nothing until awaited"]
pub struct EventCall<'c> {
    client: &'c RevocationClient,
    event: Event,
}

impl<'c> EventCall<'c> {
    /// Scopes the entry to tokens of this issuer.
    pub fn iss(mut self, iss: impl Into<String>) -> EventCall<'c> {
        self.event = self.event.iss(iss);
        self
    }

    /// When the entry may be dropped (default: now + `entry_life`).
    pub fn exp(mut self, exp: u64) -> EventCall<'c> {
        self.event = self.event.exp(exp);
        self
    }

    /// The idempotency key (default: a new one per call, reused on its retries).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> EventCall<'c> {
        self.event = self.event.idempotency_key(key);
        self
    }

    /// The event as it stands.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Sends it.
    pub async fn send(self) -> Result<Appended, ClientError> {
        self.client.post(self.event).await
    }
}

impl<'c> IntoFuture for EventCall<'c> {
    type Output = Result<Appended, ClientError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'c>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_asked() {
        for ok in ["http://127.0.0.1:8790", "http://[::1]:1", "http://localhost:9", "https://rev.example"] {
            RevocationClient::new(ok, "tgk_a_b").unwrap();
        }
        let e = RevocationClient::new("http://rev.example", "k").unwrap_err();
        assert!(matches!(e, ClientError::Config(_)), "{e}");
        let mut c = ClientConfig::new("http://rev.example", "k");
        c.allow_plain_http = true;
        RevocationClient::from_config(c).unwrap();
        assert!(matches!(RevocationClient::new("ftp://x", "k"), Err(ClientError::Config(_))));
        assert!(matches!(RevocationClient::new("not a url", "k"), Err(ClientError::Config(_))));
        assert!(matches!(RevocationClient::new("http://127.0.0.1:1", "a b"), Err(ClientError::Config(_))));
        assert!(matches!(RevocationClient::new("http://127.0.0.1:1", ""), Err(ClientError::Config(_))));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = RevocationClient::new("http://127.0.0.1:1", "tgk_secret_value").unwrap();
        assert!(!format!("{c:?}").contains("tgk_secret_value"));
    }

    #[test]
    fn event_bodies() {
        let e = Event::revoke_subject("alice", 100).iss("https://i");
        assert_eq!(
            e.to_json(1200, "k".into()),
            json!({"kind": "revoke_subject", "sub": "alice", "before": 100, "iss": "https://i", "exp": 1200,
                   "idempotency_key": "k"})
        );
        let e = Event::reuse_detected("s", "j").exp(5).idempotency_key("mine");
        assert_eq!(
            e.to_json(1, "k".into()),
            json!({"kind": "reuse_detected", "sid": "s", "jti": "j", "exp": 5, "idempotency_key": "mine"})
        );
    }
}
