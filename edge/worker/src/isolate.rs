//! Per-isolate state: the parsed configuration and the three stores the request path
//! composes: the key store, the denylist replica (when revocation is configured) and
//! the verified-token cache (keyed with 16 bytes from `crypto.getRandomValues` when the
//! isolate is built, inside its first request). Built at the first request and kept for
//! the life of the isolate (one thread, so `Rc` and `RefCell`; no borrow is held across
//! `.await`). Each store works on its own state; none of them knows this one.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Reflect, JSON};
use wasm_bindgen::JsValue;

use crate::assertion::Asserter;
use crate::config::{Config, ALL_VARS};
use crate::error::ConfigError;
use crate::identity::Identity;
use crate::keys::KeyStore;
use crate::platform::{describe, log, random_key};
use crate::replica::source::HttpSource;
use crate::replica::tier::HubReplica;
use crate::replica::{Freshness, Replica};
use crate::token_cache::VerifiedTokens;

/// Everything an isolate keeps between requests.
#[derive(Debug)]
pub struct Isolate {
    /// The validated configuration.
    pub config: Config,
    /// Trusted keys.
    pub keys: Rc<KeyStore>,
    /// The denylist replica, when a revocation service is configured.
    pub replica: Option<AnyReplica>,
    /// Verified tokens.
    pub tokens: RefCell<VerifiedTokens>,
    /// Makes `X-Tollgate-Assertion`.
    pub asserter: Asserter,
    /// The identity of requests on `auth: none` routes (the same for all).
    pub no_identity: Identity,
}

/// The replica path the configuration picked (`TOLLGATE_REVOCATION_SOURCE`).
#[derive(Debug)]
pub enum AnyReplica {
    /// Each isolate long-polls the revocation service (`replica.rs`).
    Service(Rc<Replica<HttpSource>>),
    /// The colo's Cache API in front of the hub (`replica/tier.rs`).
    Hub(Rc<HubReplica>),
}

impl AnyReplica {
    /// Whether the request may rely on the denylist (syncing first if needed).
    pub async fn ensure_fresh(&self, env: &worker::Env, ctx: &worker::Context) -> Freshness {
        match self {
            AnyReplica::Service(r) => r.ensure_fresh(ctx).await,
            AnyReplica::Hub(r) => r.ensure_fresh(env, ctx).await,
        }
    }

    /// Whether verified claims are revoked according to the replica held.
    pub fn is_revoked(&self, claims: &tollgate_core::Claims) -> bool {
        match self {
            AnyReplica::Service(r) => r.is_revoked(claims),
            AnyReplica::Hub(r) => r.is_revoked(claims),
        }
    }

    /// The replica's sequence number and entry count.
    pub fn status(&self) -> (u64, usize) {
        match self {
            AnyReplica::Service(r) => r.status(),
            AnyReplica::Hub(r) => r.status(),
        }
    }
}

thread_local! {
    static ISOLATE: RefCell<Option<Result<Rc<Isolate>, ConfigError>>> = const { RefCell::new(None) };
}

/// The isolate's state, built from `env` on first use. A configuration error is kept
/// too, so every request fails closed the same way without re-parsing.
pub fn get(env: &worker::Env) -> Result<Rc<Isolate>, ConfigError> {
    if let Some(done) = ISOLATE.with(|s| s.borrow().clone()) {
        return done;
    }
    let built = Config::from_vars(&|name| read_var(env, name)).and_then(|config| {
        log(&format!("tollgate: configured: {}", config.summary()));
        build(config).map(Rc::new)
    });
    if let Err(e) = &built {
        log(&format!("tollgate: configuration error: {e}"));
    }
    ISOLATE.with(|s| *s.borrow_mut() = Some(built.clone()));
    built
}

fn build(config: Config) -> Result<Isolate, ConfigError> {
    let key = match random_key() {
        Ok(key) => Some(key),
        // Unkeyed, the cache holds nothing: every token is verified in full.
        Err(e) => {
            log(&format!("tollgate: no random key for the token cache ({}); cache off", describe(&e)));
            None
        }
    };
    // Request ids need a key of their own; without randomness the Worker does not start.
    let id_key = random_key().map_err(|e| {
        ConfigError::Invalid("crypto.getRandomValues", format!("no random key for request ids: {}", describe(&e)))
    })?;
    let keys = KeyStore::new(config.sources.clone(), config.policy.clone(), config.jwks_cooldown_seconds);
    let replica = config.revocation.as_ref().map(|rev| match &rev.hub {
        Some(tier) => AnyReplica::Hub(Rc::new(HubReplica::new(tier.clone(), rev))),
        None => AnyReplica::Service(Rc::new(Replica::new(HttpSource::new(rev.url.clone(), rev.token.clone()), rev))),
    });
    Ok(Isolate {
        keys: Rc::new(keys),
        replica,
        tokens: RefCell::new(VerifiedTokens::new(config.token_cache_size, key)),
        asserter: Asserter::new(&config, id_key),
        no_identity: Identity::none(),
        config,
    })
}

/// A variable or secret as a string: strings as they are, TOML arrays/tables/numbers
/// (which wrangler passes as JSON values) as their JSON text.
fn read_var(env: &worker::Env, name: &str) -> Option<String> {
    debug_assert!(ALL_VARS.contains(&name));
    let v = Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    if v.is_undefined() || v.is_null() {
        return None;
    }
    if let Some(s) = v.as_string() {
        return Some(s);
    }
    JSON::stringify(&v).ok().and_then(|s| s.as_string())
}
