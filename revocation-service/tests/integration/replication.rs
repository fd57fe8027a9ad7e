//! Snapshots, deltas, long-polling, retention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_core::jwk::P256Key;
use tollgate_core::Denylist;
use tollgate_revocation::{Config, ManualClock};

use super::harness::{config, expect_error, public_key, Keys, Server, FAR, T0_MS};

/// The replica's key, taken from the service's JWK as a replica would.
async fn replica_key(s: &Server) -> P256Key {
    let jwk: Value = s.http.get(s.url("/v1/denylist/key")).send().await.unwrap().json().await.unwrap();
    let d = |k: &str| tollgate_core::b64::decode(jwk[k].as_str().unwrap().as_bytes()).unwrap();
    let key = P256Key::from_coordinates(&d("x"), &d("y")).unwrap();
    assert_eq!(key.sec1(), public_key().sec1());
    key
}

#[tokio::test]
async fn snapshot_plus_deltas_reproduce_the_service_denylist() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let key = replica_key(&s).await;
    let mut replica = Denylist::default();
    let snap = s.get(&keys.read, "/v1/denylist").await;
    assert_eq!(snap.headers()["etag"], "\"0\"");
    replica.apply_snapshot(&snap.bytes().await.unwrap(), &key).unwrap();
    for round in 0..4u64 {
        let events: Vec<Value> = (0..25)
            .map(|i| match i % 4 {
                0 => json!({"kind": "revoke_token", "jti": format!("j{round}-{i}"), "exp": FAR}),
                1 => json!({"kind": "logout", "sid": format!("s{round}-{i}"), "iss": "https://idp", "exp": FAR}),
                2 => {
                    json!({"kind": "revoke_subject", "sub": format!("u{}", i % 3), "before": 1000 + round, "exp": FAR})
                }
                _ => json!({"kind": "reuse_detected", "sid": format!("f{round}"), "jti": "old", "exp": FAR + round}),
            })
            .collect();
        s.post(&keys.write, "/v1/events", json!({"events": events})).await;
        // Non-denylist events advance the sequence too.
        let sid = format!("fam{round}");
        s.post(&keys.write, "/v1/sessions", json!({"sid": sid, "sub": "u", "refresh_jti": "r0", "exp": FAR})).await;
        s.post(
            &keys.write,
            "/v1/refresh/rotate",
            json!({"sid": sid, "presented_jti": "r0", "next_jti": "r1", "exp": FAR}),
        )
        .await;
        let r = s.get(&keys.read, &format!("/v1/denylist?since={}", replica.seq())).await;
        assert_eq!(r.headers()["content-type"], "application/vnd.tollgate.delta");
        let n = replica.apply_delta(&r.bytes().await.unwrap(), &key).unwrap();
        assert_eq!(n, 25);
        let fresh = s.get(&keys.read, "/v1/denylist").await;
        assert_eq!(fresh.headers()["etag"], format!("\"{}\"", replica.seq()).as_str());
        let theirs = tollgate_core::wire::decode_snapshot(&fresh.bytes().await.unwrap(), &key).unwrap();
        assert!(replica.same_entries(&theirs), "round {round}: {replica:?} vs {theirs:?}");
    }
    assert_eq!(replica.seq(), 4 * 27);
    assert!(replica.contains_sid(Some("https://idp"), "s0-1"));
    assert!(!replica.contains_sid(Some("https://other"), "s0-1"));
    assert!(replica.is_revoked(None, None, None, Some("u1"), Some(1002.0)));
    // A delta with nothing new is empty and keeps the sequence; If-None-Match works.
    let r = s.get(&keys.read, &format!("/v1/denylist?since={}", replica.seq())).await;
    assert_eq!(replica.apply_delta(&r.bytes().await.unwrap(), &key).unwrap(), 0);
    let r = s
        .http
        .get(s.url("/v1/denylist"))
        .bearer_auth(&keys.read)
        .header("if-none-match", format!("\"{}\"", replica.seq()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // JSON delta shows identifiers.
    let d: Value = s.get_json(&keys.read, "/v1/denylist?since=0").await.json().await.unwrap();
    assert_eq!(d["events"][0], json!({"seq": 1, "kind": "jti", "id": "j0-0", "iss": null, "exp": FAR}));
    assert_eq!(d["to"], 108);
    // A replica ahead of the log is told to take a snapshot.
    expect_error(s.get(&keys.read, "/v1/denylist?since=999").await, StatusCode::GONE, "snapshot_required").await;
    s.stop().await;
}

#[tokio::test]
async fn long_poll_delivers_a_logout_promptly_and_times_out_empty() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Arc::new(Server::start(dir.path()).await);
    let key = replica_key(&s).await;
    // With nothing new, wait=1 answers an empty delta after about a second.
    let t0 = Instant::now();
    let r = s.get(&keys.read, "/v1/denylist?since=0&wait=1").await;
    assert_eq!(r.status(), StatusCode::OK);
    let d = tollgate_core::wire::decode_delta(&r.bytes().await.unwrap(), &key).unwrap();
    assert_eq!((d.from, d.to, d.events.len()), (0, 0, 0));
    assert!(t0.elapsed() >= Duration::from_millis(900));
    for i in 0..5u64 {
        let (s2, rk) = (s.clone(), keys.read.clone());
        let poll = tokio::spawn(async move {
            let r = s2.get(&rk, &format!("/v1/denylist?since={i}&wait=30")).await;
            (Instant::now(), r.bytes().await.unwrap())
        });
        // Wait until the replica is parked on the long-poll.
        super::harness::eventually(Duration::from_secs(10), || async {
            let m = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
            m.lines().any(|l| l == "tollgate_replication_clients 1")
        })
        .await;
        let r = s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": format!("s{i}"), "exp": FAR})).await;
        let acked = Instant::now();
        assert_eq!(r.status(), StatusCode::OK);
        let (got, bytes) = tokio::time::timeout(Duration::from_secs(10), poll).await.unwrap().unwrap();
        let d = tollgate_core::wire::decode_delta(&bytes, &key).unwrap();
        assert_eq!((d.from, d.to), (i, i + 1));
        assert_eq!(d.events[0].entry.id, format!("s{i}"));
        // Far inside the 30 s wait: delivered on the write, not on the timeout.
        assert!(got.saturating_duration_since(acked) < Duration::from_secs(5));
    }
    Arc::try_unwrap(s).ok().unwrap().stop().await;
}

