//! `GET /v1/denylist` (signed snapshot, or delta with `since`, long-polling with
//! `wait`) and `GET /v1/denylist/key`.
//!
//! Wire format: version 2 (epoch and creation time under the signature) for `wire=2`,
//! and for requests without `wire` unless `legacy_wire_v1` is on; then those get
//! version 1, for replicas built before version 2, during an upgrade (service first,
//! then edges; see `tollgate_core::wire`). `wire=1` without `legacy_wire_v1` is 400.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tollgate_core::wire::{encode_delta, encode_snapshot, v1, Delta, DeltaEvent, Stamp};
use tollgate_core::EntryKind;

use super::request::{authorize, parse_query, wants_json, RequestSlot};
use crate::apikeys::Scope;
use crate::context::AppState;
use crate::error::ApiError;
use crate::event::Summary;
use crate::store::{decode_seq, seq_key};

/// Media type of a signed snapshot.
const SNAPSHOT_TYPE: &str = "application/vnd.tollgate.snapshot";
/// Media type of a signed delta.
const DELTA_TYPE: &str = "application/vnd.tollgate.delta";

/// 503 while the service stops because its signing key is unusable.
fn signing_ok(st: &AppState) -> Result<(), ApiError> {
    match st.fatal() {
        Some(why) => Err(ApiError::unavailable("signing_key_unavailable", why)),
        None => Ok(()),
    }
}

pub(super) async fn get_key(State(st): State<AppState>) -> Result<Response, ApiError> {
    signing_ok(&st)?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(st.signing().jwk.clone())).into_response())
}

pub(super) async fn get_denylist(
    State(st): State<AppState>,
    Extension(slot): Extension<RequestSlot>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&st, &headers, Scope::DenylistRead)?;
    signing_ok(&st)?;
    let p = parse_query(q.as_deref(), &["since", "wait", "wire"])?;
    let json = wants_json(&headers);
    let wire = match (p[2], st.config.legacy_wire_v1) {
        (Some(2), _) | (None, false) => Wire::V2,
        (Some(1), true) | (None, true) => Wire::V1,
        (Some(v), _) => {
            return Err(ApiError::bad_request(
                "unsupported_wire_version",
                format!(
                    "wire format version {v} is not served here (2{})",
                    if st.config.legacy_wire_v1 { " or 1" } else { "" }
                ),
            ))
        }
    };
    match (p[0], p[1]) {
        (None, Some(_)) => Err(ApiError::bad_request("invalid_query", "wait needs since")),
        (None, None) => snapshot(st, &headers, json, wire).await,
        (Some(since), wait) => delta(st, &slot, since, wait.unwrap_or(0), json, wire).await,
    }
}

/// The wire format version of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    V1,
    V2,
}

/// A signed snapshot is served from the cache for at most this long: replicas refuse
/// messages older than their staleness bound, so a cached one is re-signed with a
/// fresh creation time well before that.
const SNAPSHOT_REUSE_SECS: u64 = 1;

fn stamp(st: &AppState) -> Stamp {
    Stamp { epoch: st.epoch, created: st.clock.now_secs() }
}

