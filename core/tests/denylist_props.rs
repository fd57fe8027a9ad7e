//! Property tests for the denylist and its replication wire format, against a plain
//! model (a `BTreeMap` keyed by kind, issuer scope and identifier):
//!
//! - insert / prune / lookup agree with the model, including issuer scoping, the
//!   merge of repeated entries and the saturation of times to `u32` seconds;
//! - a replica that applies a signed snapshot and then signed deltas (possibly
//!   overlapping what it already has) ends with exactly the entries of the fold of all
//!   events, in any order;
//! - `apply_snapshot` / `apply_delta` refuse to go backwards or to skip events, and
//!   leave the replica unchanged when they refuse;
//! - under `Acceptance`, a replica follows one epoch, changes it only by a snapshot
//!   while re-bootstrapping, never moves its high-water mark back and never takes a
//!   message older than its bound, whatever it is offered;
//! - arbitrary input to `Verifier::verify`, `Jwks::from_json`, `decode_snapshot` and
//!   `decode_delta` never panics (including validly signed garbage, which gets past
//!   the signature check to the parsers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use p256::ecdsa::signature::Signer;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_core::wire::{
    decode_delta, decode_snapshot, encode_delta, encode_snapshot, v1, Delta, DeltaEvent, DenylistSigner, Stamp,
};
use tollgate_core::{b64, Denylist, Entry, EntryKind, Jwks, Policy, Verifier, WireError};

const HASH_KEY: [u8; 16] = *b"proptest-hashkey";
const SIGNER_SECRET: [u8; 32] = [0x17; 32];
const NOW: i64 = 1_763_800_000;
/// The service's epoch and a creation time, for every message here.
const STAMP: Stamp = Stamp { epoch: *b"proptest-epoch-1", created: NOW as u64 };

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// For properties that sign and verify ECDSA several times a case (a few ms each in a
/// debug build): fewer cases, same strategies.
fn signing_config() -> ProptestConfig {
    ProptestConfig { cases: 96, ..config() }
}

// ---------------------------------------------------------------- the model

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Jti,
    Sid,
    Sub,
}

/// One entry as posted: `before` only matters for a subject cutoff.
#[derive(Debug, Clone)]
struct Ev {
    kind: Kind,
    iss: Option<String>,
    id: String,
    exp: u64,
    before: u64,
}

impl Ev {
    fn entry(&self) -> Entry {
        let kind = match self.kind {
            Kind::Jti => EntryKind::Jti,
            Kind::Sid => EntryKind::Sid,
            Kind::Sub => EntryKind::Subject { before: self.before },
        };
        Entry { kind, iss: self.iss.clone(), id: self.id.clone(), exp: self.exp }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Ev),
    Prune(u64),
}

fn sat(v: u64) -> u64 {
    v.min(u64::from(u32::MAX))
}

/// `(kind, scope, id) -> (exp, before)`, times saturated as the list stores them.
#[derive(Debug, Default)]
struct Model(BTreeMap<(Kind, Option<String>, String), (u64, u64)>);

impl Model {
    fn insert(&mut self, e: &Ev) {
        let before = if e.kind == Kind::Sub { sat(e.before) } else { 0 };
        let slot = self.0.entry((e.kind, e.iss.clone(), e.id.clone())).or_insert((0, 0));
        slot.0 = slot.0.max(sat(e.exp));
        slot.1 = slot.1.max(before);
    }

    fn prune(&mut self, cutoff: u64) -> usize {
        let before = self.0.len();
        self.0.retain(|_, (exp, _)| *exp >= sat(cutoff));
        before - self.0.len()
    }

    /// The unscoped entry, and the one scoped to `iss` when the token has an issuer.
    fn matches(&self, kind: Kind, iss: Option<&str>, id: &str) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = self.0.get(&(kind, None, id.to_string())).copied().into_iter().collect();
        if let Some(i) = iss {
            v.extend(self.0.get(&(kind, Some(i.to_string()), id.to_string())).copied());
        }
        v
    }

    fn cutoff(&self, iss: Option<&str>, sub: &str) -> Option<u64> {
        self.matches(Kind::Sub, iss, sub).into_iter().map(|(_, b)| b).max()
    }

    fn is_revoked(&self, iss: Option<&str>, id: &str, iat: Option<f64>) -> bool {
        !self.matches(Kind::Jti, iss, id).is_empty()
            || !self.matches(Kind::Sid, iss, id).is_empty()
            || self.cutoff(iss, id).is_some_and(|b| iat.is_none_or(|t| t < b as f64))
    }
}

