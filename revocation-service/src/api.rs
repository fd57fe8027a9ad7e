//! The HTTP API: the router, its bounds, authentication and body parsing.
//!
//! Every request passes [`guard`]: a concurrency bound (503 `overloaded` past it; a
//! parked long-poll trades its request slot for a replica slot) and a deadline (503
//! `timeout`). Bodies are read with a byte limit (413), parsed as strict JSON (no
//! duplicate member names) and validated field by field (422 naming the field).
//! Handlers live in `api/`.

mod denylist;
mod events;
mod ops;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use crate::apikeys::{Principal, Scope};
use crate::error::ApiError;
use crate::service::Inner;

/// Shared state of the handlers.
pub(crate) type AppState = Arc<Inner>;

/// The service's routes over `state`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/events", post(events::post_events))
        .route("/v1/sessions", post(events::post_session))
        .route("/v1/refresh/rotate", post(events::rotate))
        .route("/v1/denylist", get(denylist::get_denylist))
        .route("/v1/denylist/key", get(denylist::get_key))
        .route("/v1/admin/log", get(ops::log))
        .route("/v1/admin/checkpoint", post(ops::checkpoint))
        .route("/v1/admin/compact", post(ops::compact))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Bounds every request: concurrency and a deadline.
///
/// Every request takes one of the `max_concurrent_requests` slots (503 `overloaded`
/// when none is free) and keeps it until its response is ready, through a
/// [`RequestSlot`] in its extensions. The one exception is a long-poll that parks
/// (`/v1/denylist?since=<head>&wait=S`): it first takes one of the
/// `max_replication_clients` slots, then gives its request slot back, so parked
/// replicas never starve event intake. Either way each request holds one of the two
/// at every moment, and a delta with `wait=` that has events to send at once costs a
/// request slot like any other.
async fn guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let permit = match st.requests.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            st.shared.metrics.overloaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return ApiError::unavailable("overloaded", "too many requests in flight").into_response();
        }
    };
    let slot = RequestSlot(Arc::new(Mutex::new(Some(permit))));
    req.extensions_mut().insert(slot.clone());
    let mut limit = Duration::from_millis(st.config.request_timeout_ms);
    if req.uri().path() == "/v1/denylist" {
        limit += Duration::from_secs(st.config.max_long_poll_secs);
    }
    let resp = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable("timeout", "the request took too long; retry (idempotently)").into_response(),
    };
    drop(slot);
    resp
}

/// A request's slot among `max_concurrent_requests`, put in its extensions by
/// [`guard`]; released when the request ends, or earlier by [`RequestSlot::release`].
#[derive(Clone)]
pub(crate) struct RequestSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl RequestSlot {
    /// Gives the slot back now (a long-poll that parks, holding a replica slot instead).
    pub(crate) fn release(&self) {
        drop(self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
    }
}

/// Checks the bearer key and its scope.
pub(crate) fn authorize(st: &Inner, headers: &HeaderMap, scope: Scope) -> Result<Principal, ApiError> {
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

/// Reads a body of at most `limit` bytes and parses it as strict JSON.
pub(crate) async fn read_json(body: Body, limit: usize) -> Result<Value, ApiError> {
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
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
