//! Events: what clients post, how they are validated, and how the log stores them.
//!
//! A [`NewEvent`] is a validated client event. The writer gives it a sequence number,
//! a receive time and the id of the API key that posted it, making a [`Record`], and
//! the log stores that record in the binary layout of [`Record::encode`]:
//!
//! ```text
//! version u8 (1) | kind u8 | flags u8 (1 = iss, 2 = idempotency key) | received_ms u64
//! | exp u64 | [before u64, revoke_subject only] | key_id str | [iss str] | [idem str]
//! | the kind's identifiers, each a str, in the order of its fields
//! str = len u16 | UTF-8 bytes        (all integers little-endian)
//! ```
//!
//! The sequence number is the record's key in the log tree, not part of the value.

use serde_json::{json, Map, Value};
use tollgate_core::{Entry, EntryKind};

/// Longest identifier (`jti`, `sid`, `sub`) or issuer accepted, in bytes (the wire
/// format's bound).
pub(crate) const MAX_ID_BYTES: usize = tollgate_core::wire::MAX_ID_BYTES;
/// Longest idempotency key accepted, in bytes.
pub(crate) const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
const RECORD_VERSION: u8 = 1;

/// The six event kinds of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EventKind {
    RevokeToken,
    Logout,
    RevokeSubject,
    Rotation,
    ReuseDetected,
    SessionStart,
}

impl EventKind {
    /// Every kind, in tag order.
    pub(crate) const ALL: [EventKind; 6] = [
        EventKind::RevokeToken,
        EventKind::Logout,
        EventKind::RevokeSubject,
        EventKind::Rotation,
        EventKind::ReuseDetected,
        EventKind::SessionStart,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::RevokeToken => "revoke_token",
            EventKind::Logout => "logout",
            EventKind::RevokeSubject => "revoke_subject",
            EventKind::Rotation => "rotation",
            EventKind::ReuseDetected => "reuse_detected",
            EventKind::SessionStart => "session_start",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.tag() - 1)
    }

    fn tag(self) -> u8 {
        match self {
            EventKind::RevokeToken => 1,
            EventKind::Logout => 2,
            EventKind::RevokeSubject => 3,
            EventKind::Rotation => 4,
            EventKind::ReuseDetected => 5,
            EventKind::SessionStart => 6,
        }
    }

    fn from_tag(t: u8) -> Option<EventKind> {
        EventKind::ALL.get(usize::from(t).checked_sub(1)?).copied()
    }

    /// The identifier fields of the kind, in storage order.
    fn id_fields(self) -> &'static [&'static str] {
        match self {
            EventKind::RevokeToken => &["jti"],
            EventKind::Logout => &["sid"],
            EventKind::RevokeSubject => &["sub"],
            EventKind::Rotation => &["sid", "from_jti", "to_jti"],
            EventKind::ReuseDetected => &["sid", "jti"],
            EventKind::SessionStart => &["sid", "sub", "refresh_jti"],
        }
    }
}

/// A validated event, before the service gives it a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewEvent {
    pub(crate) kind: EventKind,
    /// The identifiers named by [`EventKind::id_fields`], in that order.
    pub(crate) ids: Vec<String>,
    /// `revoke_subject`'s cutoff (0 for other kinds).
    pub(crate) before: u64,
    pub(crate) iss: Option<String>,
    pub(crate) exp: u64,
    pub(crate) idempotency_key: Option<String>,
}

/// A logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) received_ms: u64,
    pub(crate) key_id: String,
    pub(crate) event: NewEvent,
}

/// Why a posted event is refused: a JSON path and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) path: String,
    pub(crate) problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

fn field_err(prefix: &str, field: &str, problem: impl Into<String>) -> FieldError {
    let path = if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") };
    FieldError { path, problem: problem.into() }
}

/// Reads a required or optional identifier string with the service's bounds.
pub(crate) fn id_str(
    obj: &Map<String, Value>,
    prefix: &str,
    field: &str,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(field_err(prefix, field, "must not be empty")),
        Some(Value::String(s)) if s.len() > max => Err(field_err(prefix, field, format!("longer than {max} bytes"))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field_err(prefix, field, "expected a string")),
    }
}

pub(crate) fn required_str(obj: &Map<String, Value>, prefix: &str, field: &str) -> Result<String, FieldError> {
    id_str(obj, prefix, field, MAX_ID_BYTES)?.ok_or_else(|| field_err(prefix, field, "missing"))
}

