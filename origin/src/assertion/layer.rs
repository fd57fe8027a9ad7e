//! The axum/tower form: [`AssertionLayer`] checks every request and puts the
//! [`EdgeIdentity`] in its extensions; handlers take it as an extractor.
//!
//! ```ignore
//! let verifier = AssertionVerifier::hs256([secret])?.audience("https://api.example.com");
//! let app = Router::new()
//!     .route("/profile", get(|who: EdgeIdentity| async move { who.sub.unwrap_or_default() }))
//!     .layer(AssertionLayer::new(verifier));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AssertionVerifier, EdgeIdentity};
use crate::error::AssertionError;

/// A tower layer checking `X-Tollgate-Assertion` on every request (401 on failure).
#[derive(Debug, Clone)]
pub struct AssertionLayer {
    verifier: Arc<AssertionVerifier>,
}

impl AssertionLayer {
    /// The layer of `verifier`.
    pub fn new(verifier: AssertionVerifier) -> AssertionLayer {
        AssertionLayer { verifier: Arc::new(verifier) }
    }

    /// The layer of a shared verifier.
    pub fn shared(verifier: Arc<AssertionVerifier>) -> AssertionLayer {
        AssertionLayer { verifier }
    }
}

impl<S> tower::Layer<S> for AssertionLayer {
    type Service = AssertionService<S>;

    fn layer(&self, inner: S) -> AssertionService<S> {
        AssertionService { inner, verifier: self.verifier.clone() }
    }
}

/// The service [`AssertionLayer`] makes.
#[derive(Debug, Clone)]
pub struct AssertionService<S> {
    inner: S,
    verifier: Arc<AssertionVerifier>,
}

impl<S, B> tower::Service<Request<B>> for AssertionService<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The request-target as received: a nested router rewrites `uri`, not this.
        let uri = req.extensions().get::<OriginalUri>().map(|u| u.0.clone()).unwrap_or_else(|| req.uri().clone());
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        match self.verifier.verify(req.method().as_str(), target, req.headers()) {
            Ok(identity) => {
                req.extensions_mut().insert(identity);
                // The clone that was made ready is the one that is called.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(req).await })
            }
            Err(e) => {
                let resp = e.into_response();
                Box::pin(async move { Ok(resp) })
            }
        }
    }
}

impl IntoResponse for AssertionError {
    fn into_response(self) -> Response {
        let mut r = (StatusCode::UNAUTHORIZED, self.body()).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// The identity, for handlers behind [`AssertionLayer`]. Without the layer there is
/// no identity: 500 `{"error":"misconfigured"}` (never a request let through).
impl<S: Send + Sync> FromRequestParts<S> for EdgeIdentity {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<EdgeIdentity, Response> {
        parts.extensions.get::<EdgeIdentity>().cloned().ok_or_else(|| {
            let mut r = (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"misconfigured"}"#).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        })
    }
}
