//! (The `#[durable_object]` macro generates undocumented glue, hence:)
#![allow(missing_docs)]

//! `RevocationHub`, the Durable Object: one per tenant/issuer shard (`get_by_name`).
//!
//! Its `fetch` serves `/{tenant}/{op}`:
//! - `GET head`: `{"tenant", "seq", "snapshot_seq", "snapshot_id", "tick", "mode", "deltas"}`.
//! - `GET since/N`: the signed deltas after N, framed (`wire::frame`), or 410
//!   `snapshot_required`.
//! - `GET snapshot`: the signed snapshot as received, or 503 `no_snapshot` before the
//!   first one.
//! - `GET stats`: what this instance served since it started (for tests and benches).
//! - `GET ws`: a WebSocket subscription (push to long-lived subscribers; `push.rs`).
//!
//! Callers are the Worker's own code (the binding is not reachable from outside); the
//! public API (`api.rs`) marks what it forwards with [`VIA_PUBLIC`], and those requests
//! need an API key with the route's scope.
//!
//! Relay mode: an alarm that re-arms itself runs one upstream long-poll at a time
//! (`relay.rs`). The alarm is armed by the first request the object gets (and checked
//! again by every new instance, after an eviction).

use std::cell::{Cell, RefCell};

use serde::Serialize;
use worker::{durable_object, Env, Method, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage};

use crate::config::{self, Mode};
use crate::keys::{self, ApiKey};
use crate::store::{Since, Store};
use crate::wire;

/// Header the public API sets on what it forwards (the object then wants an API key).
pub const VIA_PUBLIC: &str = "x-tollgate-hub-via";

/// What one instance served (reset when it is evicted).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// A random name for this instance: it changes when the object is evicted (or
    /// hibernates) and a new instance wakes.
    pub instance: String,
    /// Messages pushed to WebSocket subscribers.
    pub pushed: u64,
    /// `GET head` answers.
    pub head: u64,
    /// `GET since/N` answers.
    pub since: u64,
    /// `GET snapshot` answers.
    pub snapshot: u64,
    /// Requests sent to the upstream service (relay mode).
    pub upstream_requests: u64,
    /// Of which failed.
    pub upstream_errors: u64,
    /// The last upstream failure.
    pub upstream_last_error: String,
}

/// The revocation hub of one tenant shard.
#[durable_object]
pub struct RevocationHub {
    state: State,
    /// The same state, for the WebSocket calls `State` wraps with `unwrap` (a panic
    /// would reinitialise the wasm instance every object in the isolate shares).
    raw: worker::worker_sys::DurableObjectState,
    env: Env,
    pub(crate) stats: RefCell<Stats>,
    alarm_checked: Cell<bool>,
}

fn instance_name() -> String {
    format!("{:012x}", (js_sys::Math::random() * 281_474_976_710_656.0) as u64)
}

/// An error answer in the project's shape.
pub fn error(status: u16, kind: &str, detail: &str) -> Result<Response> {
    Ok(Response::from_json(&serde_json::json!({"error": kind, "detail": detail}))?.with_status(status))
}

impl RevocationHub {
    pub(crate) fn store(&self) -> std::result::Result<Store, crate::store::StoreError> {
        Store::open(self.state.storage().sql())
    }

    pub(crate) fn mode(&self) -> std::result::Result<Mode, config::ConfigError> {
        config::mode(&|n| config::read(&self.env, n))
    }

    pub(crate) fn raw_state(&self) -> &worker::worker_sys::DurableObjectState {
        &self.raw
    }

    pub(crate) fn env_ref(&self) -> &Env {
        &self.env
    }

    fn api_keys(&self) -> std::result::Result<Vec<ApiKey>, String> {
        match config::read(&self.env, config::API_KEYS) {
            None => Ok(Vec::new()),
            Some(doc) => keys::parse(&doc),
        }
    }

