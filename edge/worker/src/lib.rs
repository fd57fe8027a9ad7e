//! # tollgate-edge
//!
//! The Cloudflare Worker that guards routes: it lets a request through to the origin
//! only with a valid, unrevoked access token that the route's rule allows, and hands
//! the origin the verified identity in trusted `X-Tollgate-*` headers.
//!
//! A thin layer over `tollgate-core`. Each file depends only on those below it; a token
//! goes down the list from [`fetch`]:
//! - `entry`: runs the request future (polled in place, or continued as a promise's
//!   `then`).
//! - [`handler`]: the request path, start to end, and the one place that composes the
//!   stores below.
//! - [`isolate`]: per-isolate state: the configuration and the three stores.
//! - [`path`], [`routes`]: the canonical request path and the rules matched against it.
//! - [`token_cache`]: the verified-token cache (the core's `TokenCache`), following the
//!   key set.
//! - [`verify`]: a cold verification against one key set: key choice, signature,
//!   claims.
//! - [`webcrypto`]: cold signatures through `crypto.subtle.verify`.
//! - [`keys`]: the key store: JWKS sources, caching (isolate + Cache API), unknown-`kid`
//!   cooldown.
//! - [`replica`]: the denylist replica (snapshot, long-polled signed deltas, staleness)
//!   over a [`replica::source::Source`].
//! - [`assertion`]: `X-Tollgate-Assertion`, by which the origin knows a request came
//!   through the Worker.
//! - [`proxy`], [`identity`], [`respond`]: forwarding, the identity headers, and the
//!   Worker's own answers.
//! - [`config`]: `wrangler.toml` variables; [`platform`]: the runtime's clock, timers
//!   and fetches; [`error`]: the errors.

#![forbid(unsafe_code)]

pub mod assertion;
#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
mod entry;
pub mod error;
pub mod handler;
pub mod identity;
pub mod isolate;
pub mod keys;
pub mod path;
pub mod platform;
pub mod proxy;
pub mod replica;
pub mod respond;
pub mod routes;
pub mod token_cache;
pub mod verify;
pub mod webcrypto;

#[cfg(test)]
mod testkeys;

/// The Worker's `fetch` entry point, in place of `#[worker::event(fetch)]`, whose glue
/// wraps the request in a `worker::Request`, turns our response into a `worker::Response`
/// and back into a new JavaScript `Response`, and always runs the handler as a spawned
/// future behind a promise. Here the handler is polled once in place: a request that
/// needs no I/O of its own before forwarding (a verified-token cache hit with a fresh
/// denylist, an open route) completes in that poll, and the runtime gets the origin's
/// `fetch` promise (or the Worker's own `Response`) directly. A request waiting on one
/// JavaScript promise (a cold token's `crypto.subtle.verify`) goes on as that promise's
/// `then`; anything else goes on behind a promise executor (see `entry.rs`).
#[wasm_bindgen::prelude::wasm_bindgen(js_name = fetch)]
pub fn fetch(req: web_sys::Request, env: worker::Env, ctx: worker::worker_sys::Context) -> wasm_bindgen::JsValue {
    let ctx = worker::Context::new(ctx);
    entry::run(async move { handler::handle(&req, &env, &ctx).await.into_js() })
}
