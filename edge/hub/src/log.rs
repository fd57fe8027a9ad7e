//! Log mode (`TOLLGATE_HUB_MODE = "log"`): the hub is the append-only event log of its
//! tenant, with the revocation service's API and shapes (revocation-service/openapi.yaml):
//! `POST v1/events`, `POST v1/sessions`, `POST v1/refresh/rotate`, `GET v1/denylist/key`,
//! under the API-key scopes of `TOLLGATE_HUB_API_KEYS`. Snapshots and deltas are
//! signed with the hub's own key (`TOLLGATE_HUB_SIGNING_KEY`, a secret: the P-256
//! scalar as 64 hex digits); edges verify them with its public key.
//!
//! Every write runs its statements with no `await` between them, so a request's
//! writes commit atomically and the output gate holds its acknowledgement until they
//! are durable. Rotation is one compare-and-swap `UPDATE … WHERE current_jti = ?`:
//! of concurrent rotations of one token exactly one changes the row; the others find
//! the token already replaced, which is reuse: the family is revoked.
//!
//! ```text
//! events(seq, kind, entry_kind, iss, id, exp, before)     entry_kind: 1 jti, 2 sid, 3 sub, NULL
//! idem(key_name, idem_key, fingerprint, seq)
//! families(sid, iss, sub, current_jti, prev_jti, revoked_seq, start_seq, rotated_seq, rotated_ms)
//! family_tokens(sid, jti)
//! ```
//!
//! Not here (yet): per-key rate limits and quotas, refresh grace, the JSON views.

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_core::bucket::Refused;
use tollgate_core::wire::{encode_delta, encode_snapshot, Delta, DeltaEvent, DenylistSigner, Stamp};
use tollgate_core::{Denylist, Entry, EntryKind};
use worker::{Method, Request, Response, Result, SqlStorageValue};

use crate::config::Mode;
use crate::keys::ApiKey;
use crate::limits;
use crate::object::{error, RevocationHub};
use crate::store::{Head, Since, Store};

/// Secret: the hub's signing key in log mode (64 hex digits, a P-256 scalar).
pub const SIGNING_KEY: &str = "TOLLGATE_HUB_SIGNING_KEY";
/// Largest request body, bytes.
const MAX_BODY: usize = 1 << 20;
/// Most events in one request.
const MAX_EVENTS: usize = 1000;
/// Longest identifier, bytes.
const MAX_ID: usize = 1024;
/// `exp`/`before` may lie at most this far ahead, seconds (the service's default).
const MAX_AHEAD: u64 = 30 * 86_400;
/// 2000-01-01, seconds.
const MIN_TIME: u64 = 946_684_800;
/// A retry of the last rotation within this long answers `duplicate` (ms).
const ROTATION_RETRY_MS: f64 = 30_000.0;

