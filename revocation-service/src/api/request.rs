//! What the handlers share: the request slot, API-key authentication, and body and
//! query parsing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use crate::apikeys::{Principal, Scope};
use crate::context::Context;
use crate::error::ApiError;

/// A request's slot among `max_concurrent_requests`, put in its extensions by
/// `guard` (`api.rs`); released when the request ends, or earlier by [`RequestSlot::release`].
#[derive(Clone)]
pub(crate) struct RequestSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl RequestSlot {
    /// A slot holding `permit`.
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> RequestSlot {
        RequestSlot(Arc::new(Mutex::new(Some(permit))))
    }

    /// Gives the slot back now (a long-poll that parks, holding a replica slot instead).
    pub(crate) fn release(&self) {
        drop(self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
    }
}

/// Checks the bearer key and its scope.
pub(crate) fn authorize(st: &Context, headers: &HeaderMap, scope: Scope) -> Result<Principal, ApiError> {
    let unauthorized = |d: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", d);
    let h =
        headers.get(header::AUTHORIZATION).ok_or_else(|| unauthorized("missing Authorization: Bearer <api key>"))?;
    let h = h.to_str().map_err(|_| unauthorized("malformed Authorization header"))?;
    let secret = match h.split_once(' ') {
        Some((scheme, s)) if scheme.eq_ignore_ascii_case("bearer") => s.trim(),
        _ => return Err(unauthorized("expected Authorization: Bearer <api key>")),
    };
    let p = st.keys().authenticate(secret).ok_or_else(|| unauthorized("unknown or revoked API key"))?;
    if p.allows(scope) {
        Ok(p)
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this key lacks the scope {}", scope.as_str())))
    }
}

/// Reads a body of at most `limit` bytes within `deadline` and parses it as strict
/// JSON. A body that does not arrive in time is 408 `body_timeout`, and the connection
/// is closed after the reply (a client sending a byte a second is cut off).
pub(crate) async fn read_json(body: Body, limit: usize, deadline: Duration) -> Result<Value, ApiError> {
    let collected =
        tokio::time::timeout(deadline, http_body_util::Limited::new(body, limit).collect()).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {} ms", deadline.as_millis()),
            )
            .closing()
        })?;
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {limit} bytes"),
            ))
        }
        Err(e) => return Err(ApiError::bad_request("body_unreadable", format!("could not read the body: {e}"))),
    };
    if let Some(v) = tollgate_core::parse_strict_json(&bytes) {
        return Ok(v);
    }
    let detail = match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        Err(e) => format!("invalid JSON: {e}"),
        Ok(_) => "invalid JSON: duplicate member name, or nesting deeper than 64".to_string(),
    };
    Err(ApiError::bad_request("bad_json", detail))
}

/// Parses a query string of known `u64` parameters; refuses unknown or repeated ones.
pub(crate) fn parse_query(q: Option<&str>, known: &[&str]) -> Result<Vec<Option<u64>>, ApiError> {
    let mut out = vec![None; known.len()];
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = known.iter().position(|n| *n == k) else {
            return Err(ApiError::bad_request("invalid_query", format!("unknown query parameter {k:?}")));
        };
        if out[i].is_some() {
            return Err(ApiError::bad_request("invalid_query", format!("{k} given twice")));
        }
        let n = v.parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_query", format!("{k} must be a non-negative integer, got {v:?}"))
        })?;
        out[i] = Some(n);
    }
    Ok(out)
}

/// Whether the client asked for JSON.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"))
}
