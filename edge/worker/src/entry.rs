//! Running the request future: polled in place, continued as a `then` of the one
//! JavaScript promise it waits on, or handed to the promise executor.
//!
//! A cold token waits on exactly one promise, `crypto.subtle.verify`'s, and the runtime
//! wants a promise of the response anyway: so the request's answer *is* that promise's
//! `then(v => resume(id, v))`, and `resume` polls the future again in the callback —
//! which returns the response, or the origin's `fetch` promise (flattened by `then`).
//! No wasm closure, executor task or microtask is made per request, where
//! `wasm_bindgen_futures` makes two closures per awaited promise, one executor task,
//! a promise of its own and two microtasks (and polls the whole future once more
//! before anything happened). A future waiting on [`JsAwait`] while polled here
//! offers its promise instead of registering a waker; everywhere else (other
//! executors, other awaits) `JsAwait` is a plain `JsFuture` and the request goes on
//! behind `future_to_promise` as before.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use js_sys::Promise;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

/// The waker of the polls made here. A future may keep the waker of its first poll
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
type Resume = Closure<dyn Fn(u32, JsValue, bool) -> JsValue>;

thread_local! {
    /// Whether a poll made here is running (only then may a `JsAwait` offer its promise).
    static POLLING_HERE: Cell<bool> = const { Cell::new(false) };
    /// The promise a `JsAwait` offered during the poll running here.
    static OFFERED: RefCell<Option<Promise>> = const { RefCell::new(None) };
    /// The outcome of the offered promise, for the `JsAwait` the resumed poll reaches.
    static SETTLED: RefCell<Option<Result<JsValue, JsValue>>> = const { RefCell::new(None) };
    /// Futures waiting on an offered promise, by id.
    static WAITING: RefCell<HashMap<u32, (Task, Arc<Relay>)>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
    /// `resume`, as a JavaScript function: made once per isolate.
    static RESUME: OnceCell<Resume> = const { OnceCell::new() };
}

#[wasm_bindgen(inline_js = r#"
export function then_resume(promise, id, resume) {
  return promise.then((v) => resume(id, v, true), (e) => resume(id, e, false));
}
"#)]
extern "C" {
    fn then_resume(promise: &Promise, id: u32, resume: &JsValue) -> Promise;
}

/// Runs `fut`: its output if one poll finishes it, else a promise of it.
pub(crate) fn run(fut: impl Future<Output = JsValue> + 'static) -> JsValue {
    step(Box::pin(fut), Arc::new(Relay::default()))
}

/// Polls `fut` once; its output, or the `then` of the promise it offered, or (waiting
/// on anything else) a promise of it from the executor.
fn step(mut fut: Task, relay: Arc<Relay>) -> JsValue {
    let waker = Waker::from(Arc::clone(&relay));
    POLLING_HERE.set(true);
    let polled = crate::platform::with_poll_clock(|| fut.as_mut().poll(&mut Context::from_waker(&waker)));
    POLLING_HERE.set(false);
    let offered = OFFERED.take();
    match (polled, offered) {
        (Poll::Ready(value), _) => value,
        (Poll::Pending, Some(promise)) => {
            let id = NEXT_ID.get();
            NEXT_ID.set(id.wrapping_add(1));
            WAITING.with_borrow_mut(|w| w.insert(id, (fut, relay)));
            RESUME.with(|r| then_resume(&promise, id, r.get_or_init(|| Closure::new(resume)).as_ref())).into()
        }
        (Poll::Pending, None) => finish_later(fut, relay).into(),
    }
}

/// The offered promise of future `id` settled (`ok`: fulfilled with `value`).
fn resume(id: u32, value: JsValue, ok: bool) -> JsValue {
    let Some((fut, relay)) = WAITING.with_borrow_mut(|w| w.remove(&id)) else {
        return JsValue::UNDEFINED; // never: every id is resumed once
    };
    SETTLED.set(Some(if ok { Ok(value) } else { Err(value) }));
    let out = step(fut, relay);
    SETTLED.take();
    out
}

/// The rest of a pending future, as a promise. The executor polls it at once and
/// then whenever it is woken, directly or through the relay.
fn finish_later(mut fut: Task, relay: Arc<Relay>) -> Promise {
    wasm_bindgen_futures::future_to_promise(std::future::poll_fn(move |cx| {
        *relay.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        crate::platform::with_poll_clock(|| fut.as_mut().poll(cx)).map(Ok)
    }))
}

/// Awaits a JavaScript promise: offered to [`run`]'s chaining when polled there, a
/// `JsFuture` anywhere else.
#[derive(Debug)]
pub(crate) struct JsAwait(Await);

#[derive(Debug)]
enum Await {
    New(Promise),
    Offered,
    Elsewhere(JsFuture),
    Done,
}

impl JsAwait {
    /// Awaits `promise`.
    pub(crate) fn new(promise: Promise) -> JsAwait {
        JsAwait(Await::New(promise))
    }
}

impl Future for JsAwait {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match std::mem::replace(&mut self.0, Await::Done) {
            Await::New(promise) if POLLING_HERE.get() && OFFERED.with_borrow(Option::is_none) => {
                OFFERED.set(Some(promise));
                self.0 = Await::Offered;
                Poll::Pending
            }
            Await::New(promise) => self.poll_elsewhere(JsFuture::from(promise), cx),
            Await::Elsewhere(fut) => self.poll_elsewhere(fut, cx),
            Await::Offered => match SETTLED.take() {
                Some(outcome) => Poll::Ready(outcome),
                None => {
                    self.0 = Await::Offered;
                    Poll::Pending
                }
            },
            Await::Done => Poll::Ready(Err(JsValue::from_str("JsAwait polled after it finished"))),
        }
    }
}

impl JsAwait {
    fn poll_elsewhere(&mut self, mut fut: JsFuture, cx: &mut Context<'_>) -> Poll<Result<JsValue, JsValue>> {
        let polled = Pin::new(&mut fut).poll(cx);
        if polled.is_pending() {
            self.0 = Await::Elsewhere(fut);
        }
        polled
    }
}