// ---------------------------------------------------------------- strategies

/// Small alphabets, so that entries collide, merge and shadow each other.
fn ids() -> Vec<String> {
    let mut v = vec![String::new()];
    for a in ["a", "b", "c"] {
        v.push(a.to_string());
        for b in ["a", "b", "c"] {
            v.push(format!("{a}{b}"));
        }
    }
    v
}

const ISSUERS: [Option<&str>; 4] = [None, Some("x"), Some("y"), Some("")];

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Jti), Just(Kind::Sid), Just(Kind::Sub)]
}

fn time() -> impl Strategy<Value = u64> {
    let max32 = u64::from(u32::MAX);
    prop_oneof![6 => 0u64..100, 1 => (max32 - 2)..(max32 + 3), 1 => Just(u64::MAX)]
}

fn ev() -> impl Strategy<Value = Ev> {
    (kind(), prop::sample::select(ISSUERS.to_vec()), "[abc]{0,2}", time(), time())
        .prop_map(|(kind, iss, id, exp, before)| Ev { kind, iss: iss.map(String::from), id, exp, before })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![5 => ev().prop_map(Op::Insert), 1 => time().prop_map(Op::Prune)]
}

/// Events with strictly increasing sequence numbers (gaps allowed: other log events).
fn sequenced(max: usize) -> impl Strategy<Value = Vec<DeltaEvent>> {
    vec((1u64..4, ev()), 0..max).prop_map(|v| {
        let mut seq = 0;
        v.into_iter()
            .map(|(gap, e)| {
                seq += gap;
                DeltaEvent { seq, entry: e.entry() }
            })
            .collect()
    })
}

fn signer() -> DenylistSigner {
    DenylistSigner::from_secret(&SIGNER_SECRET).unwrap()
}

/// Signs an arbitrary body as the revocation service would, so it reaches the parser.
fn sign_body(body: &[u8]) -> Vec<u8> {
    let key = p256::ecdsa::SigningKey::from_slice(&SIGNER_SECRET).unwrap();
    let sig: p256::ecdsa::Signature = key.sign(body);
    let mut out = body.to_vec();
    out.extend_from_slice(&sig.to_bytes());
    out
}

fn fold(events: &[DeltaEvent], to: u64) -> Denylist {
    let mut d = Denylist::new(HASH_KEY);
    d.apply_events(events, to);
    d
}

