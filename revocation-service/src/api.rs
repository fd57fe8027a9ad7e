//! The HTTP API: the router, and the bounds every request passes.
//!
//! Every request passes [`guard`]: a concurrency bound (503 `overloaded` past it; a
//! parked long-poll trades its request slot for a replica slot) and a deadline (503
//! `timeout`). The handlers live in `api/`, one file per group of endpoints; what
//! they share (authentication, body and query parsing, the request slot) is in
//! `api/request.rs`, below them, and what a key may post (issuer scope, time
//! bounds, rate, quota) in `api/policy.rs`.

mod denylist;
mod events;
mod ops;
mod policy;
mod request;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::context::AppState;
use crate::error::ApiError;
use request::RequestSlot;

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
    let slot = RequestSlot::new(permit);
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