    /// The key a public request presents, when it has `scope`; else the error answer.
    pub(crate) fn authorize(
        &self,
        req: &Request,
        scope: &str,
    ) -> std::result::Result<Option<ApiKey>, Result<Response>> {
        if req.headers().get(VIA_PUBLIC).ok().flatten().is_none() {
            return Ok(None); // the Worker's own code
        }
        let keys = self.api_keys().map_err(|e| {
            worker::console_log!("tollgate-hub: {}: {e}", config::API_KEYS);
            error(503, "misconfigured", "the hub's API keys do not parse")
        })?;
        let auth = req.headers().get("authorization").ok().flatten();
        let Some(key) = keys::find(&keys, auth.as_deref()) else {
            return Err(error(401, "unauthorized", "an API key is required (Authorization: Bearer)"));
        };
        if !key.has(scope) {
            return Err(error(403, "forbidden", &format!("the key lacks the {scope} scope")));
        }
        Ok(Some(key.clone()))
    }

    async fn ensure_alarm(&self, mode: &Mode) {
        if !matches!(mode, Mode::Relay(_)) || self.alarm_checked.get() {
            return;
        }
        let storage = self.state.storage();
        match storage.get_alarm().await {
            Ok(Some(_)) => self.alarm_checked.set(true),
            Ok(None) => match storage.set_alarm(0i64).await {
                Ok(()) => self.alarm_checked.set(true),
                Err(e) => worker::console_log!("tollgate-hub: cannot arm the relay alarm: {e}"),
            },
            Err(e) => worker::console_log!("tollgate-hub: cannot read the alarm: {e}"),
        }
    }

