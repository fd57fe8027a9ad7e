//! Push over hibernatable WebSockets, for long-lived subscribers: other Durable
//! Objects, replicas off Cloudflare, the npm `RemoteDenylist`. (Worker isolates pull:
//! they cannot keep a socket open across requests.)
//!
//! # Protocol
//!
//! `GET /{tenant}/ws` with `Upgrade: websocket` (public:
//! `/__tollgate/hub/{tenant}/ws`, with a `denylist:read` key in `Authorization`).
//!
//! - Subscriber → hub, a text frame `{"since": N}`: "I hold sequence N" (`null`: "I
//!   hold nothing"). The hub answers with the signed messages that bring N to its head
//!   (the deltas after N, or the snapshot and the deltas after it when it no longer
//!   holds a chain from N), and from then on pushes from there. A subscriber sends it
//!   first, after anything it could not apply (a gap, a signature it refused), and
//!   periodically as its ping: the answer at the head is a signed heartbeat (log mode:
//!   an empty delta signed now; relay mode: the service's latest heartbeat), so a
//!   subscriber judges its freshness by signed creation times, never by the socket
//!   being open.
//! - Hub → subscriber, binary frames: one signed message each, byte for byte as
//!   `GET snapshot` serves it or as one message of `GET since/N`. The subscriber
//!   verifies the service's (or, in log mode, the hub's) signature as for HTTP: the
//!   hub is not trusted for content.
//! - Hub → subscriber, text frames: `{"error": kind, "detail": …}` for an ask it could
//!   not answer (`no_snapshot` before the hub has one, `rate_limited`, `storage`); a
//!   frame that is not a well-formed ask closes the socket with 1008.
//!
//! Every change that lands (a relayed delta or heartbeat; an acknowledged event in log
//! mode) is pushed in the same turn to every subscriber of the tenant, from the position
//! last sent to it. Durable Objects hold outgoing messages until the writes before them
//! are durable, so nothing is pushed that could be lost.
//!
//! # State
//!
//! Nothing in memory: a socket's tag is its tenant, and its attachment holds the
//! position last sent and the one it last reported. Both survive hibernation, so a hub
//! evicted while idle wakes with its subscribers intact, and a subscriber that
//! reconnects resumes from the sequence it holds.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use worker::{Request, Response, Result, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use crate::config::Mode;
use crate::object::{error, RevocationHub};
use crate::store::{Since, Store};
use crate::wire::{self, Header};

/// Most subscribers one hub accepts (a hibernatable object takes up to 32,768).
pub const MAX_SUBSCRIBERS: usize = 4096;
/// Longest ask accepted, bytes.
const MAX_ASK: usize = 128;
/// Asks closer together than this are refused (`rate_limited`), ms.
const MIN_ASK_INTERVAL_MS: f64 = 100.0;
/// Rounds of `since` per push (each at most `store::MAX_SINCE` messages); a
/// subscriber further behind is brought up by its next ask or push.
const MAX_ROUNDS: usize = 8;

/// A socket's attachment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Attachment {
    /// The position the hub has brought the subscriber to (`None`: it has not asked).
    sent: Option<u64>,
    /// The position the subscriber last reported.
    acked: Option<u64>,
    /// When it last asked (ms since the epoch).
    asked_at: f64,
}

/// A subscriber's ask.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    since: Option<u64>,
}

/// `GET ws`: accepts a subscriber.
pub fn accept(hub: &RevocationHub, req: &Request, tenant: &str) -> Result<Response> {
    if let Err(r) = hub.authorize(req, "denylist:read") {
        return r;
    }
    let upgrade = req.headers().get("upgrade").ok().flatten();
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return error(426, "upgrade_required", "GET ws is a WebSocket endpoint: send Upgrade: websocket");
    }
    let state = hub.raw_state();
    if state.get_websockets().map(|v| v.len()).unwrap_or(0) >= MAX_SUBSCRIBERS {
        return error(503, "too_many_subscribers", "this hub has as many subscribers as it takes; retry later");
    }
    let pair = WebSocketPair::new()?;
    state
        .accept_websocket_with_tags(pair.server.as_ref(), vec![JsValue::from_str(tenant)])
        .map_err(|e| worker::Error::JsError(format!("acceptWebSocket: {e:?}")))?;
    pair.server.serialize_attachment(Attachment::default())?;
    Response::from_websocket(pair.client)
}

