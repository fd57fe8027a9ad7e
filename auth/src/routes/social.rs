//! Social login's routes: `GET /auth/providers`, `GET /auth/{provider}/start`,
//! `GET /auth/{provider}/callback`, the pending link (`GET`/`POST /auth/link`,
//! `POST /auth/link/new`), and the signed-in user's identities (`GET
//! /account/identities`, `DELETE /account/identities/{provider}/{subject}`).
//!
//! The callback is a browser navigation: a browser (`Accept: text/html`) that hits an
//! error is sent to the page with `?error=<kind>` so it can say what to do; any other
//! client gets the JSON error.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::{client_key, JsonBody, Shared};
use crate::cookies::{self, CSRF_COOKIE};
use crate::error::ApiError;
use crate::identity;
use crate::password::Verified;
use crate::ratelimit::BucketKey;
use crate::routes::{session_response, user_json};
use crate::sessions::{self, random_id};
use crate::social::attempt::{self, Attempt, PendingLink, ATTEMPT_TTL_SECS, LINK_COOKIE};
use crate::social::{self, Outcome, SocialError};
use crate::store::{Identity, Unlinked};

/// The configured providers, for the page's buttons.
pub async fn providers(State(state): State<Shared>) -> Response {
    let list: Vec<_> = state
        .social
        .providers()
        .map(|p| json!({"name": p.name, "preset": p.config.preset, "label": p.label(), "start": format!("/auth/{}/start", p.name)}))
        .collect();
    Json(json!({ "providers": list })).into_response()
}

/// A path on this site to return to (`/…`, never `//…` or a backslash trick); `/` otherwise.
fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 512
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn see_other(location: &str, mut headers: HeaderMap) -> Response {
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::SEE_OTHER, headers).into_response()
}