    async fn serve(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        // `/{tenant}/{op}`, or the same under the public prefix (`api::forward_public`).
        let path = url.path().trim_start_matches('/');
        let path = path.strip_prefix(crate::api::PUBLIC_PREFIX.trim_start_matches('/')).unwrap_or(path).to_owned();
        let (tenant, op) = path.split_once('/').unwrap_or((path.as_str(), ""));
        if !config::valid_tenant(tenant) {
            return error(404, "not_found", "no such tenant");
        }
        let store = match self.store().and_then(|s| s.claim(tenant).map(|()| s)) {
            Ok(s) => s,
            Err(e) => return error(409, "wrong_tenant", &e.to_string()),
        };
        let mode = match self.mode() {
            Ok(m) => m,
            Err(e) => {
                worker::console_log!("tollgate-hub: configuration error: {e}");
                return error(503, "misconfigured", &e.to_string());
            }
        };
        self.ensure_alarm(&mode).await;
        let method = req.method();
        match (method, op) {
            (Method::Get, "head") => {
                if let Err(r) = self.authorize(&req, "denylist:read") {
                    return r;
                }
                self.stats.borrow_mut().head += 1;
                let mut head = store.head().map_err(|e| worker::Error::RustError(e.to_string()))?;
                if matches!(mode, Mode::Log) {
                    head = crate::log::head(&store, head, js_sys::Date::now());
                }
                let deltas = store.delta_count().unwrap_or(0);
                let mut body = serde_json::to_value(&head)?;
                body["mode"] = serde_json::json!(if matches!(mode, Mode::Log) { "log" } else { "relay" });
                body["deltas"] = deltas.into();
                Response::from_json(&body)
            }
            (Method::Get, "snapshot") => {
                if let Err(r) = self.authorize(&req, "denylist:read") {
                    return r;
                }
                self.stats.borrow_mut().snapshot += 1;
                let mut head = store.head().map_err(|e| worker::Error::RustError(e.to_string()))?;
                if matches!(mode, Mode::Log) {
                    head = crate::log::head(&store, head, js_sys::Date::now());
                }
                match crate::log::snapshot(self, &store, &mode) {
                    Ok(Some(bytes)) => {
                        let mut resp = Response::from_bytes(bytes)?;
                        let h = resp.headers_mut();
                        h.set("content-type", "application/vnd.tollgate.snapshot")?;
                        h.set("x-tollgate-seq", &head.snapshot_seq.unwrap_or(0).to_string())?;
                        h.set("x-tollgate-snapshot-id", &head.snapshot_id)?;
                        Ok(resp)
                    }
                    Ok(None) => error(503, "no_snapshot", "the hub holds no snapshot yet"),
                    Err(e) => error(503, "storage", &e),
                }
            }
            (Method::Get, op) if op.starts_with("since/") => {
                if let Err(r) = self.authorize(&req, "denylist:read") {
                    return r;
                }
                let Ok(n) = op["since/".len()..].parse::<u64>() else {
                    return error(400, "bad_request", "since/N needs a sequence number");
                };
                self.stats.borrow_mut().since += 1;
                match crate::log::since(self, &store, &mode, n) {
                    Ok(Since::Messages(msgs)) => {
                        let mut head = store.head().map_err(|e| worker::Error::RustError(e.to_string()))?;
                        if matches!(mode, Mode::Log) {
                            head = crate::log::head(&store, head, js_sys::Date::now());
                        }
                        let mut resp = Response::from_bytes(wire::frame(msgs.iter().map(Vec::as_slice)))?;
                        let h = resp.headers_mut();
                        h.set("content-type", "application/vnd.tollgate.deltas")?;
                        h.set("x-tollgate-seq", &head.seq.to_string())?;
                        h.set("x-tollgate-tick", &head.tick.to_string())?;
                        Ok(resp)
                    }
                    Ok(Since::Gone) => error(410, "snapshot_required", "the hub holds no chain of deltas from N"),
                    Err(e) => error(503, "storage", &e),
                }
            }
            (Method::Get, "stats") => {
                if let Err(r) = self.authorize(&req, "denylist:read") {
                    return r;
                }
                let stats = self.stats.borrow().clone();
                Response::from_json(&stats)
            }
            (Method::Get, "ws") => crate::push::accept(self, &req, tenant),
            (_, op) if op.starts_with("v1/") => match mode {
                Mode::Log => crate::log::serve(self, req, tenant, &store, &op[3..]).await,
                Mode::Relay(_) => error(404, "not_found", "this hub relays a revocation service: post events there"),
            },
            (_, _) => error(404, "not_found", "no such route"),
        }
    }
}

impl worker::DurableObject for RevocationHub {
    fn new(state: State, env: Env) -> Self {
        let raw = state._inner();
        let state = State::from(wasm_bindgen::JsCast::unchecked_into::<worker::worker_sys::DurableObjectState>(
            js_sys::Object::clone(&raw),
        ));
        RevocationHub {
            state,
            env,
            raw,
            stats: RefCell::new(Stats { instance: instance_name(), ..Stats::default() }),
            alarm_checked: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.serve(req).await {
            Ok(r) => Ok(r),
            Err(e) => {
                worker::console_log!("tollgate-hub: internal error: {e}");
                error(503, "internal", "the hub could not answer; see its log")
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let next_ms = match self.mode() {
            Ok(Mode::Relay(relay)) => crate::relay::run_once(self, &relay).await,
            // Log mode needs no alarm; a stale one (the mode changed) ends here.
            Ok(Mode::Log) => return Response::ok(""),
            Err(e) => {
                worker::console_log!("tollgate-hub: configuration error: {e}");
                5_000
            }
        };
        if let Err(e) = self.state.storage().set_alarm(next_ms).await {
            worker::console_log!("tollgate-hub: cannot re-arm the relay alarm: {e}");
        }
        Response::ok("")
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        crate::push::on_message(self, ws, message);
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        crate::push::on_close(ws, code);
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }

    /// Not a TCP service: a socket opened to the hub is closed at once.
    async fn connect(&self, _socket: worker::Socket) -> Result<()> {
        Ok(())
    }
}