/// Reads a required non-negative integer of seconds.
pub(crate) fn required_u64(obj: &Map<String, Value>, prefix: &str, field: &str) -> Result<u64, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(field_err(prefix, field, "missing")),
        Some(Value::Number(n)) => {
            n.as_u64().ok_or_else(|| field_err(prefix, field, "expected a non-negative integer (seconds)"))
        }
        Some(_) => Err(field_err(prefix, field, "expected a non-negative integer (seconds)")),
    }
}

/// Refuses members outside `allowed`.
pub(crate) fn only_fields(obj: &Map<String, Value>, prefix: &str, allowed: &[&str]) -> Result<(), FieldError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(field_err(prefix, k, "unknown field")),
        None => Ok(()),
    }
}

impl NewEvent {
    /// Validates one posted event object. `prefix` names it in errors (`events[3]`);
    /// `allowed` lists the kinds this endpoint takes.
    pub(crate) fn from_json(v: &Value, prefix: &str, allowed: &[EventKind]) -> Result<NewEvent, FieldError> {
        let obj = v.as_object().ok_or_else(|| FieldError {
            path: if prefix.is_empty() { "$".into() } else { prefix.into() },
            problem: "expected an object".into(),
        })?;
        let kind = match obj.get("kind") {
            None => return Err(field_err(prefix, "kind", "missing")),
            Some(Value::String(s)) => {
                EventKind::parse(s).ok_or_else(|| field_err(prefix, "kind", format!("unknown event kind {s:?}")))?
            }
            Some(_) => return Err(field_err(prefix, "kind", "expected a string")),
        };
        if !allowed.contains(&kind) {
            return Err(field_err(
                prefix,
                "kind",
                format!("{} events are recorded through their own endpoint", kind.as_str()),
            ));
        }
        Self::fields(obj, prefix, kind)
    }

    /// Validates the fields of an event whose kind is known (the dedicated endpoints).
    pub(crate) fn fields(obj: &Map<String, Value>, prefix: &str, kind: EventKind) -> Result<NewEvent, FieldError> {
        let mut allowed = vec!["kind", "iss", "exp", "idempotency_key"];
        allowed.extend_from_slice(kind.id_fields());
        if kind == EventKind::RevokeSubject {
            allowed.push("before");
        }
        only_fields(obj, prefix, &allowed)?;
        let ids = kind.id_fields().iter().map(|f| required_str(obj, prefix, f)).collect::<Result<Vec<_>, _>>()?;
        let before = if kind == EventKind::RevokeSubject { required_u64(obj, prefix, "before")? } else { 0 };
        Ok(NewEvent {
            kind,
            ids,
            before,
            iss: id_str(obj, prefix, "iss", MAX_ID_BYTES)?,
            exp: required_u64(obj, prefix, "exp")?,
            idempotency_key: id_str(obj, prefix, "idempotency_key", MAX_IDEMPOTENCY_KEY_BYTES)?,
        })
    }

    /// The identifier at `i` of [`EventKind::id_fields`].
    pub(crate) fn id(&self, i: usize) -> &str {
        self.ids.get(i).map_or("", String::as_str)
    }

    /// The denylist entry the event adds, if it adds one.
    pub(crate) fn denylist_entry(&self) -> Option<Entry> {
        let (kind, id) = match self.kind {
            EventKind::RevokeToken => (EntryKind::Jti, self.id(0)),
            EventKind::Logout | EventKind::ReuseDetected => (EntryKind::Sid, self.id(0)),
            EventKind::RevokeSubject => (EntryKind::Subject { before: self.before }, self.id(0)),
            EventKind::Rotation | EventKind::SessionStart => return None,
        };
        Some(Entry { kind, iss: self.iss.clone(), id: id.to_string(), exp: self.exp })
    }

    /// Whether a retry carries the same event (idempotency keys must not be reused
    /// for different events).
    pub(crate) fn same_as(&self, other: &NewEvent) -> bool {
        self.kind == other.kind
            && self.ids == other.ids
            && self.before == other.before
            && self.iss == other.iss
            && self.exp == other.exp
    }

