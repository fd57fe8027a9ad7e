//! `POST /__tollgate/bench` (only with `TOLLGATE_BENCH_ENDPOINT = "on"`): verifies a
//! token `n` times cold with the named backend inside the Worker and answers how many
//! verified. Inside workerd the clock does not advance during computation, so the
//! Worker cannot time itself; `edge/worker/bench.sh` times requests with `n = 0` and
//! `n = N` from outside and divides.
//!
//! Body: `{"token": "...", "n": 200, "backend": "webcrypto" | "rust"}`; or
//! `{"token": "...", "n": 200, "assert": true}` to make `n` assertions (the isolate's
//! `TOLLGATE_ORIGIN_AUTH`) for the identity of `token`, verified once first.
//!
//! `GET /__tollgate/bench` answers the isolate's figures instead: the size of its wasm
//! linear memory, the denylist replica's sequence and entry count, and the number of
//! cached tokens (`{"wasm_memory_bytes":…, "denylist_seq":…, "denylist_entries":…, "cached_tokens":…}`),
//! the hub tier's counters and the sequence of the high-water mark this isolate last
//! wrote to (or found ahead in) the colo's cache (`shared_mark_seq`).

use std::rc::Rc;

use serde::Deserialize;
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use crate::config::CryptoBackend;
use crate::isolate::Isolate;
use crate::platform::now_secs;
use crate::respond::{json_response, Reply};
use crate::verify::{verify_cold, verify_repeatedly};

#[derive(Deserialize)]
struct Job {
    token: String,
    n: u32,
    #[serde(default)]
    backend: String,
    #[serde(default)]
    assert: bool,
}

/// Runs one measurement job.
pub async fn handle(iso: &Rc<Isolate>, req: &web_sys::Request, ctx: &worker::Context) -> Response {
    if req.method() == "GET" {
        let (seq, entries) = iso.replica.as_ref().map_or((0, 0), |r| r.status());
        let memory = js_sys::Reflect::get(&wasm_bindgen::memory(), &"buffer".into())
            .ok()
            .and_then(|b| js_sys::Reflect::get(&b, &"byteLength".into()).ok())
            .and_then(|n| n.as_f64())
            .unwrap_or(0.0);
        let hub = match &iso.replica {
            Some(crate::isolate::AnyReplica::Hub(r)) => serde_json::to_string(&r.counters()).unwrap_or_default(),
            _ => "null".to_owned(),
        };
        let shared_mark = match &iso.replica {
            Some(crate::isolate::AnyReplica::Service(r)) => {
                r.shared_mark_seq().map_or("null".to_owned(), |s| s.to_string())
            }
            _ => "null".to_owned(),
        };
        let body = format!(
            r#"{{"wasm_memory_bytes":{memory},"denylist_seq":{seq},"denylist_entries":{entries},"cached_tokens":{},"hub":{hub},"shared_mark_seq":{shared_mark}}}"#,
            iso.tokens.borrow().len()
        );
        return json_response(200, &body, std::iter::once(("content-type", "application/json")));
    }
    let text = match req.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    let Ok(job) = serde_json::from_str::<Job>(&text) else {
        return json_response(400, r#"{"error":"bad_request"}"#, std::iter::empty());
    };
    if job.assert {
        let Some(set) = iso.keys.current(ctx).await else { return Reply::JwksUnavailable.response() };
        let now = now_secs();
        let verified = match verify_cold(&set, iso.config.crypto, false, &job.token, now).await {
            Ok(v) => v,
            Err(e) => return Reply::Invalid(e.reason()).response(),
        };
        let mut made = 0;
        for _ in 0..job.n.min(100_000) {
            if iso.asserter.assert("GET", "/profile", &verified.identity, now).await.is_ok() {
                made += 1;
            }
        }
        return json_response(200, &format!(r#"{{"verified":{made},"n":{}}}"#, job.n), std::iter::empty());
    }
    let backend = match job.backend.as_str() {
        "rust" => CryptoBackend::Rust,
        "webcrypto" => CryptoBackend::WebCrypto,
        _ => return json_response(400, r#"{"error":"bad_backend"}"#, std::iter::empty()),
    };
    let Some(set) = iso.keys.current(ctx).await else { return Reply::JwksUnavailable.response() };
    match verify_repeatedly(&set, &job.token, job.n.min(100_000), backend, now_secs()).await {
        Ok(ok) => json_response(200, &format!(r#"{{"verified":{ok},"n":{}}}"#, job.n), std::iter::empty()),
        Err(e) => Reply::Invalid(e.reason()).response(),
    }
}
