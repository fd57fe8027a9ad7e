//! The single writer: group commit of every change to the log.
//!
//! Handlers send a [`Request`] and wait for its [`Reply`]. One thread takes the first
//! waiting request and everything queued behind it (up to [`MAX_GROUP_EVENTS`]
//! events), applies them in order inside **one** sled transaction over the four trees
//! (log, idempotency, families, family tokens), then makes **one** durable flush
//! (`Db::flush`: the same fsync as `flush_async`, called from this thread, which exists
//! to block on it, rather than handed to sled's thread pool and awaited — measured to
//! save two thread hand-offs per group), folds the new events into the in-memory
//! denylist, publishes the new head to long-polling replicas, and only then answers
//! every request of the group. Durability
//! therefore costs one fsync per group, not per request, and nothing is visible to a
//! replica or acknowledged to a client before it is on disk.
//!
//! Being the only writer also serialises the refresh-family decisions: two concurrent
//! rotations of the same token reach [`family::decide`] one after the other, so exactly
//! one wins and the other is seen as reuse.
//!
//! If a transaction or flush fails, the group gets an opaque 500 and the writer stops
//! taking writes (`/readyz` turns 503): what reached sled's memory may or may not be on
//! disk, and continuing would build on an unknown state.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::json;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::{mpsc, oneshot};

use crate::apikeys::Issuers;
use crate::clock::Clock;
use crate::error::{ApiError, StoreError};
use crate::event::{EventKind, NewEvent, Record};
use crate::family::{self, Decision, Family};
use crate::projection::Projection;
use crate::state::Shared;
use crate::store::{decode_seq, pair_key, seq_key, Store};

/// Most events one group commit takes (requests are never split).
pub(crate) const MAX_GROUP_EVENTS: usize = 8192;
/// Requests that may wait for the writer before senders are held back.
pub(crate) const QUEUE_DEPTH: usize = 4096;

/// A change to the log.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// `POST /v1/events`: append events (idempotency keys deduplicate).
    Append { key_id: String, events: Vec<NewEvent> },
    /// `POST /v1/sessions`: start a refresh family (a `session_start` event).
    StartSession { key_id: String, event: NewEvent },
    /// `POST /v1/refresh/rotate`, by a key scoped to `issuers`.
    Rotate { key_id: String, rotate: Rotate, issuers: Issuers },
}

/// A rotation request.
#[derive(Debug, Clone)]
pub(crate) struct Rotate {
    pub(crate) sid: String,
    pub(crate) presented_jti: String,
    pub(crate) next_jti: String,
    pub(crate) exp: u64,
    pub(crate) iss: Option<String>,
}

impl Request {
    fn weight(&self) -> usize {
        match self {
            Request::Append { events, .. } => events.len().max(1),
            _ => 1,
        }
    }
}

/// One accepted event of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) seq: u64,
    pub(crate) kind: EventKind,
    /// An earlier request with the same idempotency key appended it.
    pub(crate) duplicate: bool,
}

/// The writer's answer, sent once the group is durable.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Accepted(Vec<Accepted>),
    Session {
        seq: u64,
        duplicate: bool,
    },
    Rotated {
        seq: u64,
        duplicate: bool,
        grace: bool,
    },
    /// Reuse detected; `seq` of the `reuse_detected` event appended (None: the family
    /// was already revoked, nothing appended).
    Reuse {
        seq: Option<u64>,
    },
    Rejected(ApiError),
}

enum Job {
    Write {
        req: Request,
        reply: oneshot::Sender<Reply>,
    },
    /// Drain the queue, then stop.
    Stop,
}

/// The handlers' side of the writer.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Submits a request and waits until it is durable (or refused).
    pub(crate) async fn submit(&self, req: Request) -> Result<Reply, ApiError> {
        let (reply, rx) = oneshot::channel();
        let shutting = || ApiError::unavailable("shutting_down", "the service is shutting down");
        self.tx.send(Job::Write { req, reply }).await.map_err(|_| shutting())?;
        rx.await.map_err(|_| shutting())
    }

    /// Asks the writer to finish what is queued and stop.
    pub(crate) async fn stop(&self) {
        let _ = self.tx.send(Job::Stop).await;
    }
}

/// Everything the writer needs.
pub(crate) struct Writer {
    pub(crate) store: Store,
    pub(crate) shared: Arc<Shared>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Reuse interval for the immediate predecessor, milliseconds (0: off).
    pub(crate) grace_ms: u64,
    /// How long a retry of the last rotation is answered as a retry, milliseconds.
    pub(crate) retry_ms: u64,
    pub(crate) next_seq: u64,
    /// The denylist projection, appended after each group is durable and answered.
    pub(crate) projection: Option<Projection>,
}

