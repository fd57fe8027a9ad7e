//! Social login: OAuth 2.0 authorization code with PKCE (S256), `state` and the OIDC
//! `nonce`, towards Google, Kakao or any OpenID provider found by discovery.
//!
//! 1. `GET /auth/{provider}/start` makes an attempt (state, PKCE verifier, nonce),
//!    seals it into a cookie named after the state ([`attempt`]) and sends the browser
//!    to the provider.
//! 2. `GET /auth/{provider}/callback` finds the attempt by the returned `state`,
//!    checks RFC 9207's `iss` (when present, and required when discovery announces
//!    it), records the state as used (a replay is refused), exchanges the code with the
//!    verifier, verifies the ID token ([`id_token`], keys from [`jwks`]) and decides
//!    the account ([`resolve`]).
//! 3. The session is started exactly as a password login's (`sessions::start`), with
//!    the same cookies.
//!
//! **Linking.** An external identity already linked signs in to its account. A new
//! one is linked to an existing account only when the provider's email is verified,
//! equals the account's email, the account's email is verified too, **and** the user
//! then confirms with the account's password (`POST /auth/link`); in every other case
//! it gets a new account. That closes the pre-account hijack: an attacker who
//! registers the victim's address first (unverified) never receives the victim's
//! social login. A new account takes the provider's email as its address only when it
//! is verified and no other account holds it; otherwise the address is only shown,
//! and the account signs in through its identity alone.

pub mod attempt;
pub mod id_token;
pub mod jwks;
pub mod provider;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::{ApiError, StoreError};
use crate::store::{Identity, NewUser, User};

pub use attempt::{Attempt, PendingLink, Sealer};
pub use id_token::IdClaims;
pub use provider::{Discovery, Preset, Provider, ProviderConfig};

use provider::EmailTrust;

/// Largest provider response read, bytes.
const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// Every configured provider, and the cookie sealer.
#[derive(Debug)]
pub struct Social {
    providers: BTreeMap<String, Arc<Provider>>,
    /// Seals the attempt and pending-link cookies.
    pub sealer: Sealer,
}

impl Social {
    /// The providers of `config`, with the cookie key.
    pub fn new(config: &crate::config::Config, key: &[u8; 32]) -> anyhow::Result<Social> {
        let mut providers = BTreeMap::new();
        for (name, c) in &config.providers {
            let p = Provider::new(name, c, config.public_url.as_deref()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            providers.insert(name.clone(), Arc::new(p));
        }
        Ok(Social { providers, sealer: Sealer::new(key) })
    }

    /// Provider `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Provider>, SocialError> {
        self.providers.get(name).cloned().ok_or(SocialError::UnknownProvider)
    }

    /// Every provider.
    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    /// The JWKS fetch counters, Prometheus text.
    pub fn render_metrics(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP tollgate_auth_social_jwks_fetches_total JWKS documents fetched from each provider.\n\
             # TYPE tollgate_auth_social_jwks_fetches_total counter"
        );
        for p in self.providers.values() {
            let n = p.jwks.fetches.load(Ordering::Relaxed);
            let _ = writeln!(out, "tollgate_auth_social_jwks_fetches_total{{provider=\"{}\"}} {n}", p.name);
        }
    }
}

/// Why a social login failed. Each maps to a typed 4xx/5xx answer.
#[derive(Debug)]
pub enum SocialError {
    /// No provider of that name is configured (404 `unknown_provider`).
    UnknownProvider,
    /// The provider could not be reached or failed (503 `provider_unavailable`).
    Unavailable(String),
    /// The provider answered something unusable (502 `provider_misconfigured`).
    Misconfigured(String),
    /// No attempt matches the callback (400 `invalid_state`).
    InvalidState(&'static str),
    /// The attempt was already finished (400 `state_used`).
    StateUsed,
    /// The provider reported an error to the callback (400 `provider_error`).
    Provider(String),
    /// RFC 9207 `iss` missing or wrong (400 `issuer_mismatch`).
    IssuerMismatch(String),
    /// The token endpoint refused the code (400 `code_exchange_failed`).
    CodeExchange(String),
    /// The ID token did not verify (401 `invalid_id_token` with `reason`).
    IdToken {
        /// Stable reason: a core reason (`invalid_issuer`, `invalid_audience`,
        /// `unknown_key`, `expired`, …) or `nonce`, `azp`, `iat`.
        reason: &'static str,
        /// Human-readable detail.
        detail: String,
    },
    /// Google `hd` is not the configured domain (403 `hosted_domain_mismatch`).
    HostedDomain,
}

impl From<SocialError> for ApiError {
    fn from(e: SocialError) -> ApiError {
        match e {
            SocialError::UnknownProvider => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_provider", "no sign-in provider has this name")
            }
            SocialError::Unavailable(d) => ApiError::unavailable("provider_unavailable", d),
            SocialError::Misconfigured(d) => ApiError::new(StatusCode::BAD_GATEWAY, "provider_misconfigured", d),
            SocialError::InvalidState(d) => ApiError::bad_request("invalid_state", d),
            SocialError::StateUsed => {
                ApiError::bad_request("state_used", "this sign-in was already completed; start again")
            }
            SocialError::Provider(code) => {
                ApiError::bad_request("provider_error", format!("the provider answered {code:?}"))
                    .with("provider_error", json!(code))
            }
            SocialError::IssuerMismatch(d) => ApiError::bad_request("issuer_mismatch", d),
            SocialError::CodeExchange(d) => ApiError::bad_request("code_exchange_failed", d),
            SocialError::IdToken { reason, detail } => {
                ApiError::unauthorized("invalid_id_token", detail).with("reason", json!(reason))
            }
            SocialError::HostedDomain => {
                ApiError::forbidden("hosted_domain_mismatch", "this Google account is not in the organisation's domain")
            }
        }
    }
}

