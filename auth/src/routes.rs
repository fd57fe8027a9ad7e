//! HTTP handlers, by area.

pub mod account;
pub mod admin;
pub mod ops;
pub mod session;
pub mod social;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::sessions::SessionTokens;

/// The answer to a login or refresh: the tokens as JSON (API clients), or as cookies
/// with only the session's description in the body (browsers).
pub fn session_response(state: &AppState, tokens: &SessionTokens, user: Value, cookies: Option<&str>) -> Response {
    let p = &tokens.pair;
    let now = state.clock.now_secs();
    let expires_in = p.access_exp.saturating_sub(now);
    let refresh_expires_in = p.refresh_exp.saturating_sub(now);
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_expires_in": refresh_expires_in,
        "session_id": tokens.sid,
        "user": user,
    });
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    match cookies {
        Some(csrf) => {
            state.cookies.set_session(&mut headers, (&p.access, expires_in), (&p.refresh, refresh_expires_in), csrf);
            body["csrf_token"] = json!(csrf);
        }
        None => {
            body["access_token"] = json!(p.access);
            body["refresh_token"] = json!(p.refresh);
        }
    }
    (headers, Json(body)).into_response()
}

/// The public description of an account.
pub fn user_json(user: &crate::store::User) -> Value {
    json!({"id": user.id, "email": user.email, "email_verified": user.email_verified, "roles": user.roles})
}
