//! Per-isolate state: the parsed configuration, the key store, the denylist replica
//! and the verified-token cache (the core's [`TokenCache`], keyed with 16 bytes from
//! `crypto.getRandomValues` when the isolate is built, inside its first request). Built at the first request and kept for the life of
//! the isolate (one thread, so `Rc` and `RefCell`; no borrow is held across `.await`).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Reflect, JSON};
use wasm_bindgen::JsValue;

use crate::config::{Config, ALL_VARS};
use crate::error::ConfigError;
use crate::keys::KeyStore;
use crate::platform::{describe, log, random_key};
use crate::replica::Replica;
use tollgate_core::TokenCache;

use crate::verify::Verified;

/// Everything an isolate keeps between requests.
#[derive(Debug)]
pub struct Isolate {
    /// The validated configuration.
    pub config: Config,
    /// Trusted keys.
    pub keys: RefCell<KeyStore>,
    /// The denylist replica.
    pub replica: RefCell<Replica>,
    /// Verified tokens.
    pub tokens: RefCell<TokenCache<Rc<Verified>>>,
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
    let built = Config::from_vars(&|name| read_var(env, name)).map(|config| {
        log(&format!("tollgate: configured: {}", config.summary()));
        let mut tokens = TokenCache::new(config.token_cache_size);
        match random_key() {
            Ok(key) => {
                tokens.set_key(&key);
            }
            // Unkeyed, the cache holds nothing: every token is verified in full.
            Err(e) => log(&format!("tollgate: no random key for the token cache ({}); cache off", describe(&e))),
        }
        Rc::new(Isolate {
            keys: RefCell::new(KeyStore::new(&config)),
            replica: RefCell::new(Replica::default()),
            tokens: RefCell::new(tokens),
            config,
        })
    });
    if let Err(e) = &built {
        log(&format!("tollgate: configuration error: {e}"));
    }
    ISOLATE.with(|s| *s.borrow_mut() = Some(built.clone()));
    built
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
