//! Where the replica's signed messages come from. The replica asks a [`Source`] for a
//! snapshot or for the delta after its sequence and verifies whatever comes back
//! itself, so a source is trusted for nothing but delivery: the revocation service over
//! HTTP ([`HttpSource`]) today, a relay in front of it tomorrow.

use std::future::Future;

use crate::error::FetchError;
use crate::platform::{fetch_all, get_request};

/// Largest snapshot or delta accepted, bytes (a 1M-entry snapshot is about 12 MB).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// The wire format version asked for (the service answers older replicas, which do
/// not ask, in version 1 during an upgrade window).
const WIRE: u8 = tollgate_core::wire::VERSION;

/// What a source answers to a request for the delta after a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// A signed message (a delta, or an empty one when nothing happened while waiting).
    Message(Vec<u8>),
    /// The source no longer holds the events after that sequence: take a snapshot.
    Gone,
}

/// A source of signed snapshots and deltas.
pub trait Source: 'static {
    /// Where it is, for log lines.
    fn describe(&self) -> &str;

    /// The current signed snapshot, within `timeout_ms`.
    fn snapshot(&self, timeout_ms: u64) -> impl Future<Output = Result<Vec<u8>, FetchError>>;

    /// The signed delta after `since`, waiting up to `wait_seconds` for one to happen,
    /// within `timeout_ms`.
    fn delta(&self, since: u64, wait_seconds: u64, timeout_ms: u64) -> impl Future<Output = Result<Delta, FetchError>>;
}

/// The revocation service's replication endpoints: `GET /v1/denylist` (snapshot) and
/// `GET /v1/denylist?since=SEQ&wait=S` (long-polled delta; 410 when the service no
/// longer holds the events after `SEQ`), with a `denylist:read` key if it needs one.
#[derive(Debug, Clone)]
pub struct HttpSource {
    url: String,
    token: Option<String>,
}

impl HttpSource {
    /// The service at `url` (no trailing slash), authenticated with `token`.
    pub fn new(url: String, token: Option<String>) -> HttpSource {
        HttpSource { url, token }
    }

    fn request(&self, url: &str) -> Result<web_sys::Request, FetchError> {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("accept", "application/octet-stream")];
        if let Some(a) = auth.as_deref() {
            headers.push(("authorization", a));
        }
        get_request(url, &headers)
    }
}

impl Source for HttpSource {
    fn describe(&self) -> &str {
        &self.url
    }

    async fn snapshot(&self, timeout_ms: u64) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}/v1/denylist?wire={WIRE}", self.url);
        let got = fetch_all(&self.request(&url)?, timeout_ms, MAX_MESSAGE_BYTES).await?;
        match got.status {
            200 => Ok(got.body),
            s => Err(FetchError::Status(s)),
        }
    }

    async fn delta(&self, since: u64, wait_seconds: u64, timeout_ms: u64) -> Result<Delta, FetchError> {
        let url = format!("{}/v1/denylist?since={since}&wait={wait_seconds}&wire={WIRE}", self.url);
        let got = fetch_all(&self.request(&url)?, timeout_ms, MAX_MESSAGE_BYTES).await?;
        match got.status {
            200 => Ok(Delta::Message(got.body)),
            410 => Ok(Delta::Gone),
            s => Err(FetchError::Status(s)),
        }
    }
}