/// Starts the writer on its own thread: its work (a sled transaction, then an fsync)
/// blocks, and one thread doing both avoids two hand-offs per group commit. It stops
/// after [`WriterHandle::stop`], once the queue is drained.
pub(crate) fn spawn(w: Writer) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
    let thread = std::thread::Builder::new().name("tollgate-writer".into()).spawn(move || {
        let mut w = w;
        let mut stopping = false;
        loop {
            let first = match rx.blocking_recv() {
                Some(Job::Write { req, reply }) => (req, reply),
                Some(Job::Stop) => {
                    stopping = true;
                    rx.close();
                    continue;
                }
                None => break,
            };
            let mut weight = first.0.weight();
            let mut jobs = vec![first];
            while weight < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(Job::Write { req, reply }) => {
                        weight += req.weight();
                        jobs.push((req, reply));
                    }
                    Ok(Job::Stop) => {
                        stopping = true;
                        rx.close();
                    }
                    Err(_) => break,
                }
            }
            w.commit(jobs);
        }
        tracing::info!(head = w.shared.head(), drained = stopping, "writer stopped");
    })?;
    Ok((WriterHandle { tx }, thread))
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

struct Trees<'a> {
    log: &'a TransactionalTree,
    idem: &'a TransactionalTree,
    fams: &'a TransactionalTree,
    toks: &'a TransactionalTree,
}

/// The result of one request inside the transaction.
struct Outcome {
    reply: Reply,
    records: Vec<Record>,
}

impl Writer {
    fn commit(&mut self, jobs: Vec<(Request, oneshot::Sender<Reply>)>) {
        let (reqs, replies): (Vec<Request>, Vec<oneshot::Sender<Reply>>) = jobs.into_iter().unzip();
        if !self.shared.writable.load(Ordering::SeqCst) {
            for r in replies {
                let _ = r.send(Reply::Rejected(ApiError::unavailable("not_writable", "an earlier write failed")));
            }
            return;
        }
        let now_ms = self.clock.now_ms();
        let (store, next, windows) = (&self.store, self.next_seq, (self.grace_ms, self.retry_ms));
        let trees = (&store.log, &store.idempotency, &store.families, &store.family_tokens);
        let applied = trees.transaction(|(log, idem, fams, toks)| {
            let t = Trees { log, idem, fams, toks };
            let mut seq = next;
            let outcomes =
                reqs.iter().map(|r| apply(&t, r, &mut seq, now_ms, windows)).collect::<TxResult<Vec<_>>>()?;
            Ok((outcomes, seq))
        });
        let (outcomes, next) = match applied {
            Ok(v) => v,
            Err(e) => return self.fail(replies, StoreError::from(e)),
        };
        let appended: Vec<&Record> = outcomes.iter().flat_map(|o| o.records.iter()).collect();
        let mut projected = None;
        if !appended.is_empty() {
            let t0 = Instant::now();
            // The same durable flush as `flush_async`, without a hand-off to sled's
            // thread pool: this thread exists to block on it.
            if let Err(e) = self.store.db.flush() {
                return self.fail(replies, StoreError::Sled(e));
            }
            self.shared.metrics.flush(t0.elapsed());
            let entries: Vec<_> =
                appended.iter().filter_map(|r| Some((r.seq, r.event.denylist_entry()?, r.key_id.as_str()))).collect();
            self.shared.publish(entries.iter().map(|(s, e, k)| (*s, e, *k)), next - 1);
            for r in &appended {
                self.shared.metrics.event(r.event.kind);
            }
            self.next_seq = next;
            projected = Some(entries);
        }
        let replies: Vec<_> = outcomes.iter().map(|o| o.reply.clone()).zip(replies).collect();
        for (reply, r) in replies {
            let _ = r.send(reply);
        }
        // After the answers: the projection only speeds up the next start.
        if let (Some(entries), Some(p)) = (projected, &mut self.projection) {
            let refs: Vec<(u64, &tollgate_core::Entry, &str)> = entries.iter().map(|(s, e, k)| (*s, e, *k)).collect();
            p.append(self.next_seq - 1, &refs);
        }
    }

    fn fail(&self, replies: Vec<oneshot::Sender<Reply>>, e: StoreError) {
        self.shared.writable.store(false, Ordering::SeqCst);
        tracing::error!(error = %e, "write failed; refusing further writes");
        for r in replies {
            let _ = r.send(Reply::Rejected(ApiError::internal(&e)));
        }
    }
}

fn corrupt<T>(what: &str) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(StoreError::corrupt(what)))
}

fn read_family(t: &Trees<'_>, sid: &str) -> TxResult<Option<Family>> {
    match t.fams.get(sid.as_bytes())? {
        Some(v) => match Family::decode(&v) {
            Ok(f) => Ok(Some(f)),
            Err(_) => corrupt("family"),
        },
        None => Ok(None),
    }
}

