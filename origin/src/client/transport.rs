//! One logical call: attempts with a timeout each, bounded retries with exponential
//! backoff and jitter on connection errors, timeouts and 503 (never on another
//! status), all within the call's deadline.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::error::{ClientError, ServiceError, ServiceErrorKind};
use crate::random;

/// How a call retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 4; 1 = no retry).
    pub max_attempts: u32,
    /// The backoff before the first retry (default 100 ms); doubled on each further one.
    pub initial_backoff: Duration,
    /// The longest backoff (default 2 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt per call.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The backoff after `failures` failed attempts (1, 2, …): half the exponential
    /// step, plus a uniformly random part of the other half ("equal jitter"), so
    /// clients that failed together do not retry together.
    pub fn backoff(&self, failures: u32) -> Duration {
        let step = self.initial_backoff.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        let step = step.min(self.max_backoff);
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 { 0 } else { random::u64() % (nanos + 1) };
        half + Duration::from_nanos(jitter)
    }
}

/// A request to make, perhaps several times.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) key: &'a str,
    pub(crate) body: Option<&'a Value>,
    pub(crate) accept: Option<&'static str>,
    /// Added to the per-attempt timeout (a long-poll's `wait`).
    pub(crate) extra_time: Duration,
}

/// An answer that is not a retried failure: any status but 503 (or 503 on the last
/// attempt, reported as an error).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: bytes::Bytes,
}

impl Answer {
    /// The body as JSON.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Protocol(format!("{} answer is not the expected JSON: {e}", self.status)))
    }

    /// The service's error, for a non-2xx answer.
    pub(crate) fn error(&self) -> ClientError {
        ClientError::Service(service_error(self.status, &self.headers, &self.body))
    }
}

pub(crate) fn service_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ServiceError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind_str = v["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("http_{}", status.as_u16()));
    ServiceError {
        status: status.as_u16(),
        kind: ServiceErrorKind::from_kind(&kind_str),
        detail: v["detail"].as_str().unwrap_or_default().to_string(),
        kind_str,
        retry_after: retry_after(headers),
        body: v,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let s = headers.get(RETRY_AFTER)?.to_str().ok()?;
    s.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Makes `req`, retrying as `policy` says, each attempt bounded by `attempt_timeout`
/// (+ `extra_time`), the whole call by `deadline`.
pub(crate) async fn call(
    http: &reqwest::Client,
    req: &Request<'_>,
    policy: &RetryPolicy,
    attempt_timeout: Duration,
    deadline: Instant,
) -> Result<Answer, ClientError> {
    let mut attempts = 0u32;
    let mut last = String::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::Deadline { attempts, last });
        }
        attempts += 1;
        let timeout = (attempt_timeout + req.extra_time).min(deadline - now);
        let mut b = http.request(req.method.clone(), &req.url).bearer_auth(req.key).timeout(timeout);
        if let Some(body) = req.body {
            b = b.json(body);
        }
        if let Some(a) = req.accept {
            b = b.header(reqwest::header::ACCEPT, a);
        }
        let mut wait_at_least = Duration::ZERO;
        match send(b).await {
            Ok(a) if a.status != StatusCode::SERVICE_UNAVAILABLE => return Ok(a),
            Ok(a) => {
                let e = service_error(a.status, &a.headers, &a.body);
                wait_at_least = e.retry_after.unwrap_or_default();
                if attempts >= policy.max_attempts {
                    return Err(ClientError::Service(e));
                }
                last = e.to_string();
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(why)) => {
                if attempts >= policy.max_attempts {
                    return Err(ClientError::Unreachable { attempts, last: why });
                }
                last = why;
            }
        }
        let pause = policy.backoff(attempts).max(wait_at_least);
        if Instant::now() + pause >= deadline {
            return Err(ClientError::Deadline { attempts, last });
        }
        tokio::time::sleep(pause).await;
    }
}

enum Failure {
    /// Worth another attempt: no answer (connection refused, reset, dropped, timed out).
    Retry(String),
    /// Not worth one (the request could not even be built).
    Fatal(ClientError),
}

async fn send(b: reqwest::RequestBuilder) -> Result<Answer, Failure> {
    let resp = b.send().await.map_err(classify)?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(classify)?;
    Ok(Answer { status, headers, body })
}

fn classify(e: reqwest::Error) -> Failure {
    if e.is_builder() {
        return Failure::Fatal(ClientError::Config(e.to_string()));
    }
    let mut why = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        why.push_str(": ");
        why.push_str(&s.to_string());
        src = s.source();
    }
    Failure::Retry(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let p = RetryPolicy::default();
        for _ in 0..200 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100), "{b1:?}");
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400), "{b3:?}");
            let b9 = p.backoff(9);
            assert!(b9 >= Duration::from_secs(1) && b9 <= Duration::from_secs(2), "{b9:?}");
            assert!(p.backoff(u32::MAX) <= Duration::from_secs(2));
        }
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(4)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn service_errors_keep_unknown_kinds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        let e = service_error(StatusCode::TOO_MANY_REQUESTS, &h, br#"{"error":"brand_new","detail":"d","x":1}"#);
        assert_eq!((e.kind, e.kind_str.as_str(), e.detail.as_str()), (ServiceErrorKind::Other, "brand_new", "d"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.body["x"], 1);
        let e = service_error(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>");
        assert_eq!((e.status, e.kind_str.as_str()), (502, "http_502"));
        let e = service_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), br#"{"error":"bad_expiry","detail":""}"#);
        assert_eq!(e.kind, ServiceErrorKind::BadExpiry);
    }
}