/// Starts a login: a new attempt in its own cookie, then 303 to the provider.
pub async fn start(
    State(state): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = state.social.get(&name)?;
    let d = p.discovery(state.clock.now_secs()).await?;
    let pairs = query_pairs(q.as_deref());
    let prompt = param(&pairs, "prompt").filter(|v| matches!(*v, "login" | "consent" | "select_account" | "none"));
    let st = random_id();
    let a = Attempt {
        provider: p.name.clone(),
        verifier: attempt::code_verifier(),
        nonce: random_id(),
        created_at: state.clock.now_secs(),
        return_to: safe_return_to(param(&pairs, "return_to")),
    };
    let cookie_name = attempt::cookie_name(&st);
    let sealed = state.social.sealer.seal(&cookie_name, &a);
    let mut headers = HeaderMap::new();
    let path = format!("/auth/{}/callback", p.name);
    headers.append(header::SET_COOKIE, state.cookies.http_only(&cookie_name, &sealed, &path, ATTEMPT_TTL_SECS, "Lax"));
    Ok(see_other(&social::authorization_url(&p, &d, &st, &a, prompt), headers))
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// Finishes a login (see `crate::social`).
pub async fn callback(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let st = param(&pairs, "state").unwrap_or("").to_owned();
    let mut clear = HeaderMap::new();
    if attempt::valid_state(&st) {
        let path = format!("/auth/{name}/callback");
        clear.append(header::SET_COOKIE, state.cookies.http_only(&attempt::cookie_name(&st), "", &path, 0, "Lax"));
    }
    match callback_inner(&state, &name, &headers, &pairs, &st).await {
        Ok(mut resp) => {
            for v in clear.get_all(header::SET_COOKIE) {
                resp.headers_mut().append(header::SET_COOKIE, v.clone());
            }
            resp
        }
        Err(e) => {
            tracing::info!(provider = %name, kind = e.kind, detail = %e.detail, "social login refused");
            if wants_html(&headers) && e.status != StatusCode::NOT_FOUND {
                let mut loc = url::form_urlencoded::Serializer::new("/?".to_owned());
                loc.append_pair("error", e.kind);
                if let Some(r) = e.extra.get("reason").and_then(|v| v.as_str()) {
                    loc.append_pair("reason", r);
                }
                see_other(&loc.finish(), clear)
            } else {
                let mut resp = e.into_response();
                for v in clear.get_all(header::SET_COOKIE) {
                    resp.headers_mut().append(header::SET_COOKIE, v.clone());
                }
                resp
            }
        }
    }
}

async fn callback_inner(
    state: &Shared,
    name: &str,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    st: &str,
) -> Result<Response, ApiError> {
    let p = state.social.get(name)?;
    let now = state.clock.now_secs();
    if !attempt::valid_state(st) {
        return Err(SocialError::InvalidState("the callback has no valid state parameter").into());
    }
    let cookie_name = attempt::cookie_name(st);
    let a: Attempt = cookies::get(headers, &cookie_name)
        .and_then(|v| state.social.sealer.open(&cookie_name, v))
        .ok_or(SocialError::InvalidState(
            "no sign-in attempt matches this state in this browser (it expired, finished, or was started elsewhere); start again",
        ))?;
    if a.provider != p.name || now > a.created_at + ATTEMPT_TTL_SECS {
        return Err(SocialError::InvalidState("this sign-in attempt expired; start again").into());
    }
    let d = p.discovery(now).await?;
    // RFC 9207: the authorization response names its issuer (mix-up defence).
    match param(pairs, "iss") {
        Some(iss) if iss != p.issuer => {
            return Err(
                SocialError::IssuerMismatch(format!("the response comes from {iss:?}, not {:?}", p.issuer)).into()
            )
        }
        None if d.authorization_response_iss_parameter_supported => {
            return Err(SocialError::IssuerMismatch(
                "the provider announces `iss` in responses, and this one has none".into(),
            )
            .into())
        }
        _ => {}
    }
    // Single use, recorded before anything else can succeed.
    if !state.store.use_oauth_state(st, &p.name, now as i64).await? {
        return Err(SocialError::StateUsed.into());
    }
    if let Some(err) = param(pairs, "error") {
        return Err(SocialError::Provider(err.chars().take(64).collect()).into());
    }
    let code = param(pairs, "code")
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or(SocialError::Provider("no code".into()))?;
    let tokens = social::exchange(&p, &d, code, &a.verifier).await?;
    let claims = social::id_token::verify(&p, &d, &tokens.id_token, &a.nonce, state.clock.now_secs()).await?;
    if let Some(hd) = &p.config.hosted_domain {
        if claims.hd.as_deref() != Some(hd.as_str()) {
            return Err(SocialError::HostedDomain.into());
        }
    }
    let (verified, reported) = social::email_of(&p, &d, &claims, tokens.access_token.as_deref()).await?;
    match social::resolve(state, &p.name, &claims.sub, verified.as_deref(), reported.as_deref(), &a.return_to).await? {
        Outcome::Login(user) => {
            let tokens = sessions::start(state, &user, &p.name).await?;
            state.metrics.logins.inc("social");
            let mut h = HeaderMap::new();
            let now = state.clock.now_secs();
            let pair = &tokens.pair;
            let csrf = random_id();
            state.cookies.set_session(
                &mut h,
                (&pair.access, pair.access_exp.saturating_sub(now)),
                (&pair.refresh, pair.refresh_exp.saturating_sub(now)),
                &csrf,
            );
            Ok(see_other(&a.return_to, h))
        }
        Outcome::Link(link) => {
            let mut h = HeaderMap::new();
            let sealed = state.social.sealer.seal(LINK_COOKIE, &link);
            h.append(
                header::SET_COOKIE,
                state.cookies.http_only(LINK_COOKIE, &sealed, "/auth/link", ATTEMPT_TTL_SECS, "Strict"),
            );
            // The double-submit token for the confirmation (the page reads it).
            h.append(header::SET_COOKIE, state.cookies.csrf(&random_id(), ATTEMPT_TTL_SECS));
            let mut loc = url::form_urlencoded::Serializer::new("/?".to_owned());
            loc.append_pair("link", &link.provider);
            Ok(see_other(&loc.finish(), h))
        }
    }
}

fn pending(state: &Shared, headers: &HeaderMap) -> Result<PendingLink, ApiError> {
    cookies::get(headers, LINK_COOKIE)
        .and_then(|v| state.social.sealer.open::<PendingLink>(LINK_COOKIE, v))
        .filter(|l| state.clock.now_secs() <= l.expires_at)
        .ok_or_else(|| {
            ApiError::bad_request(
                "no_pending_link",
                "no account link is waiting in this browser (it expired); sign in again",
            )
        })
}

/// The link waiting for the password: provider and email (for the page's form).
pub async fn pending_link(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let l = pending(&state, &headers)?;
    Ok(Json(json!({"provider": l.provider, "email": l.email})).into_response())
}

/// `POST /auth/link` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    password: String,
}