fn append(t: &Trees<'_>, seq: &mut u64, now_ms: u64, key_id: &str, event: NewEvent) -> TxResult<Record> {
    let rec = Record { seq: *seq, received_ms: now_ms, key_id: key_id.to_string(), event };
    t.log.insert(&seq_key(rec.seq), rec.encode())?;
    *seq += 1;
    Ok(rec)
}

fn rejected(e: ApiError) -> TxResult<Outcome> {
    Ok(Outcome { reply: Reply::Rejected(e), records: Vec::new() })
}

fn apply(t: &Trees<'_>, req: &Request, seq: &mut u64, now_ms: u64, windows: (u64, u64)) -> TxResult<Outcome> {
    match req {
        Request::Append { key_id, events } => append_events(t, key_id, events, seq, now_ms),
        Request::StartSession { key_id, event } => start_session(t, key_id, event, seq, now_ms),
        Request::Rotate { key_id, rotate, issuers } => rotate_family(t, key_id, rotate, issuers, seq, now_ms, windows),
    }
}

/// How an event of an append resolved its idempotency key.
enum Resolved {
    /// Append it.
    New,
    /// An earlier request appended it at this seq.
    Logged(u64),
    /// An earlier event of this request (by index) carries the same key.
    SameAs(usize),
}

fn append_events(t: &Trees<'_>, key_id: &str, events: &[NewEvent], seq: &mut u64, now_ms: u64) -> TxResult<Outcome> {
    // Pass 1, read only: resolve idempotency keys, so a conflict appends nothing.
    let mut resolved = Vec::with_capacity(events.len());
    let mut in_request: HashMap<&str, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let Some(k) = e.idempotency_key.as_deref() else {
            resolved.push(Resolved::New);
            continue;
        };
        if let Some(&j) = in_request.get(k) {
            if !events[j].same_as(e) {
                return rejected(idem_conflict(i, k));
            }
            resolved.push(Resolved::SameAs(j));
            continue;
        }
        in_request.insert(k, i);
        match t.idem.get(pair_key(key_id, k))? {
            Some(v) => {
                let Some(orig) = decode_seq(&v) else { return corrupt("idempotency value") };
                // The record may have been dropped by retention meanwhile: then the
                // key is trusted as is.
                if let Some(stored) = t.log.get(seq_key(orig))? {
                    match Record::decode(orig, &stored) {
                        Ok(r) if r.event.same_as(e) => {}
                        Ok(_) => return rejected(idem_conflict(i, k)),
                        Err(_) => return corrupt("log record"),
                    }
                }
                resolved.push(Resolved::Logged(orig));
            }
            None => resolved.push(Resolved::New),
        }
    }
    // Pass 2: append what is new.
    let mut accepted: Vec<Accepted> = Vec::with_capacity(events.len());
    let mut records = Vec::new();
    for (e, r) in events.iter().zip(resolved) {
        let a = match r {
            Resolved::SameAs(j) => Accepted { seq: accepted[j].seq, kind: e.kind, duplicate: true },
            Resolved::Logged(orig) => Accepted { seq: orig, kind: e.kind, duplicate: true },
            Resolved::New => {
                if let (EventKind::Logout | EventKind::ReuseDetected, Some(mut f)) = (e.kind, read_family(t, e.id(0))?)
                {
                    // Only an event for the family's own issuer (or one for every
                    // issuer) ends it: another issuer's key cannot end this session.
                    if f.revoked_seq.is_none() && (e.iss.is_none() || e.iss == f.iss) {
                        f.revoked_seq = Some(*seq);
                        t.fams.insert(e.id(0).as_bytes(), f.encode())?;
                    }
                }
                if let Some(k) = e.idempotency_key.as_deref() {
                    t.idem.insert(pair_key(key_id, k), &seq_key(*seq))?;
                }
                let rec = append(t, seq, now_ms, key_id, e.clone())?;
                let a = Accepted { seq: rec.seq, kind: e.kind, duplicate: false };
                records.push(rec);
                a
            }
        };
        accepted.push(a);
    }
    Ok(Outcome { reply: Reply::Accepted(accepted), records })
}

fn idem_conflict(i: usize, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_conflict",
        format!("event {i}: idempotency key {key:?} was already used for a different event"),
    )
}

