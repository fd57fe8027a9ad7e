//! Errors: every client error is a 4xx JSON body, everything else an opaque 500.
//!
//! The body is `{"error": kind, "detail": ...}` with a stable machine-readable `kind`.
//! Token errors on the service's own protected routes speak the edge's 401 contract as
//! well (`"error": "invalid_token"`, `"reason"`, and `"code": "TOKEN_EXPIRED"` when the
//! client should refresh silently). Server errors carry no detail: it goes to the log.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An HTTP error reply.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status code (4xx, 503 or the opaque 500).
    pub status: StatusCode,
    /// The stable error kind (`"invalid_credentials"`, `"reuse_detected"`, ...).
    pub kind: &'static str,
    /// A human-readable detail (never secret).
    pub detail: String,
    /// Extra members of the JSON body (`reason`, `code`, ...).
    pub extra: Map<String, Value>,
    /// `Retry-After` in seconds (429 and 503).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// A client error.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, kind, detail: detail.into(), extra: Map::new(), retry_after: None }
    }

    /// 400 with `kind`.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, kind, detail)
    }

    /// 401 with `kind`.
    pub fn unauthorized(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, kind, detail)
    }

    /// 403 with `kind`.
    pub fn forbidden(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, kind, detail)
    }

    /// The edge's 401 for a token that did not verify: `{"error":"invalid_token",
    /// "reason": reason}`, plus `"code":"TOKEN_EXPIRED"` for `expired`.
    pub fn invalid_token(reason: &str, detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::unauthorized("invalid_token", detail).with("reason", json!(reason));
        match reason {
            "expired" => e = e.with("code", json!("TOKEN_EXPIRED")),
            "revoked" => e = e.with("code", json!("TOKEN_REVOKED")),
            _ => {}
        }
        e
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after: Duration, scope: &str) -> ApiError {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many attempts; retry in {secs} s"),
        )
        .with("retry_after", json!(secs))
        .with("scope", json!(scope));
        e.retry_after = Some(Duration::from_secs(secs));
        e
    }

    /// 503: a dependency (the revocation service, the database) cannot take the request.
    pub fn unavailable(kind: &'static str, detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, kind, detail);
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// The opaque 500; `detail` is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(detail = %detail, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the service log")
    }

    /// Adds a member to the JSON body.
    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extra.insert(key.into(), value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.extra_reason();
        let mut body = self.extra;
        body.insert("error".into(), json!(self.kind));
        body.insert("detail".into(), json!(self.detail));
        let mut resp = (self.status, axum::Json(Value::Object(body))).into_response();
        let headers = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let value = if self.kind == "invalid_token" {
                format!("Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{reason}\"")
            } else {
                "Bearer realm=\"tollgate\"".to_owned()
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(after) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl ApiError {
    fn extra_reason(&self) -> String {
        // Reasons are the core's fixed lower-case strings; anything else is reported generically.
        let got = self.extra.get("reason").and_then(Value::as_str).unwrap_or("");
        if !got.is_empty() && got.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            got.to_owned()
        } else {
            "invalid_token".to_owned()
        }
    }
}

/// A storage failure (the database or its migrations).
#[derive(Debug)]
pub enum StoreError {
    /// The driver reported an error.
    Db(sqlx::Error),
    /// A unique constraint refused the write (duplicate email, identity, ...).
    Conflict,
    /// Stored data could not be decoded.
    Corrupt(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Db(e) => write!(f, "database error: {e}"),
            StoreError::Conflict => f.write_str("unique constraint violated"),
            StoreError::Corrupt(d) => write!(f, "stored data is corrupt: {d}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict;
            }
        }
        StoreError::Db(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Db(sqlx::Error::PoolTimedOut) => {
                ApiError::unavailable("database_busy", "the database is busy; retry")
            }
            other => ApiError::internal(other),
        }
    }
}

/// A configuration that cannot be used (refused at start-up, before listening).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
