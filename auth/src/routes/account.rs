//! `POST /auth/register`, `POST /auth/login`, `GET /profile`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::{client_key, JsonBody, Shared};
use crate::error::{ApiError, StoreError};
use crate::identity;
use crate::password::{self, Verified};
use crate::ratelimit::BucketKey;
use crate::routes::{session_response, user_json};
use crate::sessions::{self, random_id};
use crate::store::NewUser;

/// `POST /auth/register` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: String,
    password: String,
    /// Login only: answer with cookies instead of tokens in the body.
    #[serde(default)]
    cookies: bool,
}

/// Creates an account: 201 with its description; 409 `email_taken` for a duplicate.
pub async fn register(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let ip = client_key(&state, peer, &headers);
    let now_ms = state.clock.now_ms();
    let c = &state.config;
    if let Err(l) = state.limiter.check(
        now_ms,
        &[(BucketKey::Ip("register", ip), c.rate_register_ip), (BucketKey::Global("register"), c.rate_register_global)],
    ) {
        state.metrics.rate_limited.inc(l.scope);
        return Err(ApiError::rate_limited(l.retry_after, l.scope));
    }
    let email = password::normalise_email(&body.email).inspect_err(|_| state.metrics.registrations.inc("invalid"))?;
    password::check_policy(&body.password, &email).inspect_err(|_| state.metrics.registrations.inc("invalid"))?;
    let phc = state.hasher.hash(&body.password).await?;
    let new = NewUser {
        id: random_id(),
        email,
        email_verified: false,
        password_hash: Some(phc),
        roles: c.default_roles.clone(),
        created_at: state.clock.now_secs() as i64,
    };
    match state.store.create_user(&new).await {
        Ok(user) => {
            state.metrics.registrations.inc("created");
            Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
        }
        Err(StoreError::Conflict) => {
            state.metrics.registrations.inc("duplicate");
            Err(ApiError::new(StatusCode::CONFLICT, "email_taken", "an account with this email already exists"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Logs in with email and password. One answer (401 `invalid_credentials`) for an
/// unknown account, a social-only account and a wrong password, each after one
/// Argon2id verification. Rate limited per account, per client network and globally.
pub async fn login(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let result = login_inner(&state, peer, &headers, body).await;
    if let Err(e) = &result {
        state.metrics.login_failures.inc(match e.kind {
            "invalid_credentials" => "invalid_credentials",
            "rate_limited" => "rate_limited",
            "invalid_email" | "invalid_request" => "invalid_request",
            _ => "other",
        });
    }
    result
}

async fn login_inner(
    state: &Shared,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Credentials,
) -> Result<Response, ApiError> {
    let email = password::normalise_email(&body.email)?;
    if body.password.len() > password::MAX_PASSWORD_BYTES {
        return Err(invalid_credentials());
    }
    let ip = client_key(state, peer, headers);
    let c = &state.config;
    let account = BucketKey::Account(email.clone());
    // Counted before the password is checked, in one step over the three buckets, so
    // parallel guesses are all counted.
    if let Err(l) = state.limiter.check(
        state.clock.now_ms(),
        &[
            (account.clone(), c.rate_login_account),
            (BucketKey::Ip("login", ip), c.rate_login_ip),
            (BucketKey::Global("login"), c.rate_login_global),
        ],
    ) {
        state.metrics.rate_limited.inc(l.scope);
        return Err(ApiError::rate_limited(l.retry_after, l.scope));
    }
    let user = state.store.user_by_email(&email).await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let verified = state.hasher.verify(&body.password, stored).await?;
    let (Verified::Yes(rehash), Some(user)) = (verified, user) else {
        return Err(invalid_credentials());
    };
    state.limiter.reset(&account);
    if let Some(phc) = rehash {
        state.store.set_password_hash(&user.id, &phc).await?;
        tracing::info!(user = %user.id, "password rehashed with the current Argon2id parameters");
    }
    let tokens = sessions::start(state, &user, "password").await?;
    state.metrics.logins.inc("password");
    let csrf = body.cookies.then(random_id);
    Ok(session_response(state, &tokens, user_json(&user), csrf.as_deref()))
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "the email or password is wrong")
}

/// The signed-in account and its session (behind the edge; checked here too).
pub async fn profile(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = identity::authenticate(&state, &method, &uri, &headers, false).await?;
    let identities = state.store.identities_of(&p.user.id).await?;
    let mut user = user_json(&p.user);
    user["identities"] =
        identities.iter().map(|i| json!({"provider": i.provider, "subject": i.subject, "email": i.email, "email_verified": i.email_verified})).collect();
    Ok(Json(json!({
        "user": user,
        "session": {"id": p.session.id, "method": p.session.method, "created_at": p.session.created_at},
        "token": {"roles": p.claims.roles, "iat": p.claims.iat, "exp": p.claims.exp},
    }))
    .into_response())
}
