//! What the client sends and what it gets back, in the shapes of
//! `revocation-service/openapi.yaml`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The kinds of event `POST /v1/events` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// `revoke_token {jti}`: one token.
    RevokeToken,
    /// `logout {sid}`: a session (and its refresh family).
    Logout,
    /// `revoke_subject {sub, before}`: every token of a subject issued before a time.
    RevokeSubject,
    /// `reuse_detected {sid, jti}`: a refresh token was replayed; the session dies.
    ReuseDetected,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RevokeToken => "revoke_token",
            EventKind::Logout => "logout",
            EventKind::RevokeSubject => "revoke_subject",
            EventKind::ReuseDetected => "reuse_detected",
        }
    }
}

/// One revocation event. Without [`Event::exp`], the client fills in `exp` from its
/// `entry_life` when it sends the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) kind: EventKind,
    pub(crate) jti: Option<String>,
    pub(crate) sid: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) before: Option<u64>,
    pub(crate) iss: Option<String>,
    pub(crate) exp: Option<u64>,
    pub(crate) idempotency_key: Option<String>,
}

impl Event {
    fn of(kind: EventKind) -> Event {
        Event { kind, jti: None, sid: None, sub: None, before: None, iss: None, exp: None, idempotency_key: None }
    }

    /// Revokes the token with this `jti`.
    pub fn revoke_token(jti: impl Into<String>) -> Event {
        Event { jti: Some(jti.into()), ..Event::of(EventKind::RevokeToken) }
    }

    /// Ends the session `sid`: its access tokens are refused at the edge and its
    /// refresh family can no longer rotate.
    pub fn logout(sid: impl Into<String>) -> Event {
        Event { sid: Some(sid.into()), ..Event::of(EventKind::Logout) }
    }

    /// Revokes every token of `sub` issued before `before` (seconds since the epoch):
    /// "log out everywhere", a password or role change.
    pub fn revoke_subject(sub: impl Into<String>, before: u64) -> Event {
        Event { sub: Some(sub.into()), before: Some(before), ..Event::of(EventKind::RevokeSubject) }
    }

    /// Records that refresh token `jti` of session `sid` was replayed; the session is
    /// revoked. ([`crate::RevocationClient::rotate`] does this by itself when the
    /// service detects the reuse.)
    pub fn reuse_detected(sid: impl Into<String>, jti: impl Into<String>) -> Event {
        Event { sid: Some(sid.into()), jti: Some(jti.into()), ..Event::of(EventKind::ReuseDetected) }
    }

    /// Scopes the entry to tokens of this issuer.
    #[must_use]
    pub fn iss(mut self, iss: impl Into<String>) -> Event {
        self.iss = Some(iss.into());
        self
    }

    /// When the denylist entry may be dropped (seconds since the epoch): no token it
    /// covers may outlive it.
    #[must_use]
    pub fn exp(mut self, exp: u64) -> Event {
        self.exp = Some(exp);
        self
    }

    /// The idempotency key to send (by default the client makes one per logical call
    /// and reuses it on every retry).
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Event {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The kind.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The JSON body member for this event.
    pub(crate) fn to_json(&self, default_exp: u64, idempotency_key: String) -> Value {
        let mut o = Map::new();
        o.insert("kind".into(), json!(self.kind.as_str()));
        for (name, v) in [("jti", &self.jti), ("sid", &self.sid), ("sub", &self.sub), ("iss", &self.iss)] {
            if let Some(v) = v {
                o.insert(name.into(), json!(v));
            }
        }
        if let Some(b) = self.before {
            o.insert("before".into(), json!(b));
        }
        o.insert("exp".into(), json!(self.exp.unwrap_or(default_exp)));
        o.insert("idempotency_key".into(), json!(self.idempotency_key.clone().unwrap_or(idempotency_key)));
        Value::Object(o)
    }
}

/// The service's acknowledgement of one event: durable with this sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Appended {
    /// The event's sequence number in the log.
    pub seq: u64,
    /// The event's kind, as the service names it.
    pub kind: String,
    /// `true` when a retry found the event already appended (nothing new was written).
    pub duplicate: bool,
}

/// `POST /v1/sessions`: a refresh family starts (at login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    /// The session id (the `sid` of its tokens).
    pub sid: String,
    /// The subject.
    pub sub: String,
    /// The `jti` of the first refresh token.
    pub refresh_jti: String,
    /// When the family may be forgotten (the first refresh token's `exp`).
    pub exp: u64,
    /// The issuer, if the service should scope the session to it.
    pub iss: Option<String>,
}

impl SessionStart {
    /// A session start; see the fields.
    pub fn new(sid: impl Into<String>, sub: impl Into<String>, refresh_jti: impl Into<String>, exp: u64) -> Self {
        SessionStart { sid: sid.into(), sub: sub.into(), refresh_jti: refresh_jti.into(), exp, iss: None }
    }

    /// Scopes the session to an issuer.
    #[must_use]
    pub fn iss(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({"sid": self.sid, "sub": self.sub, "refresh_jti": self.refresh_jti, "exp": self.exp});
        if let Some(i) = &self.iss {
            v["iss"] = json!(i);
        }
        v
    }
}

/// The service's acknowledgement of a session start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionStarted {
    /// The `session_start` event's sequence number.
    pub seq: u64,
    /// `true` when the same start was already recorded (a retry).
    pub duplicate: bool,
}

/// `POST /v1/refresh/rotate`: refresh token `presented_jti` is replaced by `next_jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The session (refresh family).
    pub sid: String,
    /// The `jti` of the refresh token the client presented.
    pub presented_jti: String,
    /// The `jti` of the refresh token that replaces it.
    pub next_jti: String,
    /// The new refresh token's `exp`.
    pub exp: u64,
    /// The issuer; if given, it must be the session's.
    pub iss: Option<String>,
}

impl Rotation {
    /// A rotation; see the fields.
    pub fn new(
        sid: impl Into<String>,
        presented_jti: impl Into<String>,
        next_jti: impl Into<String>,
        exp: u64,
    ) -> Self {
        Rotation { sid: sid.into(), presented_jti: presented_jti.into(), next_jti: next_jti.into(), exp, iss: None }
    }

    /// Names the issuer.
    #[must_use]
    pub fn iss(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({"sid": self.sid, "presented_jti": self.presented_jti, "next_jti": self.next_jti,
                           "exp": self.exp});
        if let Some(i) = &self.iss {
            v["iss"] = json!(i);
        }
        v
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateOutcome {
    /// `next_jti` is now the family's current token.
    Rotated {
        /// The `rotation` event's sequence number.
        seq: u64,
        /// `true` when a retry found this rotation already done.
        duplicate: bool,
        /// `true` when the immediate predecessor was presented within the service's
        /// grace window (`refresh_grace_secs`).
        grace: bool,
    },
    /// The presented token was an earlier one of the family: reuse (theft). The
    /// service has already revoked the whole family (`sid`) at the edge.
    ReuseDetected {
        /// The `reuse_detected` event's sequence number; `None` when the family was
        /// already revoked for reuse before.
        seq: Option<u64>,
    },
}

#[derive(Deserialize)]
pub(crate) struct AcceptedBody {
    pub(crate) accepted: Vec<Appended>,
}

#[derive(Deserialize)]
pub(crate) struct RotatedBody {
    pub(crate) seq: u64,
    pub(crate) duplicate: bool,
    #[serde(default)]
    pub(crate) grace: bool,
}
