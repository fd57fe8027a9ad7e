//! # tollgate-edge
//!
//! The Cloudflare Worker that guards routes: it lets a request through to the origin
//! only with a valid, unrevoked access token that the route's rule allows, and hands
//! the origin the verified identity in trusted `X-Tollgate-*` headers.
//!
//! A thin layer over `tollgate-core`, by file:
//! - [`handler`]: the request path, start to end.
//! - [`verify`]: verified-token cache (the core's `TokenCache`), key choice, signature,
//!   claims.
//! - [`keys`]: JWKS sources, caching (isolate + Cache API), unknown-`kid` cooldown.
//! - [`webcrypto`]: cold signatures through `crypto.subtle.verify`.
//! - [`replica`]: the denylist replica (snapshot, long-polled signed deltas, staleness).
//! - [`routes`], [`proxy`], [`respond`]: rules, forwarding and the Worker's own answers.
//! - [`config`]: `wrangler.toml` variables; [`isolate`]: per-isolate state.

#![forbid(unsafe_code)]

pub mod bench;
pub mod config;
pub mod error;
pub mod handler;
pub mod isolate;
pub mod keys;
pub mod platform;
pub mod proxy;
pub mod replica;
pub mod respond;
pub mod routes;
pub mod verify;
pub mod webcrypto;

#[cfg(test)]
mod testkeys;

/// The Worker's `fetch` entry point: hands the request to [`handler::handle`], which
/// always produces a response.
#[worker::event(fetch)]
pub async fn fetch(req: worker::Request, env: worker::Env, ctx: worker::Context) -> worker::Result<worker::Response> {
    let resp = handler::handle(req.inner(), &env, &ctx).await;
    Ok(worker::Response::from(resp))
}
