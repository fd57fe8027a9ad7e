//! Who is calling: the access token of a request to a protected route, checked here
//! as well as at the edge.
//!
//! The token comes from `Authorization: Bearer` or, failing that, the `access_token`
//! cookie (then the request is *cookie-authenticated* and its writes need the CSRF
//! check). It must verify against this service's own access key set, name a session
//! that is still live here, and be issued after the account's token cutoff (log out
//! everywhere, role change). When edge assertion secrets are configured, the request
//! must also carry a valid `X-Tollgate-Assertion` from the Worker for the same subject.

use axum::http::{header, HeaderMap, Method, Uri};

use crate::app::AppState;
use crate::cookies::{self, ACCESS_COOKIE};
use crate::error::ApiError;
use crate::store::{Session, User};
use crate::tokens::AccessClaims;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The verified access-token claims.
    pub claims: AccessClaims,
    /// The account.
    pub user: User,
    /// The session the token belongs to.
    pub session: Session,
    /// Whether the token came from the cookie (writes then need the CSRF check).
    pub via_cookie: bool,
}

/// The access token of a request and whether it came from the cookie.
pub fn access_token(headers: &HeaderMap) -> Option<(&str, bool)> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = v.split_once(' ')?;
        return (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| (token.trim(), false));
    }
    cookies::get(headers, ACCESS_COOKIE).map(|t| (t, true))
}

/// Authenticates a request. `allow_expired` accepts an access token past its `exp`
/// (logout only: ending a session with an expired token is harmless).
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    allow_expired: bool,
) -> Result<Principal, ApiError> {
    let Some((token, via_cookie)) = access_token(headers) else {
        return Err(ApiError::unauthorized(
            "missing_token",
            "send the access token as Authorization: Bearer or the access_token cookie",
        ));
    };
    let claims = state.tokens.verify_access(token, allow_expired)?;
    if let Some(edge) = &state.edge {
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let identity = edge.verify(method.as_str(), target, headers).map_err(|e| {
            ApiError::unauthorized("invalid_assertion", "the request did not come through the edge")
                .with("reason", serde_json::json!(e.reason()))
        })?;
        if identity.sub.as_deref() != Some(claims.sub.as_str()) {
            return Err(ApiError::unauthorized("invalid_assertion", "the edge assertion is for another subject")
                .with("reason", serde_json::json!("wrong_subject")));
        }
    }
    let revoked = || ApiError::invalid_token("revoked", "the session of this token has ended");
    let session = state.store.session(&claims.sid).await?.ok_or_else(revoked)?;
    if session.revoked_at.is_some() || session.user_id != claims.sub {
        return Err(revoked());
    }
    let user = state.store.user_by_id(&claims.sub).await?.ok_or_else(revoked)?;
    if (claims.iat as i64) < user.tokens_valid_after {
        return Err(revoked());
    }
    Ok(Principal { claims, user, session, via_cookie })
}

/// [`authenticate`], then the CSRF check when the token came from the cookie.
pub async fn authenticate_write(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    allow_expired: bool,
) -> Result<Principal, ApiError> {
    let p = authenticate(state, method, uri, headers, allow_expired).await?;
    if p.via_cookie {
        state.origins.check_csrf(headers)?;
    }
    Ok(p)
}