fn start_session(t: &Trees<'_>, key_id: &str, event: &NewEvent, seq: &mut u64, now_ms: u64) -> TxResult<Outcome> {
    let (sid, sub, refresh_jti) = (event.id(0), event.id(1), event.id(2));
    if let Some(f) = read_family(t, sid)? {
        if f.sub == sub && f.first_jti == refresh_jti && f.iss == event.iss {
            return Ok(Outcome { reply: Reply::Session { seq: f.start_seq, duplicate: true }, records: vec![] });
        }
        return rejected(ApiError::new(StatusCode::CONFLICT, "session_exists", format!("session {sid:?} exists")));
    }
    let f = Family {
        sub: sub.to_string(),
        iss: event.iss.clone(),
        first_jti: refresh_jti.to_string(),
        current: refresh_jti.to_string(),
        previous: None,
        start_seq: *seq,
        last_seq: *seq,
        superseded_ms: now_ms,
        exp: event.exp,
        revoked_seq: None,
    };
    t.fams.insert(sid.as_bytes(), f.encode())?;
    let rec = append(t, seq, now_ms, key_id, event.clone())?;
    Ok(Outcome { reply: Reply::Session { seq: rec.seq, duplicate: false }, records: vec![rec] })
}

fn rotate_family(
    t: &Trees<'_>,
    key_id: &str,
    r: &Rotate,
    issuers: &Issuers,
    seq: &mut u64,
    now_ms: u64,
    (grace_ms, retry_ms): (u64, u64),
) -> TxResult<Outcome> {
    let Some(mut f) = read_family(t, &r.sid)? else {
        return rejected(ApiError::new(StatusCode::NOT_FOUND, "unknown_session", format!("no session {:?}", r.sid)));
    };
    if !issuers.covers(f.iss.as_deref()) {
        return rejected(ApiError::forbidden("forbidden_issuer", "this key may not rotate sessions of this issuer"));
    }
    if r.iss.is_some() && r.iss != f.iss {
        return rejected(ApiError::new(StatusCode::CONFLICT, "issuer_mismatch", "iss differs from the session's"));
    }
    let presented_earlier = t.toks.get(pair_key(&r.sid, &r.presented_jti))?.is_some();
    let next_earlier = t.toks.get(pair_key(&r.sid, &r.next_jti))?.is_some();
    let is_earlier = |j: &str| (j == r.presented_jti && presented_earlier) || (j == r.next_jti && next_earlier);
    let event = |kind, ids: [&str; 3], n: usize, exp| NewEvent {
        kind,
        ids: ids[..n].iter().map(|s| s.to_string()).collect(),
        before: 0,
        iss: f.iss.clone(),
        exp,
        idempotency_key: None,
    };
    match family::decide(&f, &r.presented_jti, &r.next_jti, &is_earlier, now_ms, grace_ms, retry_ms) {
        Decision::Rotate { grace } => {
            let ev = event(EventKind::Rotation, [&r.sid, &r.presented_jti, &r.next_jti], 3, r.exp);
            t.toks.insert(pair_key(&r.sid, &f.current), &seq_key(*seq))?;
            // A grace use presents `previous` again: it stays the predecessor, and
            // its window keeps running from when it was first replaced.
            if !grace {
                f.superseded_ms = now_ms;
            }
            f.previous = Some(r.presented_jti.clone());
            f.current = r.next_jti.clone();
            f.last_seq = *seq;
            f.exp = f.exp.max(r.exp);
            t.fams.insert(r.sid.as_bytes(), f.encode())?;
            let rec = append(t, seq, now_ms, key_id, ev)?;
            Ok(Outcome { reply: Reply::Rotated { seq: rec.seq, duplicate: false, grace }, records: vec![rec] })
        }
        Decision::AlreadyRotated { seq } => {
            Ok(Outcome { reply: Reply::Rotated { seq, duplicate: true, grace: false }, records: vec![] })
        }
        Decision::Reuse => {
            let ev = event(EventKind::ReuseDetected, [&r.sid, &r.presented_jti, ""], 2, f.exp.max(r.exp));
            f.revoked_seq = Some(*seq);
            f.exp = f.exp.max(r.exp);
            t.fams.insert(r.sid.as_bytes(), f.encode())?;
            let rec = append(t, seq, now_ms, key_id, ev)?;
            Ok(Outcome { reply: Reply::Reuse { seq: Some(rec.seq) }, records: vec![rec] })
        }
        Decision::ReuseAgain => Ok(Outcome { reply: Reply::Reuse { seq: None }, records: vec![] }),
        Decision::Revoked => rejected(
            ApiError::new(StatusCode::CONFLICT, "session_revoked", "the session was revoked (logout or reuse)")
                .with("revoked_seq", json!(f.revoked_seq)),
        ),
        Decision::NextInUse => {
            rejected(ApiError::new(StatusCode::CONFLICT, "jti_conflict", "next_jti is already a token of this session"))
        }
        Decision::UnknownToken => rejected(ApiError::new(
            StatusCode::CONFLICT,
            "unknown_token",
            "presented_jti was never a refresh token of this session",
        )),
    }
}