fn clear_link(state: &Shared, resp: &mut Response) {
    let v = state.cookies.http_only(LINK_COOKIE, "", "/auth/link", 0, "Strict");
    resp.headers_mut().append(header::SET_COOKIE, v);
}

/// Confirms the pending link with the local account's password: links the identity
/// and signs in (cookies, as a password login with `"cookies": true`). A wrong
/// password is 401 `invalid_credentials`, rate limited as a login.
pub async fn confirm_link(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ConfirmBody>,
) -> Result<Response, ApiError> {
    state.origins.check_csrf(&headers)?;
    let link = pending(&state, &headers)?;
    let user = state.store.user_by_id(&link.user_id).await?;
    let c = &state.config;
    let account = BucketKey::Account(link.email.clone());
    if let Err(l) = state.limiter.check(
        state.clock.now_ms(),
        &[
            (account.clone(), c.rate_login_account),
            (BucketKey::Ip("login", client_key(&state, peer, &headers)), c.rate_login_ip),
            (BucketKey::Global("login"), c.rate_login_global),
        ],
    ) {
        state.metrics.rate_limited.inc(l.scope);
        return Err(ApiError::rate_limited(l.retry_after, l.scope));
    }
    let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let ok = body.password.len() <= crate::password::MAX_PASSWORD_BYTES
        && matches!(state.hasher.verify(&body.password, stored).await?, Verified::Yes(_));
    let (true, Some(user)) = (ok, user) else {
        state.metrics.login_failures.inc("invalid_credentials");
        return Err(ApiError::unauthorized("invalid_credentials", "the password is wrong"));
    };
    state.limiter.reset(&account);
    let identity = Identity {
        provider: link.provider.clone(),
        subject: link.subject.clone(),
        user_id: user.id.clone(),
        email: Some(link.email.clone()),
        email_verified: true,
        created_at: state.clock.now_secs() as i64,
    };
    match state.store.link_identity(&identity).await {
        Ok(()) => {}
        Err(crate::error::StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "identity_taken",
                "this identity is already linked to an account",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    finish_link(&state, &headers, &user, &link).await
}

async fn finish_link(
    state: &Shared,
    headers: &HeaderMap,
    user: &crate::store::User,
    link: &PendingLink,
) -> Result<Response, ApiError> {
    let tokens = sessions::start(state, user, &link.provider).await?;
    state.metrics.logins.inc("social");
    let csrf = cookies::get(headers, CSRF_COOKIE).map_or_else(random_id, str::to_owned);
    let mut resp = session_response(state, &tokens, user_json(user), Some(&csrf));
    clear_link(state, &mut resp);
    Ok(resp)
}

/// Declines the pending link: a new, separate account for the external identity.
pub async fn link_new_account(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    state.origins.check_csrf(&headers)?;
    let link = pending(&state, &headers)?;
    // The address belongs to the other account: it is only a label here.
    let user = social::new_account(&state, &link.provider, &link.subject, None, Some(&link.email)).await?;
    finish_link(&state, &headers, &user, &link).await
}

/// The signed-in account's linked identities.
pub async fn identities(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = identity::authenticate(&state, &method, &uri, &headers, false).await?;
    let list = state.store.identities_of(&p.user.id).await?;
    Ok(Json(json!({
        "has_password": p.user.password_hash.is_some(),
        "identities": list.iter().map(|i| json!({
            "provider": i.provider, "subject": i.subject, "email": i.email,
            "email_verified": i.email_verified, "created_at": i.created_at,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// Unlinks one of the signed-in account's identities; 409 `last_sign_in_method` if it
/// is the only way left to sign in, 404 `identity_not_found` if it is not linked here.
pub async fn unlink(
    State(state): State<Shared>,
    Path((provider, subject)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = identity::authenticate_write(&state, &method, &uri, &headers, false).await?;
    match state.store.unlink_identity(&p.user.id, &provider, &subject).await? {
        Unlinked::Done => Ok(Json(json!({"unlinked": {"provider": provider, "subject": subject}})).into_response()),
        Unlinked::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "identity_not_found",
            "no such identity is linked to this account",
        )),
        Unlinked::LastSignInMethod => Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_sign_in_method",
            "this is the account's only way to sign in; link another provider first",
        )),
    }
}