/// Pushes what landed to every subscriber of the store's tenant that has asked.
pub fn broadcast(hub: &RevocationHub, store: &Store) {
    let (Ok(Some(tenant)), Ok(mode)) = (store.tenant(), hub.mode()) else { return };
    let Ok(sockets) = hub.raw_state().get_websockets_with_tag(&tenant) else { return };
    // Subscribers at the same position get the same messages: made (and, in log
    // mode, signed) once.
    let mut memo: Vec<(u64, Vec<Vec<u8>>, u64)> = Vec::new();
    for ws in sockets.into_iter().map(WebSocket::from) {
        let Ok(Some(mut att)) = ws.deserialize_attachment::<Attachment>() else { continue };
        let Some(sent) = att.sent else { continue };
        let (msgs, to) = match memo.iter().find(|(at, _, _)| *at == sent) {
            Some((_, msgs, to)) => (msgs.clone(), *to),
            None => match catch_up(hub, store, &mode, Some(sent)) {
                Ok((msgs, to)) => {
                    memo.push((sent, msgs.clone(), to));
                    (msgs, to)
                }
                Err(_) => continue,
            },
        };
        if send_all(&ws, &msgs) {
            hub.stats.borrow_mut().pushed += msgs.len() as u64;
            att.sent = Some(to);
            let _ = ws.serialize_attachment(&att);
        }
    }
}

/// A subscriber's frame.
pub fn on_message(hub: &RevocationHub, ws: WebSocket, message: WebSocketIncomingMessage) {
    let ask = match &message {
        WebSocketIncomingMessage::String(s) if s.len() <= MAX_ASK => serde_json::from_str::<Ask>(s).ok(),
        _ => None,
    };
    let Some(ask) = ask else {
        let _ = ws.close(Some(1008), Some("expected {\"since\": N}"));
        return;
    };
    let Ok(Some(mut att)) = ws.deserialize_attachment::<Attachment>() else {
        let _ = ws.close(Some(1011), Some("lost the subscription's state"));
        return;
    };
    let now = js_sys::Date::now();
    if now - att.asked_at < MIN_ASK_INTERVAL_MS {
        send_error(&ws, "rate_limited", "asks are answered at most every 100 ms");
        return;
    }
    att.asked_at = now;
    att.acked = ask.since;
    let answer = hub
        .store()
        .map_err(|e| e.to_string())
        .and_then(|store| hub.mode().map(|mode| (store, mode)).map_err(|e| e.to_string()))
        .and_then(|(store, mode)| catch_up(hub, &store, &mode, ask.since));
    match answer {
        Ok((msgs, to)) => {
            if send_all(&ws, &msgs) {
                hub.stats.borrow_mut().pushed += msgs.len() as u64;
                att.sent = Some(to);
            }
        }
        Err(e) if e == NO_SNAPSHOT => send_error(&ws, "no_snapshot", "the hub holds no snapshot yet; ask again"),
        Err(e) => {
            worker::console_log!("tollgate-hub: push: {e}");
            send_error(&ws, "storage", "the hub could not read its storage; ask again");
        }
    }
    let _ = ws.serialize_attachment(&att);
}

/// Completes a close the subscriber started.
pub fn on_close(ws: WebSocket, code: usize) {
    // 1005/1006 are not codes a frame may carry.
    let code = if code == 1005 || code == 1006 { 1000 } else { code as u16 };
    let _ = ws.close(Some(code), Some("bye"));
}

const NO_SNAPSHOT: &str = "no snapshot";

/// The messages that bring a subscriber at `from` (`None`: nothing) towards the head,
/// and the position they bring it to.
fn catch_up(
    hub: &RevocationHub,
    store: &Store,
    mode: &Mode,
    from: Option<u64>,
) -> std::result::Result<(Vec<Vec<u8>>, u64), String> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut at = match from {
        Some(n) => n,
        None => take_snapshot(hub, store, mode, &mut out)?,
    };
    for _ in 0..MAX_ROUNDS {
        let msgs = match crate::log::since(hub, store, mode, at)? {
            Since::Messages(m) => m,
            // A chain that no longer starts at `at`: the snapshot, then on from it.
            Since::Gone if out.is_empty() => {
                at = take_snapshot(hub, store, mode, &mut out)?;
                continue;
            }
            Since::Gone => break,
        };
        let (before, n) = (at, msgs.len());
        for m in msgs {
            if let Some(Header::Delta { to, .. }) = wire::peek(&m) {
                at = at.max(to);
            }
            out.push(m);
        }
        // A short answer reached the head (or only the heartbeat came).
        if n < crate::store::MAX_SINCE || at == before {
            break;
        }
    }
    Ok((out, at))
}

fn take_snapshot(
    hub: &RevocationHub,
    store: &Store,
    mode: &Mode,
    out: &mut Vec<Vec<u8>>,
) -> std::result::Result<u64, String> {
    let bytes = crate::log::snapshot(hub, store, mode)?.ok_or_else(|| NO_SNAPSHOT.to_owned())?;
    let Some(Header::Snapshot { seq }) = wire::peek(&bytes) else {
        return Err("the stored snapshot has no readable header".into());
    };
    out.push(bytes);
    Ok(seq)
}

/// Sends each message as a binary frame; false when the socket refused one.
fn send_all(ws: &WebSocket, msgs: &[Vec<u8>]) -> bool {
    msgs.iter().all(|m| ws.send_with_bytes(m).is_ok())
}

fn send_error(ws: &WebSocket, kind: &str, detail: &str) {
    let _ = ws.send_with_str(serde_json::json!({"error": kind, "detail": detail}).to_string());
}
