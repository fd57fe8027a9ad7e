//! The page a person uses: plain HTML and a little JavaScript (`auth/page/`), served at
//! `/` and `/page/*`. Its client is `@tollgate/verify`'s `fetchWithRefresh`
//! (`edge/npm/js/client.js`), compiled into this binary from the package's source —
//! the very file the package's build copies into `dist/client.js` — and served as
//! `/page/client.js`, so the page needs no npm build and no artifact is committed.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const INDEX: &str = include_str!("../page/index.html");
const APP: &str = include_str!("../page/app.js");
const STYLE: &str = include_str!("../page/style.css");
const CLIENT: &str = include_str!("../../edge/npm/js/client.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn serve(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// `GET /`: the page.
pub async fn index() -> Response {
    serve(INDEX, "text/html; charset=utf-8")
}

/// `GET /page/{file}`: its script, style and client.
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    match file.as_str() {
        "app.js" => Ok(serve(APP, "text/javascript; charset=utf-8")),
        "client.js" => Ok(serve(CLIENT, "text/javascript; charset=utf-8")),
        "style.css" => Ok(serve(STYLE, "text/css; charset=utf-8")),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file")),
    }
}
