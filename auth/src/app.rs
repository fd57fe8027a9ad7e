//! The service: shared state, the router, and `run` on a pre-bound listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tollgate_origin::AssertionVerifier;

use crate::client_ip::ClientIpRule;
use crate::clock::Clock;
use crate::config::Config;
use crate::cookies::CookiePolicy;
use crate::csrf::{self, Origins};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::ratelimit::RateLimiter;
use crate::revocation::Revocation;
use crate::routes;
use crate::social::Social;
use crate::store::Store;
use crate::tokens::Tokens;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// The clock (injected in tests).
    pub clock: Arc<dyn Clock>,
    /// Argon2id.
    pub hasher: Hasher,
    /// GCRA buckets.
    pub limiter: RateLimiter,
    /// How the client address is found.
    pub ip_rule: ClientIpRule,
    /// The CORS/CSRF allow-list.
    pub origins: Arc<Origins>,
    /// How cookies are written.
    pub cookies: CookiePolicy,
    /// Counters.
    pub metrics: Metrics,
    /// Signing keys, issuing and verifying tokens.
    pub tokens: Tokens,
    /// The revocation service.
    pub revocation: Revocation,
    /// The check of the edge's `X-Tollgate-Assertion`, when secrets are configured.
    pub edge: Option<AssertionVerifier>,
    /// Social-login providers and the cookie sealer.
    pub social: Social,
    /// False once shutdown has begun.
    pub ready: AtomicBool,
    requests: Arc<Semaphore>,
}

/// The shared state as handlers see it.
pub type Shared = Arc<AppState>;

impl AppState {
    /// Builds the state from a validated configuration: connects to the database
    /// (applying migrations), loads or creates the key sets, and sets up the
    /// revocation client.
    pub async fn new(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        if config.database_url.is_none() {
            std::fs::create_dir_all(&config.data_dir)?;
        }
        let store = Store::connect(&config.database_url(), config.max_db_connections).await?;
        let params = argon2::Params::new(config.argon2_m_kib, config.argon2_t, config.argon2_p, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let hasher = Hasher::new(params, config.max_concurrent_hashes).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        let revocation = Revocation::new(&config)?;
        let tokens = Tokens::load_or_create(&config, &store, clock.clone(), revocation.client().clone()).await?;
        let social = Social::new(&config, &cookie_key(&store, clock.now_secs() as i64).await?)?;
        let edge = if config.edge_assertion_secrets.is_empty() {
            None
        } else {
            let mut v = AssertionVerifier::hs256(config.edge_assertion_secrets.iter().map(String::as_bytes))
                .map_err(|e| anyhow::anyhow!("edge_assertion_secrets: {e:?}"))?
                .with_clock(Arc::new(crate::tokens::OriginClock(clock.clone())));
            if let Some(aud) = &config.edge_assertion_audience {
                v = v.audience(aud.clone());
            }
            Some(v)
        };
        if config.insecure_dev_cookies {
            tracing::warn!(
                "!!! insecure_dev_cookies is ON: cookies are sent WITHOUT `Secure` (plain-HTTP localhost development only). \
                 Never use this setting in production. !!!"
            );
        }
        Ok(AppState {
            limiter: RateLimiter::new(config.rate_max_buckets),
            ip_rule: ClientIpRule { trusted: config.trusted_networks()? },
            origins: Arc::new(Origins { allowed: config.allowed_origins.clone() }),
            cookies: CookiePolicy { secure: !config.insecure_dev_cookies },
            metrics: Metrics::default(),
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            ready: AtomicBool::new(true),
            config,
            store,
            clock,
            hasher,
            tokens,
            revocation,
            edge,
            social,
        })
    }
}

/// The key sealing the social-login cookies: made once, stored with the key sets, and
/// shared by every instance.
async fn cookie_key(store: &Store, now: i64) -> anyhow::Result<[u8; 32]> {
    use base64::Engine as _;
    const PURPOSE: &str = "cookie_seal";
    for _ in 0..3 {
        if let Some(k) = store.key_set(PURPOSE).await? {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(k.document.trim())
                .map_err(|_| anyhow::anyhow!("the stored cookie key is not base64url"))?;
            return raw.try_into().map_err(|_| anyhow::anyhow!("the stored cookie key is not 32 bytes"));
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let doc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        if store.insert_key_set(PURPOSE, &doc, now).await? {
            return Ok(key);
        }
    }
    anyhow::bail!("could not store the cookie key")
}

/// The router over `state`.
pub fn router(state: Shared) -> Router {
    let origins = state.origins.clone();
    Router::new()
        .route("/auth/register", post(routes::account::register))
        .route("/auth/login", post(routes::account::login))
        .route("/auth/refresh", post(routes::session::refresh))
        .route("/auth/logout", post(routes::session::logout))
        .route("/auth/logout-all", post(routes::session::logout_all))
        .route("/profile", get(routes::account::profile))
        .route("/auth/providers", get(routes::social::providers))
        .route("/auth/{provider}/start", get(routes::social::start))
        .route("/auth/{provider}/callback", get(routes::social::callback))
        .route("/auth/link", get(routes::social::pending_link).post(routes::social::confirm_link))
        .route("/auth/link/new", post(routes::social::link_new_account))
        .route("/account/identities", get(routes::social::identities))
        .route("/account/identities/{provider}/{subject}", delete(routes::social::unlink))
        .route("/", get(crate::page::index))
        .route("/page/{file}", get(crate::page::asset))
        .route("/admin/users", get(routes::admin::list_users))
        .route("/admin/users/{id}/roles", post(routes::admin::set_roles))
        .route("/.well-known/jwks.json", get(routes::ops::jwks))
        .route("/openapi.yaml", get(routes::ops::openapi))
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .fallback(routes::ops::not_found)
        .method_not_allowed_fallback(routes::ops::method_not_allowed)
        .layer(middleware::from_fn_with_state(origins, csrf::cors))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Bounds every request (concurrency, deadline) and counts responses by class.
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.requests.clone().try_acquire_owned() else {
        let resp = ApiError::unavailable("overloaded", "too many requests in flight").into_response();
        state.metrics.responses.inc("5xx");
        return resp;
    };
    let deadline = Duration::from_millis(state.config.request_timeout_ms);
    let resp = match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable("timeout", "the request took too long").into_response(),
    };
    let class = match resp.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    state.metrics.responses.inc(class);
    resp
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains requests.
pub async fn run(
    listener: TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let tasks = crate::tokens::spawn_maintenance(state.clone());
    let st = state.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            st.ready.store(false, Ordering::SeqCst);
        })
        .await;
    tasks.abort();
    state.store.close().await;
    result
}

/// A JSON request body: `application/json`, within the size limit, parsed strictly.
/// Malformed JSON is 400 `bad_json`; well-formed JSON of the wrong shape is 422
/// `invalid_request` naming the problem; another media type is 415.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Shared> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let limit = state.config.max_body_bytes;
        let body = http_body_util::Limited::new(req.into_body(), limit);
        let bytes: Bytes = match http_body_util::BodyExt::collect(body).await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body may have at most {limit} bytes"),
                ))
            }
        };
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body with the error kinds of [`JsonBody`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.to_string())
        }
        _ => ApiError::bad_request("bad_json", e.to_string()),
    })
}

/// The client's network key for rate limiting.
pub fn client_key(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> String {
    crate::client_ip::network_key(state.ip_rule.client_ip(peer, headers))
}