thread_local! {
    /// The last snapshot made, by tenant: (seq, bytes). Keyed by tenant because every
    /// object and the Worker of an isolate share its statics.
    static SNAPSHOTS: RefCell<Vec<(String, u64, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

type Answer = std::result::Result<Response, Result<Response>>;

fn ddl(store: &Store) -> std::result::Result<(), String> {
    let sql = store.sql();
    for q in [
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, entry_kind INTEGER, \
         iss TEXT, id TEXT NOT NULL, exp INTEGER NOT NULL, before INTEGER)",
        "CREATE TABLE IF NOT EXISTS idem (key_name TEXT NOT NULL, idem_key TEXT NOT NULL, fingerprint TEXT NOT NULL, \
         seq INTEGER NOT NULL, PRIMARY KEY (key_name, idem_key))",
        "CREATE TABLE IF NOT EXISTS families (sid TEXT PRIMARY KEY, iss TEXT, sub TEXT NOT NULL, current_jti TEXT NOT NULL, \
         prev_jti TEXT, first_jti TEXT NOT NULL, revoked_seq INTEGER, start_seq INTEGER NOT NULL, rotated_seq INTEGER, rotated_ms REAL)",
        "CREATE TABLE IF NOT EXISTS family_tokens (sid TEXT NOT NULL, jti TEXT NOT NULL, PRIMARY KEY (sid, jti))",
    ] {
        sql.exec(q, None).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn rows(store: &Store, q: &str, b: Vec<SqlStorageValue>) -> std::result::Result<Vec<Vec<SqlStorageValue>>, String> {
    store.sql().exec(q, b).and_then(|c| c.raw().collect::<Result<Vec<_>>>()).map_err(|e| e.to_string())
}

fn s(v: &str) -> SqlStorageValue {
    v.into()
}

fn n(v: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(v.min(1 << 53) as i64)
}

fn opt_s(v: Option<&str>) -> SqlStorageValue {
    v.map_or(SqlStorageValue::Null, s)
}

fn get_u64(v: &SqlStorageValue) -> Option<u64> {
    match v {
        SqlStorageValue::Integer(i) => u64::try_from(*i).ok(),
        SqlStorageValue::Float(f) if *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}

fn get_str(v: &SqlStorageValue) -> Option<String> {
    match v {
        SqlStorageValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn signer(hub: &RevocationHub) -> std::result::Result<DenylistSigner, String> {
    let hex = crate::config::read(hub.env_ref(), SIGNING_KEY).ok_or(format!("{SIGNING_KEY} is not set"))?;
    let hex = hex.trim();
    if hex.len() != 64 {
        return Err(format!("{SIGNING_KEY}: expected 64 hex digits"));
    }
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| format!("{SIGNING_KEY}: not hex"))?;
    }
    DenylistSigner::from_secret(&secret).map_err(|_| format!("{SIGNING_KEY}: not a P-256 scalar"))
}

/// The hub's stamp: an epoch fixed by its signing key (a new key is a new log), and now.
fn stamp(signer: &DenylistSigner) -> Stamp {
    use sha2::Digest;
    let d = sha2::Sha256::digest([b"tollgate-hub-epoch:".as_slice(), &signer.secret()].concat());
    Stamp { epoch: d[..16].try_into().unwrap_or([0; 16]), created: (js_sys::Date::now() / 1000.0) as u64 }
}

fn log_head(store: &Store) -> std::result::Result<u64, String> {
    let r = rows(store, "SELECT COALESCE(MAX(seq), 0) FROM events", vec![])?;
    Ok(r.first().and_then(|r| r.first()).and_then(get_u64).unwrap_or(0))
}

/// The `head` of a hub in log mode: its log's head; the tick moves every second, so
/// edges take a freshly signed (empty) delta once a second as proof of life.
pub fn head(store: &Store, mut head: Head, now_ms: f64) -> Head {
    if ddl(store).is_ok() {
        let seq = log_head(store).unwrap_or(0);
        head.seq = seq;
        head.snapshot_seq = Some(seq);
        head.snapshot_id = format!("log-{seq}");
        head.tick = (now_ms / 1000.0) as u64;
    }
    head
}

fn entry_of(kind: Option<u64>, iss: Option<String>, id: String, exp: u64, before: Option<u64>) -> Option<Entry> {
    let kind = match kind? {
        1 => EntryKind::Jti,
        2 => EntryKind::Sid,
        3 => EntryKind::Subject { before: before.unwrap_or(0) },
        _ => return None,
    };
    Some(Entry { kind, iss, id, exp })
}

fn entries_after(store: &Store, after: u64, cutoff: u64) -> std::result::Result<Vec<DeltaEvent>, String> {
    let r = rows(
        store,
        "SELECT seq, entry_kind, iss, id, exp, before FROM events WHERE seq > ? AND entry_kind IS NOT NULL AND exp >= ? ORDER BY seq",
        vec![n(after), n(cutoff)],
    )?;
    Ok(r.iter()
        .filter_map(|row| {
            let seq = get_u64(&row[0])?;
            let entry =
                entry_of(get_u64(&row[1]), get_str(&row[2]), get_str(&row[3])?, get_u64(&row[4])?, get_u64(&row[5]))?;
            Some(DeltaEvent { seq, entry })
        })
        .collect())
}

/// The snapshot to serve: relay mode's stored one; log mode's made from the log (and
/// kept until the head moves).
pub fn snapshot(hub: &RevocationHub, store: &Store, mode: &Mode) -> std::result::Result<Option<Vec<u8>>, String> {
    if !matches!(mode, Mode::Log) {
        return store.snapshot().map_err(|e| e.to_string());
    }
    ddl(store)?;
    let tenant = store.tenant().map_err(|e| e.to_string())?.unwrap_or_default();
    let seq = log_head(store)?;
    if let Some(hit) =
        SNAPSHOTS.with_borrow(|m| m.iter().find(|(t, s, _)| *t == tenant && *s == seq).map(|e| e.2.clone()))
    {
        return Ok(Some(hit));
    }
    let signer = signer(hub)?;
    let hash_key: [u8; 16] = {
        use sha2::Digest;
        let d = sha2::Sha256::digest([b"tollgate-hub-hash-key:".as_slice(), &signer.secret()].concat());
        d[..16].try_into().unwrap_or([0; 16])
    };
    let mut list = Denylist::new(hash_key);
    let now = (js_sys::Date::now() / 1000.0) as u64;
    for ev in entries_after(store, 0, now.saturating_sub(86_400))? {
        list.insert_entry(&ev.entry);
    }
    list.set_seq(seq);
    let bytes = encode_snapshot(&list, stamp(&signer), &signer);
    SNAPSHOTS.with_borrow_mut(|m| {
        m.retain(|(t, _, _)| *t != tenant);
        m.push((tenant, seq, bytes.clone()));
    });
    Ok(Some(bytes))
}

/// The deltas after `n`: relay mode's stored ones; in log mode one delta made and
/// signed now (empty at the head: the heartbeat).
pub fn since(hub: &RevocationHub, store: &Store, mode: &Mode, after: u64) -> std::result::Result<Since, String> {
    if !matches!(mode, Mode::Log) {
        return store.since(after).map_err(|e| e.to_string());
    }
    ddl(store)?;
    let head = log_head(store)?;
    if after > head {
        return Ok(Since::Gone);
    }
    let events = entries_after(store, after, 0)?;
    let signer = signer(hub)?;
    let delta = Delta { stamp: stamp(&signer), from: after, to: head, events };
    Ok(Since::Messages(vec![encode_delta(&delta, &signer)]))
}

// ---- requests ----

#[derive(Debug, Deserialize, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Event {
    kind: String,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    before: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    exp: u64,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Events {
    Batch { events: Vec<Value> },
    One(Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionStart {
    sid: String,
    sub: String,
    refresh_jti: String,
    exp: u64,
    #[serde(default)]
    iss: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    sid: String,
    presented_jti: String,
    next_jti: String,
    exp: u64,
    #[serde(default)]
    iss: Option<String>,
}

fn check_id(field: &str, v: &str) -> std::result::Result<(), Result<Response>> {
    if v.is_empty() || v.len() > MAX_ID {
        return Err(error(422, "invalid_event", &format!("{field}: 1–{MAX_ID} bytes")));
    }
    Ok(())
}

fn check_time(field: &str, v: u64, now: u64) -> std::result::Result<(), Result<Response>> {
    if v < MIN_TIME || v > now + MAX_AHEAD {
        return Err(error(400, "bad_expiry", &format!("{field}: between 2000-01-01 and 30 days ahead, in seconds")));
    }
    Ok(())
}

/// The issuer an event or session is scoped to under `key`: `Ok(None)` is unscoped.
fn scope(key: &ApiKey, iss: Option<&str>) -> std::result::Result<Option<String>, Result<Response>> {
    match iss {
        Some(i) if key.all_issuers || key.issuers.iter().any(|k| k == i) => Ok(Some(i.to_owned())),
        Some(i) => Err(error(403, "forbidden_issuer", &format!("the key may not write for {i:?}"))),
        None if key.issuers.len() == 1 && !key.all_issuers => Ok(Some(key.issuers[0].clone())),
        None if key.all_issuers => Ok(None),
        None if key.issuers.is_empty() => Err(error(403, "issuer_scope_missing", "the key has no issuer scope")),
        None => Err(error(422, "invalid_event", "iss: required for a key of several issuers")),
    }
}

/// A denylist entry to append: kind tag, issuer, id, exp, before.
type NewEntry<'a> = (u8, Option<&'a str>, &'a str, u64, Option<u64>);

fn append(store: &Store, kind: &str, entry: Option<NewEntry<'_>>) -> std::result::Result<u64, String> {
    let seq = log_head(store)? + 1;
    let (ek, iss, id, exp, before) = match entry {
        Some((k, iss, id, exp, before)) => {
            (n(u64::from(k)), opt_s(iss), s(id), n(exp), before.map_or(SqlStorageValue::Null, n))
        }
        None => (SqlStorageValue::Null, SqlStorageValue::Null, s(""), n(0), SqlStorageValue::Null),
    };
    store
        .sql()
        .exec(
            "INSERT INTO events (seq, kind, entry_kind, iss, id, exp, before) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![n(seq), s(kind), ek, iss, id, exp, before],
        )
        .map_err(|e| e.to_string())?;
    store
        .sql()
        .exec("UPDATE state SET head = ?, tick = tick + 1 WHERE id = 1", vec![n(seq)])
        .map_err(|e| e.to_string())?;
    Ok(seq)
}

async fn body(req: &mut Request) -> std::result::Result<Value, Result<Response>> {
    let bytes = req.bytes().await.map_err(|_| error(400, "body_unreadable", "the body could not be read"))?;
    if bytes.len() > MAX_BODY {
        return Err(error(413, "body_too_large", &format!("over {MAX_BODY} bytes")));
    }
    serde_json::from_slice(&bytes).map_err(|e| error(400, "bad_json", &e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> std::result::Result<T, Result<Response>> {
    serde_json::from_value(v).map_err(|e| error(422, "invalid_event", &format!("{what}: {e}")))
}

/// `/v1/...` in log mode (`op` without the `v1/`).
pub async fn serve(hub: &RevocationHub, mut req: Request, tenant: &str, store: &Store, op: &str) -> Result<Response> {
    if let Err(e) = ddl(store) {
        return error(503, "storage", &e);
    }
    let out: Answer = async {
        match (req.method(), op) {
            (Method::Get, "denylist/key") => {
                let signer = signer(hub).map_err(|e| error(503, "signing_key_unavailable", &e))?;
                Response::from_json(&signer.public_jwk()).map_err(Err)
            }
            (Method::Post, "events") => {
                let key = hub
                    .authorize(&req, "events:write")?
                    .ok_or_else(|| error(401, "unauthorized", "a key is required"))?;
                let v = body(&mut req).await?;
                events(store, &key, v, &|n| charge(hub, tenant, &key, n))
            }
            (Method::Post, "sessions") => {
                let key = hub
                    .authorize(&req, "events:write")?
                    .ok_or_else(|| error(401, "unauthorized", "a key is required"))?;
                let v = body(&mut req).await?;
                sessions(store, &key, parse(v, "body")?)
            }
            (Method::Post, "refresh/rotate") => {
                let key = hub
                    .authorize(&req, "events:write")?
                    .ok_or_else(|| error(401, "unauthorized", "a key is required"))?;
                let v = body(&mut req).await?;
                rotate(store, &key, parse(v, "body")?)
            }
            _ => Err(error(404, "not_found", "no such route")),
        }
    }
    .await;
    match out {
        Ok(r) => {
            if matches!(op, "events" | "sessions" | "refresh/rotate") {
                crate::push::broadcast(hub, store);
            }
            Ok(r)
        }
        Err(r) => r,
    }
}

fn now_s() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

fn internal(e: String) -> Result<Response> {
    worker::console_log!("tollgate-hub: log: {e}");
    error(503, "not_writable", "the hub could not write; see its log")
}

/// Charges `n` events to `key`'s rate limit (crate::limits): 429 `rate_limited` with
/// `Retry-After` when it is spent.
fn charge(hub: &RevocationHub, tenant: &str, key: &ApiKey, n: u64) -> std::result::Result<(), Result<Response>> {
    let l = limits::limits(&|name| crate::config::read(hub.env_ref(), name)).map_err(|e| {
        worker::console_log!("tollgate-hub: {e}");
        error(503, "misconfigured", "the hub's rate limits do not parse")
    })?;
    let (detail, secs) = match limits::admit(tenant, &key.name, n, js_sys::Date::now() as u64, l) {
        Ok(()) => return Ok(()),
        Err(Refused::RetryAfter(secs)) => {
            (format!("this key may post {} events a second (burst {})", l.rate, l.burst), secs)
        }
        Err(Refused::OverBurst) => (format!("{n} events exceed this key's burst of {}", l.burst), 60),
    };
    Err(error(429, "rate_limited", &detail).and_then(|mut r| {
        r.headers_mut().set("retry-after", &secs.to_string())?;
        Ok(r)
    }))
}

fn events(
    store: &Store,
    key: &ApiKey,
    v: Value,
    charge: &dyn Fn(u64) -> std::result::Result<(), Result<Response>>,
) -> Answer {
    let list = match serde_json::from_value::<Events>(v).map_err(|e| error(400, "bad_json", &e.to_string()))? {
        Events::Batch { events } => events,
        Events::One(v) => vec![v],
    };
    if list.is_empty() {
        return Err(error(422, "invalid_event", "events: at least one"));
    }
    if list.len() > MAX_EVENTS {
        return Err(error(413, "too_many_events", &format!("over {MAX_EVENTS}")));
    }
    let now = now_s();
    // Validate everything first: a batch is appended whole or not at all.
    let mut checked = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let ev: Event = parse(v, &format!("events[{i}]"))?;
        check_time("exp", ev.exp, now)?;
        let need = |f: &Option<String>, name: &str| -> std::result::Result<String, Result<Response>> {
            let v = f.clone().ok_or_else(|| error(422, "invalid_event", &format!("events[{i}].{name}: required")))?;
            check_id(name, &v)?;
            Ok(v)
        };
        let entry = match ev.kind.as_str() {
            "revoke_token" => (1u8, need(&ev.jti, "jti")?, None),
            "logout" => (2, need(&ev.sid, "sid")?, None),
            "revoke_subject" => {
                let before =
                    ev.before.ok_or_else(|| error(422, "invalid_event", &format!("events[{i}].before: required")))?;
                check_time("before", before, now)?;
                (3, need(&ev.sub, "sub")?, Some(before))
            }
            "reuse_detected" => {
                need(&ev.jti, "jti")?;
                (2, need(&ev.sid, "sid")?, None)
            }
            other => {
                return Err(error(422, "invalid_event", &format!("events[{i}].kind: {other:?} is not taken here")))
            }
        };
        if let Some(k) = &ev.idempotency_key {
            if k.is_empty() || k.len() > 256 {
                return Err(error(422, "invalid_event", &format!("events[{i}].idempotency_key: 1–256 bytes")));
            }
        }
        let iss = scope(key, ev.iss.as_deref())?;
        checked.push((ev, entry, iss));
    }
    charge(checked.len() as u64)?;
    // Idempotency: a key already used for the same event answers its seq; for another, 422.
    let mut dup = Vec::with_capacity(checked.len());
    for (ev, _, _) in &checked {
        let Some(k) = &ev.idempotency_key else {
            dup.push(None);
            continue;
        };
        let fp = serde_json::to_string(ev).unwrap_or_default();
        let r = rows(
            store,
            "SELECT fingerprint, seq FROM idem WHERE key_name = ? AND idem_key = ?",
            vec![s(&key.name), s(k)],
        )
        .map_err(internal)?;
        match r.first() {
            Some(row) if get_str(&row[0]).as_deref() == Some(fp.as_str()) => dup.push(get_u64(&row[1])),
            Some(_) => {
                return Err(error(
                    422,
                    "idempotency_conflict",
                    &format!("idempotency_key {k:?} was used for another event"),
                ))
            }
            None => dup.push(None),
        }
    }
    // From here on: no await, so the whole batch commits at once.
    let mut accepted = Vec::with_capacity(checked.len());
    for ((ev, (ek, id, before), iss), dup) in checked.iter().zip(dup) {
        if let Some(seq) = dup {
            accepted.push(json!({"seq": seq, "kind": ev.kind, "duplicate": true}));
            continue;
        }
        let seq = append(store, &ev.kind, Some((*ek, iss.as_deref(), id, ev.exp, *before))).map_err(internal)?;
        if let Some(k) = &ev.idempotency_key {
            let fp = serde_json::to_string(ev).unwrap_or_default();
            store
                .sql()
                .exec(
                    "INSERT INTO idem (key_name, idem_key, fingerprint, seq) VALUES (?, ?, ?, ?)",
                    vec![s(&key.name), s(k), s(&fp), n(seq)],
                )
                .map_err(|e| internal(e.to_string()))?;
        }
        if *ek == 2 {
            // logout / reuse_detected of a refresh family (of this issuer, or unscoped) ends it.
            store
                .sql()
                .exec(
                    "UPDATE families SET revoked_seq = ? WHERE sid = ? AND revoked_seq IS NULL AND (? IS NULL OR iss = ?)",
                    vec![n(seq), s(id), opt_s(iss.as_deref()), opt_s(iss.as_deref())],
                )
                .map_err(|e| internal(e.to_string()))?;
        }
        accepted.push(json!({"seq": seq, "kind": ev.kind, "duplicate": false}));
    }
    Response::from_json(&json!({ "accepted": accepted })).map_err(Err)
}

fn sessions(store: &Store, key: &ApiKey, b: SessionStart) -> Answer {
    for (f, v) in [("sid", &b.sid), ("sub", &b.sub), ("refresh_jti", &b.refresh_jti)] {
        check_id(f, v)?;
    }
    check_time("exp", b.exp, now_s())?;
    let iss = scope(key, b.iss.as_deref())?;
    let r = rows(store, "SELECT sub, first_jti, iss, start_seq FROM families WHERE sid = ?", vec![s(&b.sid)])
        .map_err(internal)?;
    if let Some(row) = r.first() {
        let same = get_str(&row[0]).as_deref() == Some(b.sub.as_str())
            && get_str(&row[1]).as_deref() == Some(b.refresh_jti.as_str())
            && get_str(&row[2]) == iss;
        if same {
            let seq = get_u64(&row[3]).unwrap_or(0);
            return Response::from_json(&json!({"status": "started", "seq": seq, "duplicate": true})).map_err(Err);
        }
        return Err(error(409, "session_exists", "the sid is taken by a different session"));
    }
    let seq = append(store, "session_start", None).map_err(internal)?;
    let sql = store.sql();
    sql.exec(
        "INSERT INTO families (sid, iss, sub, current_jti, prev_jti, first_jti, revoked_seq, start_seq, rotated_seq, rotated_ms) \
         VALUES (?, ?, ?, ?, NULL, ?, NULL, ?, NULL, NULL)",
        vec![s(&b.sid), opt_s(iss.as_deref()), s(&b.sub), s(&b.refresh_jti), s(&b.refresh_jti), n(seq)],
    )
    .map_err(|e| internal(e.to_string()))?;
    sql.exec("INSERT INTO family_tokens (sid, jti) VALUES (?, ?)", vec![s(&b.sid), s(&b.refresh_jti)])
        .map_err(|e| internal(e.to_string()))?;
    Ok(Response::from_json(&json!({"status": "started", "seq": seq, "duplicate": false}))
        .map_err(Err)?
        .with_status(201))
}

fn rotate(store: &Store, key: &ApiKey, b: Rotate) -> Answer {
    for (f, v) in [("sid", &b.sid), ("presented_jti", &b.presented_jti), ("next_jti", &b.next_jti)] {
        check_id(f, v)?;
    }
    check_time("exp", b.exp, now_s())?;
    let r = rows(
        store,
        "SELECT iss, current_jti, prev_jti, revoked_seq, rotated_seq, rotated_ms FROM families WHERE sid = ?",
        vec![s(&b.sid)],
    )
    .map_err(internal)?;
    let Some(row) = r.first() else { return Err(error(404, "unknown_session", "no family with this sid")) };
    let fam_iss = get_str(&row[0]);
    let allowed = key.all_issuers || fam_iss.as_ref().is_some_and(|i| key.issuers.contains(i));
    if !allowed {
        return Err(error(403, "forbidden_issuer", "the key may not rotate sessions of this issuer"));
    }
    if let Some(i) = &b.iss {
        if Some(i) != fam_iss.as_ref() {
            return Err(error(409, "issuer_mismatch", "iss is not the session's issuer"));
        }
    }
    if let Some(revoked) = get_u64(&row[3]) {
        return Ok(Response::from_json(
            &json!({"error": "session_revoked", "detail": "the family is revoked", "revoked_seq": revoked}),
        )
        .map_err(Err)?
        .with_status(409));
    }
    let now_ms = js_sys::Date::now();
    // The compare-and-swap: only the presenter of the current token changes the row.
    let won = rows(
        store,
        "UPDATE families SET prev_jti = current_jti, current_jti = ?, rotated_ms = ? \
         WHERE sid = ? AND current_jti = ? AND revoked_seq IS NULL \
         AND NOT EXISTS (SELECT 1 FROM family_tokens WHERE sid = ? AND jti = ?) RETURNING sid",
        vec![s(&b.next_jti), now_ms.into(), s(&b.sid), s(&b.presented_jti), s(&b.sid), s(&b.next_jti)],
    )
    .map_err(internal)?;
    if !won.is_empty() {
        let seq = append(store, "rotation", None).map_err(internal)?;
        let sql = store.sql();
        sql.exec("UPDATE families SET rotated_seq = ? WHERE sid = ?", vec![n(seq), s(&b.sid)])
            .map_err(|e| internal(e.to_string()))?;
        sql.exec("INSERT INTO family_tokens (sid, jti) VALUES (?, ?)", vec![s(&b.sid), s(&b.next_jti)])
            .map_err(|e| internal(e.to_string()))?;
        return Response::from_json(&json!({"status": "rotated", "seq": seq, "duplicate": false, "grace": false}))
            .map_err(Err);
    }
    let current = get_str(&row[1]).unwrap_or_default();
    let prev = get_str(&row[2]);
    if current == b.presented_jti {
        return Err(error(409, "jti_conflict", "next_jti was already used in this family"));
    }
    // A retry of the last rotation (same presented and next) shortly after it.
    if prev.as_deref() == Some(b.presented_jti.as_str())
        && current == b.next_jti
        && get_u64(&row[5]).is_some_and(|t| now_ms - t as f64 <= ROTATION_RETRY_MS)
    {
        let seq = get_u64(&row[4]).unwrap_or(0);
        return Response::from_json(&json!({"status": "rotated", "seq": seq, "duplicate": true, "grace": false}))
            .map_err(Err);
    }
    let known =
        rows(store, "SELECT 1 FROM family_tokens WHERE sid = ? AND jti = ?", vec![s(&b.sid), s(&b.presented_jti)])
            .map_err(internal)?;
    if known.is_empty() {
        return Err(error(409, "unknown_token", "never a token of this family"));
    }
    // Reuse: an earlier token of the family was presented. Revoke the whole family.
    let exp = b.exp.max(now_s() + 86_400);
    let seq = append(store, "reuse_detected", Some((2, fam_iss.as_deref(), &b.sid, exp, None))).map_err(internal)?;
    store
        .sql()
        .exec("UPDATE families SET revoked_seq = ? WHERE sid = ?", vec![n(seq), s(&b.sid)])
        .map_err(|e| internal(e.to_string()))?;
    Ok(Response::from_json(&json!({"error": "reuse_detected", "detail": "an earlier token of the family was presented; the family is revoked", "seq": seq}))
        .map_err(Err)?
        .with_status(409))
}
