//! `POST /auth/refresh`, `POST /auth/logout`, `POST /auth/logout-all`.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::{client_key, parse_json, Shared};
use crate::cookies::{self, CSRF_COOKIE, REFRESH_COOKIE};
use crate::error::ApiError;
use crate::identity;
use crate::ratelimit::BucketKey;
use crate::routes::{session_response, user_json};
use crate::sessions::{self, random_id};

/// A body naming a refresh token (API clients).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

/// The refresh token of a request: from a JSON body `{"refresh_token"}`, else the
/// `refresh_token` cookie (`true`: cookie-authenticated).
fn refresh_token_of(headers: &HeaderMap, body: &Bytes) -> Result<Option<(String, bool)>, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        // `{}` from a browser that holds the cookie is a cookie refresh.
        let v: serde_json::Value = parse_json(body)?;
        if v.as_object().is_some_and(|o| o.is_empty()) {
            return Ok(cookies::get(headers, REFRESH_COOKIE).map(|t| (t.to_owned(), true)));
        }
        let b: RefreshBody = serde_json::from_value(v)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.to_string()))?;
        return Ok(Some((b.refresh_token, false)));
    }
    Ok(cookies::get(headers, REFRESH_COOKIE).map(|t| (t.to_owned(), true)))
}

/// Rotates the refresh token (see `crate::sessions`). Cookie in → cookies out (after
/// the CSRF check); JSON in → JSON out. Errors never clear cookies.
pub async fn refresh(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ip = client_key(&state, peer, &headers);
    if let Err(l) =
        state.limiter.check(state.clock.now_ms(), &[(BucketKey::Ip("refresh", ip), state.config.rate_refresh_ip)])
    {
        state.metrics.rate_limited.inc(l.scope);
        state.metrics.refreshes.inc("rate_limited");
        return Err(ApiError::rate_limited(l.retry_after, l.scope));
    }
    let Some((token, via_cookie)) = refresh_token_of(&headers, &body)? else {
        return Err(ApiError::unauthorized("missing_token", "send {\"refresh_token\": …} or the refresh_token cookie"));
    };
    if via_cookie {
        state.origins.check_csrf(&headers)?;
    }
    let (tokens, _how) = sessions::refresh(&state, &token).await?;
    let user = state.store.user_by_id(&tokens.pair.sub).await?.map(|u| user_json(&u)).unwrap_or_default();
    let csrf = via_cookie.then(|| cookies::get(&headers, CSRF_COOKIE).map_or_else(random_id, str::to_owned));
    Ok(session_response(&state, &tokens, user, csrf.as_deref()))
}

/// Ends this session: named by the access token (Bearer or cookie; an expired one
/// is accepted) or by `{"refresh_token"}`. Idempotent; clears the cookies.
pub async fn logout(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let sid = if let Some((token, via_cookie)) = identity::access_token(&headers) {
        if via_cookie {
            state.origins.check_csrf(&headers)?;
        }
        state.tokens.verify_access(token, true)?.sid
    } else {
        match refresh_token_of(&headers, &body)? {
            Some((token, via_cookie)) => {
                if via_cookie {
                    state.origins.check_csrf(&headers)?;
                }
                state.tokens.verify_refresh(&token).map_err(|e| e.into_api())?.sid
            }
            None => {
                return Err(ApiError::unauthorized("missing_token", "send the access token, or {\"refresh_token\": …}"))
            }
        }
    };
    let session = state
        .store
        .session(&sid)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_token", "this token belongs to no session"))?;
    let already = session.revoked_at.is_some();
    let seq = sessions::logout(&state, &session).await?;
    let mut resp_headers = HeaderMap::new();
    state.cookies.clear_session(&mut resp_headers);
    Ok((resp_headers, Json(json!({"logged_out": sid, "already_ended": already, "seq": seq}))).into_response())
}

/// Ends every session of the signed-in account and revokes all of its tokens issued
/// until now (`revoke_subject`); clears the cookies.
pub async fn logout_all(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = identity::authenticate_write(&state, &method, &uri, &headers, false).await?;
    let (ended, seq) = sessions::revoke_user(&state, &p.user, true, "all_sessions").await?;
    let mut resp_headers = HeaderMap::new();
    state.cookies.clear_session(&mut resp_headers);
    Ok((resp_headers, Json(json!({"sessions_ended": ended, "seq": seq}))).into_response())
}