    fn fields_json(&self, obj: &mut Map<String, Value>) {
        obj.insert("kind".into(), json!(self.kind.as_str()));
        for (f, v) in self.kind.id_fields().iter().zip(&self.ids) {
            obj.insert((*f).into(), json!(v));
        }
        if self.kind == EventKind::RevokeSubject {
            obj.insert("before".into(), json!(self.before));
        }
        obj.insert("iss".into(), json!(self.iss));
        obj.insert("exp".into(), json!(self.exp));
        if let Some(k) = &self.idempotency_key {
            obj.insert("idempotency_key".into(), json!(k));
        }
    }
}

/// A stored record that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CorruptRecord;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.0.len() < n {
            return Err(CorruptRecord);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, CorruptRecord> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<&'a str, CorruptRecord> {
        let b = self.take(2)?;
        let n = usize::from(u16::from_le_bytes([b[0], b[1]]));
        std::str::from_utf8(self.take(n)?).map_err(|_| CorruptRecord)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Every string was bounded by validation (or generated by the service) far below
    // u16::MAX; truncation is therefore unreachable, but stays memory-safe.
    let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

impl Record {
    /// The stored form (see the module docs).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let e = &self.event;
        let mut out = Vec::with_capacity(40 + e.ids.iter().map(|s| s.len() + 2).sum::<usize>());
        out.push(RECORD_VERSION);
        out.push(e.kind.tag());
        out.push(u8::from(e.iss.is_some()) | (u8::from(e.idempotency_key.is_some()) << 1));
        out.extend_from_slice(&self.received_ms.to_le_bytes());
        out.extend_from_slice(&e.exp.to_le_bytes());
        if e.kind == EventKind::RevokeSubject {
            out.extend_from_slice(&e.before.to_le_bytes());
        }
        put_str(&mut out, &self.key_id);
        for s in e.iss.iter().chain(e.idempotency_key.iter()).chain(e.ids.iter()) {
            put_str(&mut out, s);
        }
        out
    }

    /// Decodes the stored form of the record at `seq`.
    pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<Record, CorruptRecord> {
        let mut r = Reader(bytes);
        let h = Header::read(&mut r)?;
        let key_id = r.str()?.to_string();
        let iss = if h.flags & 1 != 0 { Some(r.str()?.to_string()) } else { None };
        let idempotency_key = if h.flags & 2 != 0 { Some(r.str()?.to_string()) } else { None };
        let ids = h.kind.id_fields().iter().map(|_| r.str().map(String::from)).collect::<Result<Vec<_>, _>>()?;
        if !r.0.is_empty() {
            return Err(CorruptRecord);
        }
        Ok(Record {
            seq,
            received_ms: h.received_ms,
            key_id,
            event: NewEvent { kind: h.kind, ids, before: h.before, iss, exp: h.exp, idempotency_key },
        })
    }

    /// The record's JSON view (the admin log endpoint).
    pub(crate) fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("seq".into(), json!(self.seq));
        obj.insert("received_ms".into(), json!(self.received_ms));
        obj.insert("key_id".into(), json!(self.key_id));
        self.event.fields_json(&mut obj);
        Value::Object(obj)
    }
}

struct Header {
    kind: EventKind,
    flags: u8,
    received_ms: u64,
    exp: u64,
    before: u64,
}

impl Header {
    fn read(r: &mut Reader<'_>) -> Result<Header, CorruptRecord> {
        if r.u8()? != RECORD_VERSION {
            return Err(CorruptRecord);
        }
        let kind = EventKind::from_tag(r.u8()?).ok_or(CorruptRecord)?;
        let flags = r.u8()?;
        if flags > 3 {
            return Err(CorruptRecord);
        }
        let received_ms = r.u64()?;
        let exp = r.u64()?;
        let before = if kind == EventKind::RevokeSubject { r.u64()? } else { 0 };
        Ok(Header { kind, flags, received_ms, exp, before })
    }
}

/// The parts of a stored record that start-up, deltas and retention need, read without
/// allocating for the fields they skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary<'a> {
    pub(crate) kind: EventKind,
    pub(crate) received_ms: u64,
    pub(crate) exp: u64,
    pub(crate) before: u64,
    pub(crate) key_id: &'a str,
    pub(crate) iss: Option<&'a str>,
    pub(crate) idempotency_key: Option<&'a str>,
    /// The first identifier (`jti`, `sid` or `sub`: the denylist identifier where the
    /// kind has one).
    pub(crate) first_id: &'a str,
}