fn seq_headers(resp: &mut Response, seq: u64, etag: bool) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&seq.to_string()) {
        h.insert("x-tollgate-seq", v);
    }
    if etag {
        if let Ok(v) = HeaderValue::from_str(&format!("\"{seq}\"")) {
            h.insert(header::ETAG, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

async fn snapshot(st: AppState, headers: &HeaderMap, json: bool, wire: Wire) -> Result<Response, ApiError> {
    let head = st.shared.head();
    let etag = format!("\"{head}\"");
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        seq_headers(&mut r, head, true);
        return Ok(r);
    }
    let inner = st.clone();
    let (seq, body, ctype) = tokio::task::spawn_blocking(move || {
        if json {
            let live = inner.shared.read();
            let v = live.to_json(inner.config.max_json_entries);
            return (live.denylist.seq(), Bytes::from(serde_json::to_vec(&v).unwrap_or_default()), "application/json");
        }
        if wire == Wire::V1 {
            let live = inner.shared.read();
            let entries = live.ids.to_entries();
            let key = *live.denylist.hash_key();
            let b = v1::encode_snapshot(
                key,
                live.denylist.seq(),
                entries.iter().map(|(_, e, _)| e),
                &inner.signing().signer,
            );
            return (live.denylist.seq(), Bytes::from(b), SNAPSHOT_TYPE);
        }
        let gen = inner.shared.prune_gen.load(Ordering::SeqCst);
        let mut cache = inner.shared.snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = inner.shared.read();
        let seq = live.denylist.seq();
        let stamp = stamp(&inner);
        let bytes = match &*cache {
            Some((s, g, created, b))
                if *s == seq && *g == gen && stamp.created.saturating_sub(*created) < SNAPSHOT_REUSE_SECS =>
            {
                b.clone()
            }
            _ => {
                let b = Bytes::from(encode_snapshot(&live.denylist, stamp, &inner.signing().signer));
                *cache = Some((seq, gen, stamp.created, b.clone()));
                b
            }
        };
        (seq, bytes, SNAPSHOT_TYPE)
    })
    .await
    .map_err(ApiError::internal)?;
    st.shared.metrics.snapshots_served.fetch_add(1, Ordering::Relaxed);
    let mut r = ([(header::CONTENT_TYPE, ctype)], body).into_response();
    seq_headers(&mut r, seq, true);
    Ok(r)
}

/// Counts a long-polling replica for as long as it waits.
struct ReplicaGauge<'a>(&'a std::sync::atomic::AtomicU64);

impl Drop for ReplicaGauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn gone(detail: String) -> ApiError {
    ApiError::new(StatusCode::GONE, "snapshot_required", detail)
}

/// A delta after `since`; with nothing to send yet and `wait` > 0, parks until the
/// head moves (holding a replica slot in place of the request's `slot`).
async fn delta(
    st: AppState,
    slot: &RequestSlot,
    since: u64,
    wait: u64,
    json: bool,
    wire: Wire,
) -> Result<Response, ApiError> {
    let mut head_rx = st.shared.head.subscribe();
    let mut head = *head_rx.borrow_and_update();
    if since > head {
        return Err(gone(format!("since={since} is ahead of the log head {head}; take a snapshot")));
    }
    if since == head && wait > 0 && !*st.draining.borrow() {
        let _permit = st
            .replicas
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::unavailable("too_many_replicas", "too many replicas are long-polling"))?;
        slot.release();
        st.shared.metrics.replication_clients.fetch_add(1, Ordering::Relaxed);
        let _gauge = ReplicaGauge(&st.shared.metrics.replication_clients);
        let limit = Duration::from_secs(wait.min(st.config.max_long_poll_secs));
        let mut draining = st.draining.clone();
        tokio::select! {
            r = head_rx.wait_for(|h| *h > since) => { if let Ok(h) = r { head = *h; } }
            _ = tokio::time::sleep(limit) => {}
            _ = draining.wait_for(|d| *d) => {}
        }
        head = head.max(*head_rx.borrow());
    }
    let inner = st.clone();
    let d =
        tokio::task::spawn_blocking(move || read_delta(&inner, since, head)).await.map_err(ApiError::internal)??;
    st.shared.metrics.deltas_served.fetch_add(1, Ordering::Relaxed);
    let to = d.to;
    let mut r = if json {
        let events: Vec<Value> = d
            .events
            .iter()
            .map(|e| {
                let (kind, before) = match e.entry.kind {
                    EntryKind::Jti => ("jti", None),
                    EntryKind::Sid => ("sid", None),
                    EntryKind::Subject { before } => ("sub", Some(before)),
                };
                let mut o =
                    json!({"seq": e.seq, "kind": kind, "id": e.entry.id, "iss": e.entry.iss, "exp": e.entry.exp});
                if let Some(b) = before {
                    o["before"] = json!(b);
                }
                o
            })
            .collect();
        Json(json!({"from": d.from, "to": d.to, "events": events})).into_response()
    } else {
        signing_ok(&st)?;
        let signing = st.signing();
        let bytes = match wire {
            Wire::V2 => encode_delta(&Delta { stamp: stamp(&st), ..d }, &signing.signer),
            Wire::V1 => v1::encode_delta(&d, &signing.signer),
        };
        ([(header::CONTENT_TYPE, DELTA_TYPE)], bytes).into_response()
    };
    seq_headers(&mut r, to, false);
    Ok(r)
}

/// The denylist events in `(since, head]`, at most `max_delta_events` of the log's
/// records scanned; `to` stops at the last record scanned when the range is cut.
fn read_delta(st: &AppState, since: u64, head: u64) -> Result<Delta, ApiError> {
    let max = st.config.max_delta_events;
    let mut events = Vec::new();
    let mut to = since;
    let mut scanned = 0usize;
    for item in st.store.log.range(seq_key(since + 1)..=seq_key(head)) {
        let (k, v) = item.map_err(ApiError::internal)?;
        let seq = decode_seq(&k).ok_or_else(|| ApiError::internal("bad log key"))?;
        if seq != to + 1 {
            break; // dropped by retention meanwhile: answered below
        }
        let s = Summary::read(&v).map_err(|_| ApiError::internal(format!("corrupt log record {seq}")))?;
        if let Some(entry) = s.entry() {
            events.push(DeltaEvent { seq, entry });
        }
        to = seq;
        scanned += 1;
        if scanned >= max {
            break;
        }
    }
    let floor = st.shared.floor.load(Ordering::SeqCst);
    if since < floor || (to < head && scanned < max) {
        return Err(gone(format!("events after {since} are no longer retained (floor {floor}); take a snapshot")));
    }
    Ok(Delta { stamp: Stamp::default(), from: since, to, events })
}
