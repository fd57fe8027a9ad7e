//! Wire format version 2 against the real service: the epoch and creation time it
//! stamps, the replica's acceptance rules, and the fleet upgrade order (service
//! first, with `legacy_wire_v1` on while old replicas remain, then edges).

use reqwest::StatusCode;
use serde_json::json;
use tollgate_core::wire::{self, v1, Acceptance, HighWater};
use tollgate_core::{Denylist, WireError};
use tollgate_revocation::{Config, ManualClock};

use super::harness::{config, expect_error, public_key, Keys, Server, FAR, T0_MS};

const NOW: u64 = T0_MS / 1000;
/// The replicas' staleness bound, seconds.
const MAX_AGE: u64 = 10;

fn with_legacy(dir: &std::path::Path) -> Config {
    Config { legacy_wire_v1: true, ..config(dir) }
}

async fn body(s: &Server, key: &str, path: &str) -> Vec<u8> {
    let r = s.get(key, path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.bytes().await.unwrap().to_vec()
}

async fn revoke(s: &Server, key: &str, events: serde_json::Value) {
    assert_eq!(s.post(key, "/v1/events", events).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn during_the_window_old_and_new_replicas_follow_the_new_service() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start_with(with_legacy(dir.path()), ManualClock::new(T0_MS)).await;
    let pk = public_key();
    revoke(&s, &keys.write, json!({"kind": "logout", "sid": "s1", "iss": "https://idp", "exp": FAR})).await;
    revoke(&s, &keys.write, json!({"kind": "revoke_subject", "sub": "u1", "before": NOW, "exp": FAR})).await;

    // The replica built before version 2 asks without `wire` and gets version 1.
    let mut old = v1::decode_snapshot(&body(&s, &keys.read, "/v1/denylist").await, &pk).unwrap();
    assert_eq!((old.seq, old.len()), (2, 2));
    // The new replica asks for version 2, under its acceptance rules.
    let mut acc = Acceptance::new(MAX_AGE);
    let mut new = Denylist::default();
    new.apply_snapshot_accepted(&body(&s, &keys.read, "/v1/denylist?wire=2").await, &pk, &mut acc, NOW).unwrap();
    assert_eq!((new.seq(), new.len()), (2, 2));
    let epoch = new.stamp().unwrap().epoch;
    assert_eq!(acc.high_water(), Some(HighWater { epoch, seq: 2 }));

    // A logout reaches both through their deltas.
    revoke(&s, &keys.write, json!({"kind": "revoke_token", "jti": "j1", "exp": FAR})).await;
    let d = v1::decode_delta(&body(&s, &keys.read, "/v1/denylist?since=2").await, &pk).unwrap();
    assert_eq!(old.apply_delta(&d).unwrap(), 1);
    let bytes = body(&s, &keys.read, "/v1/denylist?since=2&wire=2").await;
    assert_eq!(new.apply_delta_accepted(&bytes, &pk, &mut acc, NOW).unwrap(), 1);
    for (iss, jti, sid, sub, iat, revoked) in [
        (None, Some("j1"), None, None, None, true),
        (Some("https://idp"), None, Some("s1"), None, None, true),
        (Some("https://other"), None, Some("s1"), None, None, false),
        (None, None, None, Some("u1"), Some((NOW - 1) as f64), true),
        (None, None, None, Some("u1"), Some(NOW as f64), false),
        (None, Some("j2"), Some("s2"), Some("u2"), None, false),
    ] {
        assert_eq!(old.is_revoked(iss, jti, sid, sub, iat), revoked, "old: {jti:?} {sid:?} {sub:?}");
        assert_eq!(new.is_revoked(iss, jti, sid, sub, iat), revoked, "new: {jti:?} {sid:?} {sub:?}");
    }
    assert_eq!(old.seq, new.seq());

    // A new replica that gets a version-1 answer (it forgot `wire=2`, or the service
    // is not upgraded yet) refuses it as a version it does not read and keeps what it
    // has: it goes stale and fails closed, it never misreads.
    let before = new.clone();
    let v1_snapshot = body(&s, &keys.read, "/v1/denylist").await;
    assert_eq!(
        new.apply_snapshot_accepted(&v1_snapshot, &pk, &mut acc, NOW),
        Err(WireError::UnsupportedVersion { found: 1 })
    );
    assert_eq!(new.apply_snapshot(&v1_snapshot, &pk), Err(WireError::UnsupportedVersion { found: 1 }));
    let v1_delta = body(&s, &keys.read, "/v1/denylist?since=3").await;
    assert_eq!(
        new.apply_delta_accepted(&v1_delta, &pk, &mut acc, NOW),
        Err(WireError::UnsupportedVersion { found: 1 })
    );
    assert!(new.same_entries(&before) && new.stamp() == before.stamp());
    assert_eq!(acc.high_water(), Some(HighWater { epoch, seq: 3 }));
    s.stop().await;
}

#[tokio::test]
async fn after_the_window_version_2_only() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let pk = public_key();
    revoke(&s, &keys.write, json!({"kind": "revoke_token", "jti": "j1", "exp": FAR})).await;
    // Without `wire`, version 2: a version-1 replica left behind cannot read it (and
    // so fails closed rather than misreading it).
    let plain = body(&s, &keys.read, "/v1/denylist").await;
    assert_eq!(&plain[..4], b"TGS\x02");
    assert_eq!(v1::decode_snapshot(&plain, &pk), Err(WireError::UnsupportedVersion { found: 2 }));
    let mut list = Denylist::default();
    list.apply_snapshot(&plain, &pk).unwrap();
    assert!(list.contains_jti(None, "j1"));
    // Version 1 is no longer served, even when asked for by name; unknown versions
    // never were.
    expect_error(s.get(&keys.read, "/v1/denylist?wire=1").await, StatusCode::BAD_REQUEST, "unsupported_wire_version")
        .await;
    expect_error(s.get(&keys.read, "/v1/denylist?wire=3").await, StatusCode::BAD_REQUEST, "unsupported_wire_version")
        .await;
    let d = body(&s, &keys.read, "/v1/denylist?since=0&wire=2").await;
    assert_eq!(&d[..4], b"TGD\x02");
    s.stop().await;
}

#[tokio::test]
async fn the_epoch_is_the_data_directory_s_and_old_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let clock = ManualClock::new(T0_MS);
    let s = Server::start_with(config(dir.path()), clock.clone()).await;
    let pk = public_key();
    revoke(&s, &keys.write, json!({"kind": "revoke_token", "jti": "j1", "exp": FAR})).await;
    let mut acc = Acceptance::new(MAX_AGE);
    let mut list = Denylist::default();
    list.apply_snapshot_accepted(&body(&s, &keys.read, "/v1/denylist").await, &pk, &mut acc, NOW).unwrap();
    let epoch = list.stamp().unwrap().epoch;
    let snap = wire::decode_snapshot(&body(&s, &keys.read, "/v1/denylist").await, &pk).unwrap();
    assert_eq!(snap.stamp().map(|st| (st.epoch, st.created)), Some((epoch, NOW)));
    let early_delta = body(&s, &keys.read, "/v1/denylist?since=1").await;

    // Restarted on the same directory: same epoch, and a replica resuming from its
    // persisted mark carries on.
    s.stop().await;
    clock.advance(60_000);
    let now = NOW + 60;
    let s = Server::start_with(config(dir.path()), clock.clone()).await;
    let mark = HighWater::from_bytes(&acc.high_water().unwrap().to_bytes()).unwrap();
    let mut resumed = Acceptance::resume(MAX_AGE, mark);
    let mut fresh = Denylist::default();
    fresh.apply_snapshot_accepted(&body(&s, &keys.read, "/v1/denylist").await, &pk, &mut resumed, now).unwrap();
    assert_eq!(fresh.stamp().map(|st| (st.epoch, st.created)), Some((epoch, now)));
    // A delta made a minute ago, replayed now, is refused as too old.
    assert_eq!(
        fresh.apply_delta_accepted(&early_delta, &pk, &mut resumed, now),
        Err(WireError::TooOld { created: NOW, now })
    );
    s.stop().await;

    // Another data directory (a service started afresh with the same signing key) is
    // another epoch: refused, until the operator re-bootstraps the replica.
    let other = tempfile::tempdir().unwrap();
    let other_keys = Keys::create(other.path());
    let s = Server::start_with(config(other.path()), clock.clone()).await;
    let theirs = body(&s, &other_keys.read, "/v1/denylist").await;
    assert_eq!(fresh.apply_snapshot_accepted(&theirs, &pk, &mut resumed, now), Err(WireError::Epoch));
    assert!(fresh.contains_jti(None, "j1"));
    resumed.rebootstrap();
    fresh.apply_snapshot_accepted(&theirs, &pk, &mut resumed, now).unwrap();
    assert_ne!(fresh.stamp().unwrap().epoch, epoch);
    assert!(fresh.is_empty() && !resumed.is_rebootstrapping());
    s.stop().await;
}
