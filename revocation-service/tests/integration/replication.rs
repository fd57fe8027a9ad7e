//! Snapshots, deltas, long-polling, retention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_core::jwk::P256Key;
use tollgate_core::Denylist;
use tollgate_revocation::{Clock, Config, ManualClock};

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
                    json!({"kind": "revoke_subject", "sub": format!("u{}", i % 3), "before": 1_700_000_000 + round, "exp": FAR})
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

/// What the test posted and was acknowledged: `(seq, jti, exp)`.
type Acked = Vec<(u64, String, u64)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkpoints_and_compactions_never_leave_an_unusable_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let clock = ManualClock::new(T0_MS);
    // Retention may drop any event received before now whose entry has expired (no
    // edge leeway here); no shutdown checkpoint, so the restart sees what the admin
    // calls left behind.
    let cfg =
        Config { max_token_lifetime_secs: 0, edge_leeway_secs: 0, checkpoint_on_shutdown: false, ..config(dir.path()) };
    let s = Arc::new(Server::start_with(cfg.clone(), clock.clone()).await);
    // The writer moves the clock on 1 s a round and posts 20 tokens that live 3 s, so
    // the log keeps gaining events that retention drops a few rounds later.
    let writer = {
        let (s, key, clock) = (s.clone(), keys.write.clone(), clock.clone());
        tokio::spawn(async move {
            let mut acked: Acked = Vec::new();
            for round in 0..40 {
                clock.advance(1000);
                let exp = clock.now_secs() + 3;
                let events: Vec<Value> = (0..20)
                    .map(|i| json!({"kind": "revoke_token", "jti": format!("e{round}-{i}"), "exp": exp}))
                    .collect();
                let r = s.post(&key, "/v1/events", json!({"events": events})).await;
                assert_eq!(r.status(), StatusCode::OK);
                let v: Value = r.json().await.unwrap();
                for (i, a) in v["accepted"].as_array().unwrap().iter().enumerate() {
                    acked.push((a["seq"].as_u64().unwrap(), format!("e{round}-{i}"), exp));
                }
            }
            acked
        })
    };
    // Operators (or a client retrying after a timeout) checkpoint and compact at once,
    // for as long as the writer runs.
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut ops = Vec::new();
    for t in 0..6 {
        let (s, key, writing) = (s.clone(), keys.admin.clone(), writing.clone());
        ops.push(tokio::spawn(async move {
            let mut ok = 0;
            let mut i = 0;
            while i < 8 || writing.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let path = if (t + i) % 2 == 0 { "/v1/admin/compact" } else { "/v1/admin/checkpoint" };
                let r = s.post(&key, path, json!({})).await;
                match r.status() {
                    StatusCode::OK => ok += 1,
                    StatusCode::CONFLICT => {
                        let v: Value = r.json().await.unwrap();
                        assert_eq!(v["error"], "maintenance_running", "{v}");
                    }
                    other => panic!("{path}: {other} {}", r.text().await.unwrap()),
                }
            }
            ok
        }));
    }
    let acked = writer.await.unwrap();
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut done = 0;
    for o in ops {
        done += o.await.unwrap();
    }
    assert!(done > 0);
    let before = s.view(&keys.read).await;
    Arc::try_unwrap(s).ok().unwrap().stop().await;

    // The service starts again on the same directory and has every acknowledged event.
    let s = Server::start_with(cfg, clock.clone()).await;
    let now = clock.now_secs();
    let after = s.view(&keys.read).await;
    assert_eq!(after["seq"], before["seq"]);
    let live: Vec<&Value> =
        before["entries"].as_array().unwrap().iter().filter(|e| e["exp"].as_u64().unwrap() >= now).collect();
    assert_eq!(after["entries"].as_array().unwrap().iter().collect::<Vec<_>>(), live);
    let log: Value = s.get(&keys.admin, "/v1/admin/log?limit=1").await.json().await.unwrap();
    let floor = log["floor"].as_u64().unwrap();
    assert!(floor > 0, "retention dropped nothing: the test did not exercise it");
    let mut stored = std::collections::HashMap::new();
    let mut from = floor + 1;
    loop {
        let page: Value =
            s.get(&keys.admin, &format!("/v1/admin/log?from={from}&limit=1000")).await.json().await.unwrap();
        let records = page["records"].as_array().unwrap();
        let Some(last) = records.last() else { break };
        for r in records {
            stored.insert(r["seq"].as_u64().unwrap(), r["jti"].as_str().unwrap().to_string());
        }
        from = last["seq"].as_u64().unwrap() + 1;
    }
    for (seq, jti, exp) in &acked {
        if *seq > floor {
            assert_eq!(stored.get(seq), Some(jti), "acked event {seq} missing after restart");
        } else {
            assert!(*exp < now, "event {seq} dropped while still live");
        }
    }
    assert_eq!(stored.len() as u64, acked.last().unwrap().0 - floor, "log after the floor is gap-free");
    // Nothing else running: both calls succeed.
    for path in ["/v1/admin/compact", "/v1/admin/checkpoint"] {
        assert_eq!(s.post(&keys.admin, path, json!({})).await.status(), StatusCode::OK, "{path}");
    }
    s.stop().await;
}
