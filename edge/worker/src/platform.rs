//! Thin helpers over the Workers runtime: the clock, timers, and bounded fetches.
//!
//! Every outbound fetch here has a deadline: on expiry the request is aborted through
//! an `AbortController` and the caller gets [`FetchError::Timeout`].

use std::cell::Cell;
use std::time::Duration;

use futures_util::future::{select, Either};
use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, Request, RequestInit, Response};

use crate::error::FetchError;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(input: &Request, init: &RequestInit) -> Result<Promise, JsValue>;
}

/// Milliseconds since the epoch (the runtime's clock; in production it advances on I/O).
///
/// Inside [`with_poll_clock`] the clock is read once and the same value is returned
/// until the poll ends: workerd's clock does not move while JavaScript or wasm runs (it
/// advances only with I/O), so one synchronous poll of a request sees one time anyway,
/// and each further `Date.now()` would only be another wasm→JS crossing.
pub fn now_ms() -> f64 {
    match POLL_CLOCK.get() {
        PollClock::Off => js_sys::Date::now(),
        PollClock::Read(t) => t,
        PollClock::Unread => {
            let t = js_sys::Date::now();
            POLL_CLOCK.set(PollClock::Read(t));
            t
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum PollClock {
    /// Not inside a poll made by [`with_poll_clock`]: every read asks the runtime.
    Off,
    /// Inside one, not read yet.
    Unread,
    /// Inside one, read at this time.
    Read(f64),
}

thread_local! {
    static POLL_CLOCK: Cell<PollClock> = const { Cell::new(PollClock::Off) };
}

/// Runs `poll` (one synchronous poll of a request's future) with the clock read at
/// most once; nested calls share the outer one's reading.
pub fn with_poll_clock<R>(poll: impl FnOnce() -> R) -> R {
    let outer = POLL_CLOCK.get();
    if matches!(outer, PollClock::Off) {
        POLL_CLOCK.set(PollClock::Unread);
    }
    let out = poll();
    if matches!(outer, PollClock::Off) {
        POLL_CLOCK.set(PollClock::Off);
    }
    out
}

/// Seconds since the epoch, as the core's `now`.
pub fn now_secs() -> i64 {
    (now_ms() / 1000.0) as i64
}

/// 16 bytes from the platform's CSPRNG (`crypto.getRandomValues`; Workers allow it
/// only inside a request).
pub fn random_key() -> Result<[u8; 16], JsValue> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
    if crypto.is_undefined() {
        return Err(JsValue::from_str("globalThis.crypto is undefined"));
    }
    let mut key = [0u8; 16];
    crypto.unchecked_into::<web_sys::Crypto>().get_random_values_with_u8_array(&mut key)?;
    if key == [0; 16] {
        return Err(JsValue::from_str("crypto.getRandomValues returned zeros"));
    }
    Ok(key)
}

/// Waits `ms` milliseconds (a `setTimeout` owned by the calling request).
pub async fn sleep(ms: u64) {
    worker::Delay::from(Duration::from_millis(ms)).await;
}

/// The status, headers and whole body of an answer.
#[derive(Debug)]
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// The body (empty for statuses without one).
    pub body: Vec<u8>,
}

/// Sends `req` and reads the whole answer, aborting after `timeout_ms` or when the body
/// exceeds `max_body` bytes.
pub async fn fetch_all(req: &Request, timeout_ms: u64, max_body: usize) -> Result<Fetched, FetchError> {
    let controller = AbortController::new().map_err(js_err)?;
    let init = RequestInit::new();
    init.set_signal(Some(&controller.signal()));
    let work = async {
        let promise = global_fetch(req, &init).map_err(js_err)?;
        let resp: Response = JsFuture::from(promise).await.map_err(js_err)?.unchecked_into();
        let status = resp.status();
        let headers = resp.headers();
        if let Some(len) = headers.get("content-length").ok().flatten().and_then(|l| l.parse::<usize>().ok()) {
            if len > max_body {
                return Err(FetchError::Body(format!("{len} bytes is over the limit of {max_body}")));
            }
        }
        let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
        let body = Uint8Array::new(&buf);
        if body.length() as usize > max_body {
            return Err(FetchError::Body(format!("body over the limit of {max_body} bytes")));
        }
        Ok(Fetched { status, headers, body: body.to_vec() })
    };
    let timer = sleep(timeout_ms);
    futures_util::pin_mut!(work);
    futures_util::pin_mut!(timer);
    match select(work, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            controller.abort();
            Err(FetchError::Timeout)
        }
    }
}

/// A GET request with the given headers that does not follow redirects.
pub fn get_request(url: &str, headers: &[(&str, &str)]) -> Result<Request, FetchError> {
    let h = Headers::new().map_err(js_err)?;
    for (k, v) in headers {
        h.set(k, v).map_err(js_err)?;
    }
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers(&h);
    // Redirects come back as they are: the caller decides whether to follow one.
    init.set_redirect(web_sys::RequestRedirect::Manual);
    Request::new_with_str_and_init(url, &init).map_err(js_err)
}

/// Describes a JavaScript exception for a log line.
pub fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

fn js_err(e: JsValue) -> FetchError {
    FetchError::Network(describe(&e))
}

/// Writes one line to the Worker's log.
pub fn log(line: &str) {
    web_sys_console_log(line);
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = log)]
    fn web_sys_console_log(s: &str);
}
