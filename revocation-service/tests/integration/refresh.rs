//! Refresh-token rotation and reuse detection.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_revocation::{Config, ManualClock};

use super::harness::{config, expect_error, Keys, Server, FAR, T0_MS};

fn rot(sid: &str, presented: &str, next: &str) -> Value {
    json!({"sid": sid, "presented_jti": presented, "next_jti": next, "exp": FAR})
}

#[tokio::test]
async fn rotation_chain_retry_reuse_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let start = json!({"sid": "fam", "sub": "alice", "refresh_jti": "r0", "exp": FAR, "iss": "https://idp"});
    let r = s.post(&keys.write, "/v1/sessions", start.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "started", "seq": 1, "duplicate": false}));
    // A retried start is recognised; a different one under the same sid is refused.
    let r = s.post(&keys.write, "/v1/sessions", start).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["seq"], 1);
    let other = json!({"sid": "fam", "sub": "mallory", "refresh_jti": "x", "exp": FAR});
    expect_error(s.post(&keys.write, "/v1/sessions", other).await, StatusCode::CONFLICT, "session_exists").await;
    let bad = json!({"sid": "fam2", "sub": "u", "refresh_jti": "r", "exp": FAR, "idempotency_key": "k"});
    expect_error(s.post(&keys.write, "/v1/sessions", bad).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_event")
        .await;

    let r = s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "r0", "r1")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "rotated", "seq": 2, "duplicate": false, "grace": false})
    );
    let r = s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "r1", "r2")).await;
    assert_eq!(r.json::<Value>().await.unwrap()["seq"], 3);
    // A retry of the last rotation (same presented and next) is not reuse.
    let r = s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "r1", "r2")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "rotated", "seq": 3, "duplicate": true, "grace": false})
    );
    // Errors that append nothing.
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("nope", "r2", "r3")).await,
        StatusCode::NOT_FOUND,
        "unknown_session",
    )
    .await;
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "forged", "r3")).await,
        StatusCode::CONFLICT,
        "unknown_token",
    )
    .await;
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "r2", "r0")).await,
        StatusCode::CONFLICT,
        "jti_conflict",
    )
    .await;
    let wrong_iss = json!({"sid": "fam", "presented_jti": "r2", "next_jti": "r3", "exp": FAR, "iss": "https://evil"});
    expect_error(s.post(&keys.write, "/v1/refresh/rotate", wrong_iss).await, StatusCode::CONFLICT, "issuer_mismatch")
        .await;
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", json!({"sid": "fam"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_event",
    )
    .await;
    assert_eq!(s.view(&keys.read).await["seq"], 3);
    assert_eq!(s.view(&keys.read).await["count"], 0);
    // Reuse of an earlier token revokes the whole family, scoped to its issuer.
    let v = expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "r0", "r9")).await,
        StatusCode::CONFLICT,
        "reuse_detected",
    )
    .await;
    assert_eq!(v["seq"], 4);
    let view = s.view(&keys.read).await;
    assert_eq!(view["entries"], json!([{"kind": "sid", "id": "fam", "iss": "https://idp", "exp": FAR, "seq": 4}]));
    // After that even the current token is refused, and reuse again appends nothing.
    let v = expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "r2", "r3")).await,
        StatusCode::CONFLICT,
        "session_revoked",
    )
    .await;
    assert_eq!(v["revoked_seq"], 4);
    let v = expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("fam", "r1", "r3")).await,
        StatusCode::CONFLICT,
        "reuse_detected",
    )
    .await;
    assert_eq!(v["seq"], Value::Null);
    let log: Value = s.get(&keys.admin, "/v1/admin/log").await.json().await.unwrap();
    let kinds: Vec<&str> = log["records"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["session_start", "rotation", "rotation", "reuse_detected"]);
    assert_eq!(log["records"][3]["jti"], "r0");
    // Logout through /v1/events also ends a family.
    s.post(&keys.write, "/v1/sessions", json!({"sid": "f2", "sub": "bob", "refresh_jti": "a0", "exp": FAR})).await;
    s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "f2", "exp": FAR})).await;
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("f2", "a0", "a1")).await,
        StatusCode::CONFLICT,
        "session_revoked",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn concurrent_rotations_of_one_token_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = std::sync::Arc::new(Server::start(dir.path()).await);
    for round in 0..3 {
        let sid = format!("race-{round}");
        s.post(&keys.write, "/v1/sessions", json!({"sid": sid, "sub": "u", "refresh_jti": "t0", "exp": FAR})).await;
        let mut tasks = Vec::new();
        for i in 0..24 {
            let (s, key, sid) = (s.clone(), keys.write.clone(), sid.clone());
            tasks.push(tokio::spawn(async move {
                let r = s.post(&key, "/v1/refresh/rotate", rot(&sid, "t0", &format!("t1-{i}"))).await;
                let status = r.status();
                (status, r.json::<Value>().await.unwrap())
            }));
        }
        let mut won = 0;
        for t in tasks {
            let (status, body) = t.await.unwrap();
            match status {
                StatusCode::OK => won += 1,
                StatusCode::CONFLICT => {
                    let e = body["error"].as_str().unwrap();
                    assert!(e == "reuse_detected" || e == "session_revoked", "{body}");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        // The losers saw reuse: the family is revoked.
        let view = s.view(&keys.read).await;
        assert!(view["entries"].as_array().unwrap().iter().any(|e| e["id"] == sid.as_str()), "{view}");
    }
    std::sync::Arc::try_unwrap(s).ok().unwrap().stop().await;
}

#[tokio::test]
async fn grace_window_lets_only_the_immediate_predecessor_back_in_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let clock = ManualClock::new(T0_MS);
    let s = Server::start_with(Config { refresh_grace_secs: 10, ..config(dir.path()) }, clock.clone()).await;
    s.post(&keys.write, "/v1/sessions", json!({"sid": "g", "sub": "u", "refresh_jti": "r0", "exp": FAR})).await;
    s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r0", "r1")).await;
    s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r1", "r2")).await;
    clock.advance(5_000);
    // r1 (immediate predecessor) within 10 s: accepted, marked grace.
    let r = s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r1", "r2b")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["grace"], true);
    // r0 is older than the predecessor: reuse, even inside the window.
    let s2 =
        s.post(&keys.write, "/v1/sessions", json!({"sid": "h", "sub": "u", "refresh_jti": "q0", "exp": FAR})).await;
    assert_eq!(s2.status(), StatusCode::CREATED);
    s.post(&keys.write, "/v1/refresh/rotate", rot("h", "q0", "q1")).await;
    s.post(&keys.write, "/v1/refresh/rotate", rot("h", "q1", "q2")).await;
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("h", "q0", "q3")).await,
        StatusCode::CONFLICT,
        "reuse_detected",
    )
    .await;
    // After the window, the predecessor is reuse too.
    clock.advance(10_001);
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r1", "r3")).await,
        StatusCode::CONFLICT,
        "reuse_detected",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn grace_window_runs_from_the_replacement_and_grace_uses_do_not_extend_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let clock = ManualClock::new(T0_MS);
    let cfg = Config { refresh_grace_secs: 10, ..config(dir.path()) };
    let s = Server::start_with(cfg.clone(), clock.clone()).await;
    s.post(&keys.write, "/v1/sessions", json!({"sid": "g", "sub": "u", "refresh_jti": "r0", "exp": FAR})).await;
    s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r0", "r1")).await;
    // r1 is replaced at T0: its grace window is [T0, T0 + 10 s].
    let r = s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r1", "r2")).await;
    assert_eq!(r.json::<Value>().await.unwrap()["grace"], false);
    // Grace uses inside the window are accepted, more than once (a lost response
    // retried twice, two tabs); each one makes its successor current.
    for (at, next) in [(6_000, "r3"), (9_000, "r4")] {
        clock.set(T0_MS + at);
        let r = s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r1", next)).await;
        assert_eq!(r.status(), StatusCode::OK, "{next}");
        assert_eq!(r.json::<Value>().await.unwrap()["grace"], true, "{next}");
    }
    // The window survives a restart (it is part of the stored family).
    s.stop().await;
    let s = Server::start_with(cfg, clock.clone()).await;
    // 11 s after r1 was replaced, 2 s after its last grace use: reuse, not another
    // grace rotation (the window does not restart with every grace use).
    clock.set(T0_MS + 11_000);
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r1", "r5")).await,
        StatusCode::CONFLICT,
        "reuse_detected",
    )
    .await;
    expect_error(
        s.post(&keys.write, "/v1/refresh/rotate", rot("g", "r4", "r6")).await,
        StatusCode::CONFLICT,
        "session_revoked",
    )
    .await;
    s.stop().await;
}