fn check_lookups(d: &Denylist, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(d.len(), m.0.len());
    for iss in ISSUERS {
        for id in ids() {
            let want_jti = !m.matches(Kind::Jti, iss, &id).is_empty();
            let want_sid = !m.matches(Kind::Sid, iss, &id).is_empty();
            prop_assert_eq!(d.contains_jti(iss, &id), want_jti, "jti {:?} {:?}", iss, id);
            prop_assert_eq!(d.contains_sid(iss, &id), want_sid, "sid {:?} {:?}", iss, id);
            prop_assert_eq!(d.subject_cutoff(iss, &id), m.cutoff(iss, &id), "sub {:?} {:?}", iss, id);
            for iat in [None, Some(0.0), Some(49.5), Some(50.0), Some(4_294_967_295.5)] {
                prop_assert_eq!(
                    d.is_revoked(iss, Some(&id), Some(&id), Some(&id), iat),
                    m.is_revoked(iss, &id, iat),
                    "is_revoked {:?} {:?} {:?}",
                    iss,
                    id,
                    iat
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config())]

    /// Insert, prune and every lookup agree with the model after any sequence of ops.
    #[test]
    fn insert_prune_lookup_match_the_model(ops in vec(op(), 0..40)) {
        let mut d = Denylist::new(HASH_KEY);
        let mut m = Model::default();
        for op in &ops {
            match op {
                Op::Insert(e) => {
                    d.insert_entry(&e.entry());
                    m.insert(e);
                }
                Op::Prune(c) => prop_assert_eq!(d.prune(*c), m.prune(*c)),
            }
        }
        check_lookups(&d, &m)?;
    }

    /// The fold of the same events in any order gives the same list.
    #[test]
    fn fold_is_order_independent(events in sequenced(30).prop_shuffle()) {
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.seq);
        let to = sorted.last().map_or(0, |e| e.seq);
        prop_assert!(fold(&events, to).same_entries(&fold(&sorted, to)));
    }

}

proptest! {
    #![proptest_config(signing_config())]

    /// Snapshot at some point, then deltas (chunks that may reach back over events the
    /// replica has, and may end past their last event) equal the fold of all events.
    #[test]
    fn snapshot_plus_deltas_equals_the_fold(
        events in sequenced(30),
        snap_frac in 0.0f64..=1.0,
        cuts in vec(0.0f64..=1.0, 0..5),
        backs in vec(0usize..3, 5),
        tail in 0u64..3,
        prune_at in prop::option::of(time()),
    ) {
        let s = signer();
        let pk = s.public_key();
        let n = events.len();
        let seq_after = |k: usize| if k == 0 { 0 } else { events[k - 1].seq };
        let k = ((n as f64) * snap_frac) as usize;
        let last_to = seq_after(n) + tail;
        let full = fold(&events, last_to);

        let snap = fold(&events[..k], seq_after(k));
        let mut replica = Denylist::default();
        replica.apply_snapshot(&encode_snapshot(&snap, STAMP, &s), &pk).unwrap();
        prop_assert!(replica.same_entries(&snap));

        // Chunk boundaries after the snapshot, as event indices, ending at n.
        let mut bounds: Vec<usize> = cuts.iter().map(|c| k + ((n - k) as f64 * c) as usize).collect();
        bounds.push(n);
        bounds.sort_unstable();
        let mut at = k;
        for (i, &end) in bounds.iter().enumerate() {
            let start = at.saturating_sub(backs[i % backs.len()]);
            let from = seq_after(start);
            let to = if end == n { last_to } else { seq_after(end) };
            let delta = Delta { stamp: STAMP, from, to, events: events[start..end].to_vec() };
            let before = replica.seq();
            let applied = replica.apply_delta(&encode_delta(&delta, &s), &pk).unwrap();
            let new = delta.events.iter().filter(|e| e.seq > before).count();
            prop_assert_eq!(applied, new);
            prop_assert_eq!(replica.seq(), to.max(before));
            at = end;
        }
        prop_assert!(replica.same_entries(&full));
        prop_assert_eq!(encode_snapshot(&replica, STAMP, &s), encode_snapshot(&full, STAMP, &s));

        // Pruning both sides alike keeps them equal.
        if let Some(c) = prune_at {
            let mut full = full;
            prop_assert_eq!(replica.prune(c), full.prune(c));
            prop_assert!(replica.same_entries(&full));
        }
    }

}

proptest! {
    #![proptest_config(config())]

    /// A replica at `current` takes a delta `(from, to]` only when `from <= current <= to`,
    /// and a snapshot only at or ahead of `current`; a refusal changes nothing.
    #[test]
    fn sequence_numbers_never_go_backwards_or_skip(
        current in 0u64..20,
        from in 0u64..20,
        len in 0u64..6,
        snap_seq in 0u64..25,
        entries in vec(ev(), 0..4),
    ) {
        let s = signer();
        let pk = s.public_key();
        let mut replica = Denylist::new(HASH_KEY);
        for e in &entries {
            replica.insert_entry(&e.entry());
        }
        replica.set_seq(current);

        // `apply_delta` is `decode_delta` then this; the signed path is exercised by
        // `snapshot_plus_deltas_equals_the_fold`.
        let to = from + len;
        let events: Vec<DeltaEvent> = (from + 1..=to)
            .map(|seq| DeltaEvent { seq, entry: Entry { kind: EntryKind::Jti, iss: None, id: format!("j{seq}"), exp: 99 } })
            .collect();
        let mut r = replica.clone();
        match r.apply_decoded_delta(&Delta { stamp: STAMP, from, to, events }) {
            Ok(n) => {
                prop_assert!(from <= current && current <= to);
                prop_assert_eq!(n as u64, to - current);
                prop_assert_eq!(r.seq(), to);
                for seq in from + 1..=to {
                    prop_assert_eq!(r.contains_jti(None, &format!("j{seq}")), seq > current);
                }
            }
            Err(e) => {
                if from > current {
                    prop_assert_eq!(e, WireError::Gap { current, from });
                } else {
                    prop_assert!(to < current);
                    prop_assert_eq!(e, WireError::Backwards { current, offered: to });
                }
                prop_assert!(r.same_entries(&replica));
            }
        }

        let mut other = Denylist::new(HASH_KEY);
        other.set_seq(snap_seq);
        let mut r = replica.clone();
        match r.apply_snapshot(&encode_snapshot(&other, STAMP, &s), &pk) {
            Ok(()) => {
                prop_assert!(snap_seq >= current);
                prop_assert!(r.same_entries(&other));
            }
            Err(e) => {
                prop_assert_eq!(e, WireError::Backwards { current, offered: snap_seq });
                prop_assert!(r.same_entries(&replica));
            }
        }
    }

}

proptest! {
    #![proptest_config(signing_config())]

    /// A delta whose bounds or event sequence numbers are inconsistent does not decode.
    #[test]
    fn inconsistent_deltas_are_invalid(from in 1u64..50, back in 1u64..50, ev_seq in 0u64..100) {
        let s = signer();
        let pk = s.public_key();
        let reversed = encode_delta(&Delta { stamp: STAMP, from, to: from.saturating_sub(back).min(from - 1), events: vec![] }, &s);
        prop_assert_eq!(decode_delta(&reversed, &pk), Err(WireError::Invalid));
        let to = from + 10;
        let event = DeltaEvent { seq: ev_seq, entry: Entry { kind: EntryKind::Sid, iss: None, id: "s".into(), exp: 1 } };
        let bytes = encode_delta(&Delta { stamp: STAMP, from, to, events: vec![event.clone()] }, &s);
        let decoded = decode_delta(&bytes, &pk);
        if ev_seq > from && ev_seq <= to {
            prop_assert_eq!(decoded.unwrap().events, vec![event]);
        } else {
            prop_assert_eq!(decoded, Err(WireError::Invalid));
        }
    }
}

/// Messages signed by any other key are refused and change nothing, whatever their
/// sequence numbers.
#[test]
fn forged_messages_leave_the_replica_alone() {
    let pk = signer().public_key();
    let stranger = DenylistSigner::from_secret(&[0x23; 32]).unwrap();
    let mut replica = Denylist::new(HASH_KEY);
    replica.insert(EntryKind::Jti, None, "j", 10);
    replica.set_seq(4);
    let before = replica.clone();
    let mut ahead = Denylist::new(HASH_KEY);
    ahead.set_seq(9);
    assert_eq!(replica.apply_snapshot(&encode_snapshot(&ahead, STAMP, &stranger), &pk), Err(WireError::Signature));
    for (from, to) in [(0, 5), (4, 5), (4, 4), (5, 9)] {
        let forged = encode_delta(&Delta { stamp: STAMP, from, to, events: vec![] }, &stranger);
        assert_eq!(replica.apply_delta(&forged, &pk), Err(WireError::Signature));
    }
    assert!(replica.same_entries(&before));
}

/// A message a replica may be offered: a snapshot at `seq`, or a delta `(from, to]`,
/// from epoch A or B, created `age` seconds before the replica's clock.
#[derive(Debug, Clone)]
enum Offer {
    Snapshot { b: bool, seq: u64, age: u64 },
    Delta { b: bool, from: u64, len: u64, age: u64 },
    Rebootstrap,
}

fn offer() -> impl Strategy<Value = Offer> {
    prop_oneof![
        (any::<bool>(), 0u64..12, 0u64..15).prop_map(|(b, seq, age)| Offer::Snapshot { b, seq, age }),
        (any::<bool>(), 0u64..12, 0u64..4, 0u64..15).prop_map(|(b, from, len, age)| Offer::Delta { b, from, len, age }),
        Just(Offer::Rebootstrap),
    ]
}

proptest! {
    #![proptest_config(signing_config())]

    /// Under `Acceptance`, whatever it is offered, a replica: only ever follows one
    /// epoch at a time and changes epoch only by a snapshot while re-bootstrapping (or
    /// its first); never moves its high-water mark back within an epoch, except by a
    /// snapshot while re-bootstrapping (a restored backup); never takes a
    /// message older than the bound; and is unchanged by what it refuses.
    #[test]
    fn acceptance_rules_hold_for_any_offers(offers in vec(offer(), 1..12)) {
        use tollgate_core::wire::Acceptance;
        let s = signer();
        let pk = s.public_key();
        let (max_age, now) = (10u64, 1_000u64);
        let epoch = |b: bool| if b { *b"epoch-B-epoch-B-" } else { *b"epoch-A-epoch-A-" };
        let mut acc = Acceptance::new(max_age);
        let mut list = Denylist::default();
        for o in offers {
            let (before_acc, before_list, before_stamp) = (acc.clone(), list.clone(), list.stamp());
            let rebootstrapping = acc.is_rebootstrapping();
            let (result, b, seq, age, snapshot) = match o {
                Offer::Rebootstrap => {
                    acc.rebootstrap();
                    continue;
                }
                Offer::Snapshot { b, seq, age } => {
                    let mut l = Denylist::new(HASH_KEY);
                    l.insert(EntryKind::Jti, None, &format!("j{seq}"), 99);
                    l.set_seq(seq);
                    let bytes = encode_snapshot(&l, Stamp { epoch: epoch(b), created: now - age }, &s);
                    (list.apply_snapshot_accepted(&bytes, &pk, &mut acc, now).map(|()| 0), b, seq, age, true)
                }
                Offer::Delta { b, from, len, age } => {
                    let d = Delta { stamp: Stamp { epoch: epoch(b), created: now - age }, from, to: from + len, events: vec![] };
                    (list.apply_delta_accepted(&encode_delta(&d, &s), &pk, &mut acc, now), b, from + len, age, false)
                }
            };
            match result {
                Ok(_) => {
                    prop_assert!(age <= max_age);
                    let mark = acc.high_water().unwrap();
                    prop_assert_eq!(mark.epoch, epoch(b));
                    prop_assert_eq!(list.stamp().map(|s| s.epoch), Some(epoch(b)));
                    match before_acc.high_water() {
                        // A restored backup: the operator's re-bootstrap takes the
                        // snapshot whatever its sequence, and the mark starts again there.
                        Some(m) if m.epoch == epoch(b) && snapshot && rebootstrapping => {
                            prop_assert_eq!(mark.seq, seq);
                        }
                        Some(m) if m.epoch == epoch(b) => {
                            prop_assert!(seq >= m.seq && mark.seq == seq.max(m.seq));
                        }
                        Some(_) => prop_assert!(snapshot && rebootstrapping),
                        None => prop_assert!(snapshot),
                    }
                }
                Err(_) => {
                    prop_assert_eq!(&acc, &before_acc);
                    prop_assert!(list.same_entries(&before_list));
                    prop_assert_eq!(list.stamp(), before_stamp);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- never panics

fn json_value() -> impl Strategy<Value = Value> {
    let words = prop_oneof![
        Just("EC"),
        Just("RSA"),
        Just("OKP"),
        Just("P-256"),
        Just("ES256"),
        Just("RS256"),
        Just("sig"),
        Just("verify"),
        Just("AQAB"),
        Just("JWT"),
        Just("none"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        words.prop_map(Value::from),
        "[A-Za-z0-9_-]{0,48}".prop_map(Value::from),
        vec(any::<u8>(), 0..300).prop_map(|b| Value::from(b64::encode(&b))),
        any::<String>().prop_map(Value::from),
    ];
    let names = prop_oneof![
        Just("keys"),
        Just("kty"),
        Just("crv"),
        Just("x"),
        Just("y"),
        Just("n"),
        Just("e"),
        Just("kid"),
        Just("alg"),
        Just("use"),
        Just("key_ops"),
        Just("typ"),
        Just("crit"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("iss"),
        Just("aud"),
        Just("sub"),
        Just("jti"),
        Just("sid"),
    ]
    .prop_map(String::from);
    let names = prop_oneof![4 => names, 1 => any::<String>()];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(names.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that is JSON, JSON with a byte changed or cut, or arbitrary bytes.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (json_value(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut s = v.to_string().into_bytes();
            let at = i.index(s.len());
            s[at] = b;
            s
        }),
        (json_value(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            s[..i.index(s.len() + 1)].to_vec()
        }),
        vec(any::<u8>(), 0..400),
    ]
}

fn fuzz_verifier() -> (Verifier, p256::ecdsa::SigningKey) {
    let ec = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let p = ec.verifying_key().to_sec1_point(false);
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec1", "x": b64::encode(p.x().unwrap()), "y": b64::encode(p.y().unwrap())},
        // Not anyone's key: any odd 2048-bit modulus makes a usable RSA key here.
        {"kty": "RSA", "kid": "rsa1", "e": "AQAB", "n": b64::encode(&[0xc5; 256])},
    ]});
    let policy = Policy::from_json(br#"{"issuers":["i"],"audiences":["a"],"required_claims":["exp","sub"]}"#).unwrap();
    (Verifier::new(Jwks::from_json(jwks.to_string().as_bytes()).unwrap(), policy), ec)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn verify_never_panics_on_arbitrary_strings(
        token in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_=.+/ -]{0,400}",
            (json_ish(), json_ish(), vec(any::<u8>(), 0..300))
                .prop_map(|(h, p, s)| format!("{}.{}.{}", b64::encode(&h), b64::encode(&p), b64::encode(&s))),
        ],
        now in any::<i64>(),
    ) {
        let (v, _) = fuzz_verifier();
        let _ = v.verify(&token, now, None);
        let _ = v.verify(&token, now, Some(&Denylist::default()));
    }

    /// Validly signed tokens with arbitrary headers and payloads get past the signature
    /// to the claim checks; an accepted one satisfies the policy.
    #[test]
    fn verify_never_panics_on_signed_garbage(header in json_ish(), payload in json_ish(), kid in any::<bool>()) {
        let (v, ec) = fuzz_verifier();
        let header = if kid { br#"{"alg":"ES256","kid":"ec1"}"#.to_vec() } else { header };
        let input = format!("{}.{}", b64::encode(&header), b64::encode(&payload));
        let sig: p256::ecdsa::Signature = ec.sign(input.as_bytes());
        let token = format!("{input}.{}", b64::encode(&sig.to_bytes()));
        let mut denylist = Denylist::default();
        denylist.insert(EntryKind::Subject { before: 10 }, Some("i"), "s", u64::MAX);
        if let Ok(t) = v.verify(&token, NOW, Some(&denylist)) {
            prop_assert_eq!(t.claims.iss(), Some("i"));
            prop_assert!(t.claims.exp().is_some_and(|e| (NOW as f64) < e));
            prop_assert!(t.claims.sub().is_some());
        }
    }

    #[test]
    fn jwks_never_panics(bytes in json_ish(), wrap in any::<bool>()) {
        let bytes = if wrap {
            let inner = String::from_utf8_lossy(&bytes);
            format!(r#"{{"keys":[{inner}]}}"#).into_bytes()
        } else {
            bytes
        };
        if let Ok(jwks) = Jwks::from_json(&bytes) {
            // Whatever was parsed can be used without panicking.
            let v = Verifier::new(jwks, Policy::default());
            let _ = v.verify("eyJhbGciOiJFUzI1NiJ9.e30.AAAA", NOW, None);
        }
    }

}

proptest! {
    #![proptest_config(signing_config())]

    #[test]
    fn wire_decoders_never_panic(bytes in vec(any::<u8>(), 0..600), body in vec(any::<u8>(), 0..600), magic in 0usize..3) {
        let pk = signer().public_key();
        let _ = decode_snapshot(&bytes, &pk);
        let _ = decode_delta(&bytes, &pk);
        // Signed bodies reach the parsers; the magic prefix gets them past the first check.
        let mut signed_body = [&b""[..], b"TGS\x02", b"TGD\x02"][magic].to_vec();
        signed_body.extend_from_slice(&body);
        let signed = sign_body(&signed_body);
        if let Ok(d) = decode_snapshot(&signed, &pk) {
            let again = decode_snapshot(&encode_snapshot(&d, STAMP, &signer()), &pk).unwrap();
            prop_assert!(again.same_entries(&d));
        }
        if let Ok(delta) = decode_delta(&signed, &pk) {
            prop_assert_eq!(decode_delta(&encode_delta(&delta, &signer()), &pk).unwrap(), delta.clone());
            let mut d = Denylist::default();
            let _ = d.apply_decoded_delta(&delta);
        }
        let mut d = Denylist::default();
        let _ = d.apply_snapshot(&signed, &pk);
        let _ = d.apply_delta(&signed, &pk);
        // The version-1 decoders (kept for the upgrade window), on the same bytes and
        // with their own magic.
        let _ = v1::decode_snapshot(&signed, &pk);
        let _ = v1::decode_delta(&signed, &pk);
        for m in [&b"TGS\x01"[..], b"TGD\x01"] {
            let old = sign_body(&[m, &body[..]].concat());
            let _ = v1::decode_snapshot(&old, &pk);
            if let Ok(delta) = v1::decode_delta(&old, &pk) {
                prop_assert_eq!(v1::decode_delta(&v1::encode_delta(&delta, &signer()), &pk).unwrap(), delta);
            }
        }
    }
}
