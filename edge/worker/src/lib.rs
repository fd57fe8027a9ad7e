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
//! - [`path`]: the canonical request path, matched by the rules and sent to the origin.
//! - [`routes`], [`proxy`], [`respond`]: rules, forwarding and the Worker's own answers.
//! - [`config`]: `wrangler.toml` variables; [`isolate`]: per-isolate state.

#![forbid(unsafe_code)]

pub mod bench;
pub mod config;
pub mod error;
pub mod handler;
pub mod isolate;
pub mod keys;
pub mod path;
pub mod platform;
pub mod proxy;
pub mod replica;
pub mod respond;
pub mod routes;
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
/// `fetch` promise (or the Worker's own `Response`) directly. Otherwise the same future
/// goes on behind a promise.
#[wasm_bindgen::prelude::wasm_bindgen(js_name = fetch)]
pub fn fetch(req: web_sys::Request, env: worker::Env, ctx: worker::worker_sys::Context) -> wasm_bindgen::JsValue {
    let ctx = worker::Context::new(ctx);
    entry::run(async move { handler::handle(&req, &env, &ctx).await.into_js() })
}

mod entry {
    //! Polling a future once in place, then handing it to the promise executor.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};

    use wasm_bindgen::JsValue;

    /// The waker of the first poll. A future may keep the waker of its first poll
    /// (`worker::Delay` does): waking this one wakes the executor's task once there is
    /// one, or makes its first poll (which comes anyway) find the future ready.
    #[derive(Default)]
    struct Relay(Mutex<Option<Waker>>);

    impl Wake for Relay {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            if let Some(task) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                task.wake_by_ref();
            }
        }
    }

    type Task = Pin<Box<dyn Future<Output = JsValue>>>;

    /// Polls `fut` once; its output if it is done, else a promise of it.
    pub(crate) fn run(fut: impl Future<Output = JsValue> + 'static) -> JsValue {
        let mut fut: Task = Box::pin(fut);
        let relay = Arc::new(Relay::default());
        let waker = Waker::from(Arc::clone(&relay));
        match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(value) => value,
            Poll::Pending => finish_later(fut, relay).into(),
        }
    }

    /// The rest of a pending future, as a promise. The executor polls it at once and
    /// then whenever it is woken, directly or through the relay.
    fn finish_later(mut fut: Task, relay: Arc<Relay>) -> js_sys::Promise {
        wasm_bindgen_futures::future_to_promise(std::future::poll_fn(move |cx| {
            *relay.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            fut.as_mut().poll(cx).map(Ok)
        }))
    }
}
