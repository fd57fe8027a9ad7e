//! `/.well-known/jwks.json`, `/openapi.yaml`, `/healthz`, `/readyz`, `/metrics`, and
//! the JSON 404/405.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::Shared;
use crate::error::ApiError;

/// The OpenAPI document of this service.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

/// The access key set's public keys, with the `Cache-Control` the rotation is timed by.
pub async fn jwks(State(state): State<Shared>) -> Response {
    let doc = state.tokens.jwks();
    let mut resp = (StatusCode::OK, doc.body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    if let Ok(v) = HeaderValue::from_str(&doc.cache_control) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

/// The OpenAPI 3.1 document.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

/// Liveness.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: the database answers and shutdown has not begun.
pub async fn readyz(State(state): State<Shared>) -> Response {
    if !state.ready.load(Ordering::SeqCst) {
        return ApiError::unavailable("shutting_down", "the service is shutting down").into_response();
    }
    if !state.store.ping().await {
        return ApiError::unavailable("database_unavailable", "the database does not answer").into_response();
    }
    Json(json!({"status": "ready"})).into_response()
}

/// Prometheus text.
pub async fn metrics(State(state): State<Shared>) -> Response {
    let mut text = state.metrics.render();
    state.social.render_metrics(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// 404 as JSON.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// 405 as JSON.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}