/// GETs `url` (with a bearer token if given): the body and its `Cache-Control`.
pub(crate) async fn http_get(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<(Vec<u8>, Option<String>), SocialError> {
    let mut req = http.get(url).header("accept", "application/json");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| SocialError::Unavailable(format!("{url}: {e}")))?;
    let status = resp.status();
    let cache_control = resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = read_body(resp, url).await?;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(SocialError::Unavailable(format!("{url}: {status}")));
    }
    if status != StatusCode::OK {
        return Err(SocialError::Misconfigured(format!("{url}: {status}")));
    }
    Ok((body, cache_control))
}

async fn read_body(mut resp: reqwest::Response, url: &str) -> Result<Vec<u8>, SocialError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| SocialError::Unavailable(format!("{url}: {e}")))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(SocialError::Misconfigured(format!(
                "{url}: the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The authorization URL for a new attempt.
pub fn authorization_url(p: &Provider, d: &Discovery, state: &str, a: &Attempt, prompt: Option<&str>) -> String {
    let mut u = match url::Url::parse(&d.authorization_endpoint) {
        Ok(u) => u,
        Err(_) => return d.authorization_endpoint.clone(),
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &p.config.client_id)
            .append_pair("redirect_uri", &p.redirect_uri)
            .append_pair("scope", &p.scope)
            .append_pair("state", state)
            .append_pair("nonce", &a.nonce)
            .append_pair("code_challenge", &attempt::code_challenge(&a.verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(hd) = &p.config.hosted_domain {
            q.append_pair("hd", hd);
        }
        if let Some(prompt) = prompt {
            q.append_pair("prompt", prompt);
        }
    }
    u.into()
}

/// The token endpoint's answer.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The ID token.
    pub id_token: String,
    /// The access token (for userinfo).
    pub access_token: Option<String>,
}

/// Exchanges `code` with the PKCE `verifier` at the token endpoint.
pub async fn exchange(p: &Provider, d: &Discovery, code: &str, verifier: &str) -> Result<TokenResponse, SocialError> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &p.redirect_uri),
        ("code_verifier", verifier),
        ("client_id", &p.config.client_id),
    ];
    let mut req = p.http.post(&d.token_endpoint).header("accept", "application/json");
    if p.token_auth(d) == "client_secret_post" {
        form.push(("client_secret", &p.config.client_secret));
    } else {
        // RFC 6749 §2.3.1: form-encode both halves before base64.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&p.config.client_id),
            enc(&p.config.client_secret)
        ));
        req = req.header("authorization", format!("Basic {basic}"));
    }
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let url = d.token_endpoint.as_str();
    let resp = req
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| SocialError::Unavailable(format!("{url}: {e}")))?;
    let status = resp.status();
    let bytes = read_body(resp, url).await?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(SocialError::Unavailable(format!("{url}: {status}")));
    }
    if status != StatusCode::OK {
        let code = v.get("error").and_then(Value::as_str).unwrap_or("unknown");
        return Err(SocialError::CodeExchange(format!("the provider refused the code ({status}, {code})")));
    }
    let Some(id_token) = v.get("id_token").and_then(Value::as_str) else {
        return Err(SocialError::Misconfigured("the token response has no id_token (is `openid` granted?)".into()));
    };
    Ok(TokenResponse {
        id_token: id_token.to_owned(),
        access_token: v.get("access_token").and_then(Value::as_str).map(str::to_owned),
    })
}