#[tokio::test]
async fn shutdown_answers_parked_long_polls() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let http = s.http.clone();
    let url = s.url("/v1/denylist?since=0&wait=60");
    let rk = keys.read.clone();
    let poll = tokio::spawn(async move { http.get(url).bearer_auth(rk).send().await.unwrap().status() });
    super::harness::eventually(Duration::from_secs(10), || async {
        let m = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
        m.lines().any(|l| l == "tollgate_replication_clients 1")
    })
    .await;
    let t0 = Instant::now();
    s.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(poll.await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn retention_drops_only_expired_old_events_and_sends_replicas_to_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let clock = ManualClock::new(T0_MS);
    let cfg = Config { max_token_lifetime_secs: 3600, ..config(dir.path()) };
    let s = Server::start_with(cfg.clone(), clock.clone()).await;
    let now = T0_MS / 1000;
    // seq 1..=20 expire in 10 minutes; seq 21 lives long; 22..=30 expire soon again.
    let short: Vec<Value> = (0..20).map(|i| json!({"kind": "revoke_token", "jti": format!("a{i}"), "exp": now + 600, "idempotency_key": format!("k{i}")})).collect();
    s.post(&keys.write, "/v1/events", json!({"events": short})).await;
    s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "long", "exp": FAR})).await;
    let more: Vec<Value> =
        (0..9).map(|i| json!({"kind": "revoke_token", "jti": format!("b{i}"), "exp": now + 600})).collect();
    s.post(&keys.write, "/v1/events", json!({"events": more})).await;
    // Too early: nothing is older than the longest token lifetime.
    let c: Value = s.post(&keys.admin, "/v1/admin/compact", json!({})).await.json().await.unwrap();
    assert_eq!(
        (c["dropped_events"].as_u64(), c["floor"].as_u64(), c["checkpoint"].as_u64()),
        (Some(0), Some(0), Some(30))
    );
    clock.advance(2 * 3600 * 1000);
    let c: Value = s.post(&keys.admin, "/v1/admin/compact", json!({})).await.json().await.unwrap();
    // The prefix 1..=20 went; 21 is still live, so retention stops there.
    assert_eq!((c["dropped_events"].as_u64(), c["floor"].as_u64()), (Some(20), Some(20)));
    expect_error(s.get(&keys.read, "/v1/denylist?since=5").await, StatusCode::GONE, "snapshot_required").await;
    let d: Value = s.get_json(&keys.read, "/v1/denylist?since=20").await.json().await.unwrap();
    assert_eq!(d["events"][0]["id"], "long");
    let log: Value = s.get(&keys.admin, "/v1/admin/log").await.json().await.unwrap();
    assert_eq!(log["records"][0]["seq"], 21);
    assert_eq!(log["floor"], 20);
    // Dropped idempotency keys are forgotten with their events.
    let again = json!({"kind": "revoke_token", "jti": "a0", "exp": now + 600, "idempotency_key": "k0"});
    let v: Value = s.post(&keys.write, "/v1/events", again).await.json().await.unwrap();
    assert_eq!(v["accepted"][0], json!({"seq": 31, "kind": "revoke_token", "duplicate": false}));
    s.stop().await;
    // Restart: the checkpoint covers the dropped prefix.
    let s = Server::start_with(cfg, clock.clone()).await;
    assert_eq!(s.view(&keys.read).await["seq"], 31);
    let key = public_key();
    let mut replica = Denylist::default();
    replica.apply_snapshot(&s.get(&keys.read, "/v1/denylist").await.bytes().await.unwrap(), &key).unwrap();
    assert!(replica.contains_sid(None, "long"));
    s.stop().await;
}