impl<'a> Summary<'a> {
    /// Reads a stored record's summary.
    pub(crate) fn read(bytes: &'a [u8]) -> Result<Summary<'a>, CorruptRecord> {
        let mut r = Reader(bytes);
        let h = Header::read(&mut r)?;
        let key_id = r.str()?;
        let iss = if h.flags & 1 != 0 { Some(r.str()?) } else { None };
        let idempotency_key = if h.flags & 2 != 0 { Some(r.str()?) } else { None };
        let first_id = r.str()?;
        Ok(Summary {
            kind: h.kind,
            received_ms: h.received_ms,
            exp: h.exp,
            before: h.before,
            key_id,
            iss,
            idempotency_key,
            first_id,
        })
    }

    /// The denylist entry kind the record adds, if any.
    pub(crate) fn entry_kind(&self) -> Option<EntryKind> {
        match self.kind {
            EventKind::RevokeToken => Some(EntryKind::Jti),
            EventKind::Logout | EventKind::ReuseDetected => Some(EntryKind::Sid),
            EventKind::RevokeSubject => Some(EntryKind::Subject { before: self.before }),
            EventKind::Rotation | EventKind::SessionStart => None,
        }
    }

    /// The denylist entry the record adds, if any.
    pub(crate) fn entry(&self) -> Option<Entry> {
        Some(Entry {
            kind: self.entry_kind()?,
            iss: self.iss.map(String::from),
            id: self.first_id.to_string(),
            exp: self.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<NewEvent, FieldError> {
        NewEvent::from_json(&v, "", &EventKind::ALL)
    }

    #[test]
    fn every_kind_round_trips_through_the_codec() {
        let bodies = [
            json!({"kind": "revoke_token", "jti": "j", "exp": 10}),
            json!({"kind": "logout", "sid": "s", "exp": 10, "iss": "https://i"}),
            json!({"kind": "revoke_subject", "sub": "u", "before": 5, "exp": 10, "idempotency_key": "k"}),
            json!({"kind": "rotation", "sid": "s", "from_jti": "a", "to_jti": "b", "exp": 10}),
            json!({"kind": "reuse_detected", "sid": "s", "jti": "a", "exp": 10}),
            json!({"kind": "session_start", "sid": "s", "sub": "u", "refresh_jti": "r", "exp": 10, "iss": "x"}),
        ];
        for (i, b) in bodies.into_iter().enumerate() {
            let event = parse(b).unwrap();
            let rec = Record { seq: i as u64 + 1, received_ms: 77, key_id: "kid".into(), event };
            let bytes = rec.encode();
            assert_eq!(Record::decode(rec.seq, &bytes).unwrap(), rec);
            let s = Summary::read(&bytes).unwrap();
            assert_eq!(s.entry(), rec.event.denylist_entry());
            assert_eq!(s.first_id, rec.event.id(0));
            // Truncation anywhere is detected.
            for cut in 0..bytes.len() {
                assert_eq!(Record::decode(1, &bytes[..cut]), Err(CorruptRecord));
            }
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let e = |v: Value| parse(v).unwrap_err().to_string();
        assert_eq!(e(json!({"jti": "j", "exp": 1})), "kind: missing");
        assert!(e(json!({"kind": "nope", "exp": 1})).starts_with("kind: unknown event kind"));
        assert_eq!(e(json!({"kind": "revoke_token", "exp": 1})), "jti: missing");
        assert_eq!(e(json!({"kind": "revoke_token", "jti": 5, "exp": 1})), "jti: expected a string");
        assert_eq!(e(json!({"kind": "revoke_token", "jti": "", "exp": 1})), "jti: must not be empty");
        assert!(e(json!({"kind": "revoke_token", "jti": "j", "exp": -1})).starts_with("exp: expected"));
        assert!(e(json!({"kind": "revoke_token", "jti": "j", "exp": 1.5})).starts_with("exp: expected"));
        assert_eq!(e(json!({"kind": "revoke_token", "jti": "j", "exp": 1, "x": 1})), "x: unknown field");
        assert_eq!(e(json!({"kind": "revoke_subject", "sub": "u", "exp": 1})), "before: missing");
        assert_eq!(e(json!([1])), "$: expected an object");
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert!(e(json!({"kind": "logout", "sid": long, "exp": 1})).contains("longer than"));
        let only = NewEvent::from_json(&json!({"kind": "rotation"}), "events[2]", &[EventKind::Logout]);
        assert!(only.unwrap_err().to_string().starts_with("events[2].kind: rotation events are recorded"));
    }
}