/// The email address the provider vouches for, per the preset's rule; and the
/// address it merely reported (shown, never trusted).
pub async fn email_of(
    p: &Provider,
    d: &Discovery,
    claims: &IdClaims,
    access_token: Option<&str>,
) -> Result<(Option<String>, Option<String>), SocialError> {
    let normal = |e: &str| crate::password::normalise_email(e).ok();
    match p.preset.email {
        EmailTrust::VerifiedClaim => {
            let e = claims.email.as_deref().and_then(normal);
            Ok(if claims.email_verified { (e.clone(), e) } else { (None, e) })
        }
        EmailTrust::IdTokenOrUserinfo => {
            if let Some(e) = claims.email.as_deref().and_then(normal) {
                return Ok((Some(e.clone()), Some(e)));
            }
            let (Some(url), Some(token)) = (d.userinfo_endpoint.as_deref(), access_token) else {
                return Ok((None, None));
            };
            let (bytes, _) = http_get(&p.http, url, Some(token)).await?;
            let info: Value = serde_json::from_slice(&bytes)
                .map_err(|_| SocialError::Misconfigured(format!("{url}: userinfo is not JSON")))?;
            // OIDC Core §5.3.2: userinfo must be about the ID token's subject.
            if info.get("sub").and_then(Value::as_str) != Some(claims.sub.as_str()) {
                return Err(SocialError::IdToken {
                    reason: "invalid_claim",
                    detail: "userinfo is about another subject".into(),
                });
            }
            let e = info.get("email").and_then(Value::as_str).and_then(normal);
            let verified = info.get("email_verified").is_some_and(id_token::verified_flag);
            Ok(if verified { (e.clone(), e) } else { (None, e) })
        }
    }
}

/// Where a callback lands.
#[derive(Debug)]
pub enum Outcome {
    /// Sign in to this account.
    Login(User),
    /// Ask for this account's password first.
    Link(PendingLink),
}

/// Decides the account for a verified external identity (see the module documentation).
pub async fn resolve(
    state: &AppState,
    provider: &str,
    sub: &str,
    verified_email: Option<&str>,
    reported_email: Option<&str>,
    return_to: &str,
) -> Result<Outcome, ApiError> {
    if let Some(user) = identity_user(state, provider, sub).await? {
        return Ok(Outcome::Login(user));
    }
    if let Some(e) = verified_email {
        if let Some(local) = state.store.user_by_email(e).await? {
            if local.email_verified && local.password_hash.is_some() {
                return Ok(Outcome::Link(PendingLink {
                    provider: provider.to_owned(),
                    subject: sub.to_owned(),
                    email: e.to_owned(),
                    user_id: local.id,
                    expires_at: state.clock.now_secs() + attempt::ATTEMPT_TTL_SECS,
                    return_to: return_to.to_owned(),
                }));
            }
        }
    }
    new_account(state, provider, sub, verified_email, reported_email).await.map(Outcome::Login)
}

async fn identity_user(state: &AppState, provider: &str, sub: &str) -> Result<Option<User>, ApiError> {
    match state.store.identity(provider, sub).await? {
        Some(i) => Ok(state.store.user_by_id(&i.user_id).await?),
        None => Ok(None),
    }
}

/// A new account for an external identity, linked to it. It owns the provider's email
/// only when that is verified and free; otherwise the address is a label.
pub async fn new_account(
    state: &AppState,
    provider: &str,
    sub: &str,
    verified_email: Option<&str>,
    reported_email: Option<&str>,
) -> Result<User, ApiError> {
    let now = state.clock.now_secs() as i64;
    let mut new = NewUser {
        id: crate::sessions::random_id(),
        email: reported_email.unwrap_or_default().to_owned(),
        email_verified: false,
        password_hash: None,
        roles: state.config.default_roles.clone(),
        created_at: now,
    };
    let mut user = None;
    if let Some(e) = verified_email {
        new.email = e.to_owned();
        new.email_verified = true;
        match state.store.create_social_user(&new, true).await {
            Ok(u) => user = Some(u),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let user = match user {
        Some(u) => u,
        None => state.store.create_social_user(&new, false).await?,
    };
    let identity = Identity {
        provider: provider.to_owned(),
        subject: sub.to_owned(),
        user_id: user.id.clone(),
        email: reported_email.map(str::to_owned),
        email_verified: verified_email.is_some(),
        created_at: now,
    };
    match state.store.link_identity(&identity).await {
        Ok(()) => Ok(user),
        // A concurrent first login of the same identity won: use its account.
        Err(StoreError::Conflict) => {
            state.store.delete_user(&user.id).await?;
            identity_user(state, provider, sub)
                .await?
                .ok_or_else(|| ApiError::internal("an identity vanished while being linked"))
        }
        Err(e) => Err(e.into()),
    }
}
