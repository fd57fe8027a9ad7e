//! Relay mode: the hub follows the revocation service with one upstream long-poll at
//! a time, run by the object's alarm (which re-arms itself). Deltas are taken by
//! sequence number (`Store::put_delta`), so a redelivered or overtaken one is
//! harmless; a 410 or a gap means: take the service's snapshot again.
//!
//! N edge isolates then cost the service one long-poll per hub instead of N.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::config::Relay;
use crate::object::RevocationHub;
use crate::wire::{peek, Header};

/// Largest message taken from the service, bytes.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Deadline of a snapshot download.
const SNAPSHOT_TIMEOUT_MS: u64 = 25_000;
/// Wait before the next try after a failure.
const BACKOFF_MS: i64 = 1_000;

async fn get(relay: &Relay, url: &str, timeout_ms: u64) -> Result<(u16, Vec<u8>), String> {
    let headers = Headers::new();
    headers.set("accept", "application/octet-stream").map_err(|e| e.to_string())?;
    if let Some(t) = &relay.token {
        headers.set("authorization", &format!("Bearer {t}")).map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let work = async {
        let fetch = Fetch::Request(req);
        let mut resp = fetch.send_with_signal(&signal).await.map_err(|e| e.to_string())?;
        let status = resp.status_code();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(format!("{} bytes is over the limit", body.len()));
        }
        Ok((status, body))
    };
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    futures_util::pin_mut!(work);
    futures_util::pin_mut!(timer);
    match select(work, timer).await {
        Either::Left((r, _)) => r,
        Either::Right(((), _)) => {
            controller.abort();
            Err(format!("no answer within {timeout_ms} ms"))
        }
    }
}

fn verified(relay: &Relay, body: &[u8], snapshot: bool) -> Result<(), String> {
    let Some(key) = &relay.key else { return Ok(()) };
    let r = if snapshot {
        tollgate_core::wire::decode_snapshot(body, key).map(|_| ())
    } else {
        tollgate_core::wire::decode_delta(body, key).map(|_| ())
    };
    r.map_err(|e| format!("refused a message the service's key does not verify: {e}"))
}

async fn take_snapshot(hub: &RevocationHub, relay: &Relay) -> Result<bool, String> {
    hub.stats.borrow_mut().upstream_requests += 1;
    let (status, body) =
        get(relay, &format!("{}/v1/denylist?wire={}", relay.url, tollgate_core::wire::VERSION), SNAPSHOT_TIMEOUT_MS)
            .await?;
    if status != 200 {
        return Err(format!("snapshot: status {status}"));
    }
    let Some(Header::Snapshot { seq }) = peek(&body) else { return Err("snapshot: not a snapshot".into()) };
    verified(relay, &body, true)?;
    let store = hub.store().map_err(|e| e.to_string())?;
    let head = store.head().map_err(|e| e.to_string())?;
    if head.snapshot_seq.is_some_and(|s| seq < s) {
        return Err(format!(
            "the service offered a snapshot at seq {seq}, behind the hub's {}: its log went back; the hub keeps what it has",
            head.snapshot_seq.unwrap_or(0)
        ));
    }
    store.put_snapshot(&body, seq, &crate::store::snapshot_id(&body)).map_err(|e| e.to_string())?;
    Ok(true)
}

/// One exchange with the service: a snapshot when the hub has none (or the service no
/// longer has the deltas after its head), else one long-polled delta. Returns whether
/// the head moved.
async fn exchange(hub: &RevocationHub, relay: &Relay) -> Result<bool, String> {
    let store = hub.store().map_err(|e| e.to_string())?;
    let head = store.head().map_err(|e| e.to_string())?;
    if head.snapshot_seq.is_none() {
        return take_snapshot(hub, relay).await;
    }
    hub.stats.borrow_mut().upstream_requests += 1;
    let url = format!(
        "{}/v1/denylist?since={}&wait={}&wire={}",
        relay.url,
        head.seq,
        relay.wait_seconds,
        tollgate_core::wire::VERSION
    );
    let (status, body) = get(relay, &url, (relay.wait_seconds + 10) * 1000).await?;
    match status {
        200 => {
            let Some(Header::Delta { from, to }) = peek(&body) else { return Err("not a delta".into()) };
            verified(relay, &body, false)?;
            match store.put_delta(&body, from, to) {
                Ok(moved) => {
                    // A new delta or a new heartbeat: subscribers get either (the
                    // heartbeat keeps them fresh by its signed creation time).
                    crate::push::broadcast(hub, &store);
                    Ok(moved)
                }
                // A gap (the head moved back under us? a service that skipped): resync.
                Err(_) => take_snapshot(hub, relay).await,
            }
        }
        410 => take_snapshot(hub, relay).await,
        s => Err(format!("delta: status {s}")),
    }
}

/// One alarm's work; returns when to run the next (ms from now).
pub async fn run_once(hub: &RevocationHub, relay: &Relay) -> i64 {
    let started = js_sys::Date::now();
    match exchange(hub, relay).await {
        Ok(true) => 0,
        // Nothing moved: the long-poll waited (go on at once) or answered at once
        // (a service that does not wait): not faster than 4 a second.
        Ok(false) => {
            if js_sys::Date::now() - started < 250.0 {
                250
            } else {
                0
            }
        }
        Err(e) => {
            let mut st = hub.stats.borrow_mut();
            st.upstream_errors += 1;
            st.upstream_last_error = e.clone();
            drop(st);
            worker::console_log!("tollgate-hub: relay from {} failed: {e}", relay.url);
            BACKOFF_MS
        }
    }
}
