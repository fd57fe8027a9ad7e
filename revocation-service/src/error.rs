//! Errors: client errors as JSON, everything else opaque.
//!
//! A client error is `{"error": kind, "detail": ...}` with a 4xx status; `kind` is a
//! stable machine-readable string. Server errors are an opaque 500 whose detail goes
//! only to the log.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An HTTP error reply.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) detail: String,
    /// Extra members of the JSON body (e.g. `seq` for `reuse_detected`).
    pub(crate) extra: Map<String, Value>,
    /// Extra response headers (`Retry-After`, `Connection: close`).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// A client error.
    pub(crate) fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, kind, detail: detail.into(), extra: Map::new(), headers: Vec::new() }
    }

    /// 429 with `Retry-After: secs`.
    pub(crate) fn too_many(kind: &'static str, detail: impl Into<String>, retry_after_secs: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, kind, detail);
        e.headers.push((header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1))));
        e
    }

    /// 403 with `kind`.
    pub(crate) fn forbidden(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, kind, detail)
    }

    /// Asks the connection to close after this reply.
    pub(crate) fn closing(mut self) -> ApiError {
        self.headers.push((header::CONNECTION, HeaderValue::from_static("close")));
        self
    }

    /// 400 with `kind`.
    pub(crate) fn bad_request(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, kind, detail)
    }

    /// 422 `invalid_event`: the JSON was well formed but an event in it is not.
    pub(crate) fn invalid(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", detail.to_string())
    }

    /// 503: the service cannot take the request now.
    pub(crate) fn unavailable(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, kind, detail)
    }

    /// The opaque 500; `detail` is logged, never sent.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(detail = %detail, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the service log")
    }

    /// Adds a member to the JSON body.
    pub(crate) fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extra.insert(key.into(), value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("error".into(), json!(self.kind));
        body.insert("detail".into(), json!(self.detail));
        let mut resp = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// A storage failure.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// sled reported an error.
    Sled(sled::Error),
    /// A file outside sled (checkpoint, keys, signing key) failed.
    Io(String),
    /// Stored data could not be decoded.
    Corrupt(String),
    /// The data directory was written by another format version.
    Format { found: u32, expected: u32 },
}

impl StoreError {
    pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
        StoreError::Corrupt(what.into())
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sled(e) => write!(f, "sled: {e}"),
            StoreError::Io(e) => write!(f, "i/o: {e}"),
            StoreError::Corrupt(e) => write!(f, "corrupt data: {e}"),
            StoreError::Format { found, expected } => {
                write!(f, "data directory has format version {found}, this build reads {expected}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}
