//! Who may revoke what and for how long: issuer-scoped keys, bounded times, per-key
//! rate limits and quotas, entries kept for the edges' leeway, the rotation retry
//! window, `/metrics` behind a key; and, against the real binary, a signing key file
//! that stops parsing stops the service, and the data directory is private.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_revocation::{apikeys, Config, Issuers, ManualClock, Scope};

use super::harness::{config, eventually, expect_error, Keys, Server, FAR, T0_MS};

const A: &str = "https://a.example";
const B: &str = "https://b.example";

fn key(dir: &Path, name: &str, scopes: &[Scope], issuers: Issuers) -> String {
    apikeys::create(dir, name, scopes, &issuers).unwrap().1
}

#[tokio::test]
async fn issuer_scoped_keys_write_only_for_their_issuers() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let only_a = key(dir.path(), "a", &[Scope::EventsWrite], Issuers::Only(vec![A.into()]));
    let a_and_b = key(dir.path(), "ab", &[Scope::EventsWrite], Issuers::Only(vec![A.into(), B.into()]));
    let only_b = key(dir.path(), "b", &[Scope::EventsWrite], Issuers::Only(vec![B.into()]));
    let s = Server::start(dir.path()).await;
    // Another issuer's event: 403, alone or inside a batch, and nothing appended.
    let r = s.post(&only_a, "/v1/events", json!({"kind": "logout", "sid": "s1", "iss": B, "exp": FAR})).await;
    expect_error(r, StatusCode::FORBIDDEN, "forbidden_issuer").await;
    let batch = json!({"events": [
        {"kind": "revoke_token", "jti": "ok", "iss": A, "exp": FAR},
        {"kind": "revoke_token", "jti": "not-mine", "iss": B, "exp": FAR},
    ]});
    let v = expect_error(s.post(&only_a, "/v1/events", batch).await, StatusCode::FORBIDDEN, "forbidden_issuer").await;
    assert!(v["detail"].as_str().unwrap().starts_with("events[1].iss"), "{v}");
    assert_eq!(s.view(&keys.read).await["seq"], 0);
    // Without `iss`: a one-issuer key's event is scoped to its issuer (never to every
    // issuer); a several-issuer key must say which.
    let r = s.post(&only_a, "/v1/events", json!({"kind": "logout", "sid": "s1", "exp": FAR})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view = s.view(&keys.read).await;
    assert_eq!(view["entries"][0]["iss"], A, "{view}");
    let r = s.post(&a_and_b, "/v1/events", json!({"kind": "revoke_token", "jti": "j", "exp": FAR})).await;
    let v = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_event").await;
    assert!(v["detail"].as_str().unwrap().starts_with("iss: required"), "{v}");
    // Only an all-issuers key posts an unscoped entry.
    let r = s.post(&keys.write, "/v1/events", json!({"kind": "revoke_token", "jti": "everywhere", "exp": FAR})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(s.view(&keys.read).await["entries"][1]["iss"], Value::Null);
    // Refresh families: B's session cannot be rotated or ended by A's key.
    let start = json!({"sid": "fam-b", "sub": "u", "refresh_jti": "r0", "exp": FAR});
    assert_eq!(s.post(&only_b, "/v1/sessions", start).await.status(), StatusCode::CREATED);
    let rot = |p: &str, n: &str| json!({"sid": "fam-b", "presented_jti": p, "next_jti": n, "exp": FAR});
    let r = s.post(&only_a, "/v1/refresh/rotate", rot("r0", "r1")).await;
    expect_error(r, StatusCode::FORBIDDEN, "forbidden_issuer").await;
    let r = s.post(&only_a, "/v1/events", json!({"kind": "logout", "sid": "fam-b", "exp": FAR})).await;
    assert_eq!(r.status(), StatusCode::OK, "a logout for A's own tokens of that sid is A's to post");
    let r = s.post(&only_b, "/v1/refresh/rotate", rot("r0", "r1")).await;
    assert_eq!(r.status(), StatusCode::OK, "B's session was not ended by A's logout");
    let r = s.post(&only_b, "/v1/events", json!({"kind": "logout", "sid": "fam-b", "exp": FAR})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.post(&only_b, "/v1/refresh/rotate", rot("r1", "r2")).await;
    expect_error(r, StatusCode::CONFLICT, "session_revoked").await;
    // A key of an older key file, with events:write but no issuer scope, writes nothing.
    let file = apikeys::key_file(dir.path());
    let mut kf: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    for k in kf["keys"].as_array_mut().unwrap() {
        if k["name"] == "a" {
            k.as_object_mut().unwrap().remove("issuers");
        }
    }
    std::fs::write(&file, serde_json::to_vec(&kf).unwrap()).unwrap();
    let ev = json!({"kind": "revoke_token", "jti": "legacy", "iss": A, "exp": FAR});
    eventually(Duration::from_secs(10), || async {
        s.post(&only_a, "/v1/events", ev.clone()).await.status() == StatusCode::FORBIDDEN
    })
    .await;
    expect_error(s.post(&only_a, "/v1/events", ev).await, StatusCode::FORBIDDEN, "issuer_scope_missing").await;
    s.stop().await;
}

#[tokio::test]
async fn exp_and_before_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let now = T0_MS / 1000;
    let day = 86_400;
    let bad = [
        json!({"kind": "revoke_token", "jti": "j", "exp": now + 31 * day}),
        json!({"kind": "revoke_token", "jti": "j", "exp": T0_MS + 60_000}),
        json!({"kind": "revoke_token", "jti": "j", "exp": 946_684_799u64}),
        json!({"kind": "logout", "sid": "s", "exp": 5}),
        json!({"kind": "revoke_subject", "sub": "u", "before": 5, "exp": FAR}),
        json!({"kind": "revoke_subject", "sub": "u", "before": now + 40 * day, "exp": FAR}),
    ];
    for b in bad {
        let v = expect_error(s.post(&keys.write, "/v1/events", b.clone()).await, StatusCode::BAD_REQUEST, "bad_expiry")
            .await;
        assert!(v["detail"].is_string(), "{b} → {v}");
    }
    let v = expect_error(
        s.post(&keys.write, "/v1/events", json!({"kind": "revoke_token", "jti": "j", "exp": T0_MS})).await,
        StatusCode::BAD_REQUEST,
        "bad_expiry",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("milliseconds"), "{v}");
    let session = json!({"sid": "s", "sub": "u", "refresh_jti": "r0", "exp": now + 365 * day});
    expect_error(s.post(&keys.write, "/v1/sessions", session).await, StatusCode::BAD_REQUEST, "bad_expiry").await;
    let rotate = json!({"sid": "s", "presented_jti": "r0", "next_jti": "r1", "exp": T0_MS});
    expect_error(s.post(&keys.write, "/v1/refresh/rotate", rotate).await, StatusCode::BAD_REQUEST, "bad_expiry").await;
    assert_eq!(s.view(&keys.read).await["seq"], 0, "nothing was appended");
    // Exactly 30 days ahead is fine; the bound is configurable.
    let ok = json!({"kind": "revoke_token", "jti": "j", "exp": now + 30 * day});
    assert_eq!(s.post(&keys.write, "/v1/events", ok).await.status(), StatusCode::OK);
    s.stop().await;
    let cfg = Config { max_expiry_ahead_secs: 90 * day, ..config(dir.path()) };
    let s = Server::start_with(cfg, ManualClock::new(T0_MS)).await;
    let later = json!({"kind": "revoke_token", "jti": "j2", "exp": now + 60 * day});
    assert_eq!(s.post(&keys.write, "/v1/events", later).await.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn per_key_rate_limit_and_live_entry_quota() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let other = key(dir.path(), "other", &[Scope::EventsWrite], Issuers::Any);
    let metrics_key = key(dir.path(), "prom", &[Scope::MetricsRead], Issuers::None);
    let clock = ManualClock::new(T0_MS);
    let cfg = Config {
        key_events_per_sec: 10,
        key_burst_events: 20,
        key_max_live_entries: 30,
        max_events_per_request: 20,
        metrics_require_key: true,
        ..config(dir.path())
    };
    let s = Server::start_with(cfg, clock.clone()).await;
    let batch = |from: usize, n: usize| {
        let events: Vec<Value> =
            (from..from + n).map(|i| json!({"kind": "revoke_token", "jti": format!("j{i}"), "exp": FAR})).collect();
        json!({ "events": events })
    };
    assert_eq!(s.post(&keys.write, "/v1/events", batch(0, 20)).await.status(), StatusCode::OK);
    let r = s.post(&keys.write, "/v1/events", batch(20, 1)).await;
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another key has its own bucket.
    assert_eq!(s.post(&other, "/v1/events", batch(100, 5)).await.status(), StatusCode::OK);
    // One second later, ten more.
    clock.advance(1000);
    assert_eq!(s.post(&keys.write, "/v1/events", batch(20, 10)).await.status(), StatusCode::OK);
    // 30 live entries: the quota is full, however long one waits, until they expire.
    clock.advance(60_000);
    let r = s.post(&keys.write, "/v1/events", batch(30, 1)).await;
    assert!(r.headers().get("retry-after").is_some());
    let v = expect_error(r, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded").await;
    assert!(v["detail"].as_str().unwrap().contains("30"), "{v}");
    // The limits, the counts and the refusals are in /metrics.
    let m = s.get(&metrics_key, "/metrics").await.text().await.unwrap();
    let write_id = keys.write.split('_').nth(1).unwrap();
    for line in [
        "tollgate_key_events_per_second_limit 10".to_string(),
        "tollgate_key_burst_events_limit 20".to_string(),
        "tollgate_key_live_entries_limit 30".to_string(),
        format!("tollgate_key_live_entries{{key=\"{write_id}\"}} 30"),
        "tollgate_key_limited_total{limit=\"rate\"} 1".to_string(),
        "tollgate_key_limited_total{limit=\"quota\"} 1".to_string(),
    ] {
        assert!(m.lines().any(|l| l == line), "metrics lack {line:?}:\n{m}");
    }
    s.stop().await;
}

#[tokio::test]
async fn entries_outlive_exp_by_the_edge_leeway() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let now = T0_MS / 1000;
    let s = Server::start(dir.path()).await;
    let ev = json!({"kind": "revoke_token", "jti": "short", "exp": now + 10});
    assert_eq!(s.post(&keys.write, "/v1/events", ev).await.status(), StatusCode::OK);
    s.stop().await;
    // 4 minutes after `exp`: an edge with the default 5-minute leeway would still
    // accept the token, so the entry is still there (start-up prunes with the leeway).
    let at = |secs: u64| ManualClock::new((now + secs) * 1000);
    let s = Server::start_with(config(dir.path()), at(10 + 240)).await;
    assert_eq!(s.view(&keys.read).await["count"], 1);
    // Compaction keeps it too.
    let r: Value = s.post(&keys.admin, "/v1/admin/compact", json!({})).await.json().await.unwrap();
    assert_eq!(r["dropped_events"], 0, "{r}");
    s.stop().await;
    let s = Server::start_with(config(dir.path()), at(10 + 301)).await;
    assert_eq!(s.view(&keys.read).await["count"], 0, "pruned once exp + leeway passed");
    s.stop().await;
    // The leeway is configurable.
    let cfg = Config { edge_leeway_secs: 0, ..config(dir.path()) };
    let s = Server::start_with(cfg, at(0)).await;
    let ev = json!({"kind": "revoke_token", "jti": "short-2", "exp": now + 10});
    assert_eq!(s.post(&keys.write, "/v1/events", ev).await.status(), StatusCode::OK);
    s.stop().await;
    let cfg = Config { edge_leeway_secs: 0, ..config(dir.path()) };
    let s = Server::start_with(cfg, at(11)).await;
    assert_eq!(s.view(&keys.read).await["count"], 0);
    s.stop().await;
}

#[tokio::test]
async fn a_rotation_retried_after_the_retry_window_is_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let clock = ManualClock::new(T0_MS);
    let s = Server::start_with(config(dir.path()), clock.clone()).await;
    let start = json!({"sid": "f", "sub": "u", "refresh_jti": "r0", "exp": FAR});
    assert_eq!(s.post(&keys.write, "/v1/sessions", start).await.status(), StatusCode::CREATED);
    let rot = json!({"sid": "f", "presented_jti": "r0", "next_jti": "r1", "exp": FAR});
    let first: Value = s.post(&keys.write, "/v1/refresh/rotate", rot.clone()).await.json().await.unwrap();
    clock.advance(29_000);
    let again: Value = s.post(&keys.write, "/v1/refresh/rotate", rot.clone()).await.json().await.unwrap();
    assert_eq!((again["seq"].clone(), again["duplicate"].clone()), (first["seq"].clone(), json!(true)));
    // The same request replayed 31 s after the rotation: reuse, the family is revoked.
    clock.advance(2_000);
    let r = s.post(&keys.write, "/v1/refresh/rotate", rot).await;
    expect_error(r, StatusCode::CONFLICT, "reuse_detected").await;
    let r = s.post(
        &keys.write,
        "/v1/refresh/rotate",
        json!({"sid": "f", "presented_jti": "r1", "next_jti": "r2", "exp": FAR}),
    );
    expect_error(r.await, StatusCode::CONFLICT, "session_revoked").await;
    s.stop().await;
}

#[tokio::test]
async fn metrics_need_a_metrics_read_key_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let prom = key(dir.path(), "prom", &[Scope::MetricsRead], Issuers::None);
    let s =
        Server::start_with(Config { metrics_require_key: true, ..config(dir.path()) }, ManualClock::new(T0_MS)).await;
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    expect_error(s.get(&keys.read, "/metrics").await, StatusCode::FORBIDDEN, "forbidden").await;
    for k in [&prom, &keys.admin] {
        let r = s.get(k, "/metrics").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("tollgate_log_head_seq 0"));
    }
    assert!(Config::default().metrics_require_key, "on by default");
    s.stop().await;
}

/// The binary on `data`, with its stdout's listening line read; stderr to `log`.
fn spawn(data: &Path, log: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-revocation"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("TOLLGATE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("tollgate-revocation listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    (child, rx)
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "the service did not stop within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_file_that_stops_parsing_stops_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("service.log");
    let (mut child, rx) = spawn(&data, &log);
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("started");
    let base = format!("http://{addr}");
    let jwk: Value = reqwest::get(format!("{base}/v1/denylist/key")).await.unwrap().json().await.unwrap();
    // A valid new key is adopted (no silent keeping of the old one).
    let key_file = data.join("signing-key");
    let replace = |text: &str| {
        let tmp = data.join("signing-key.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &key_file).unwrap();
    };
    replace(&"11".repeat(32));
    eventually(Duration::from_secs(15), || async {
        let now: Value = reqwest::get(format!("{base}/v1/denylist/key")).await.unwrap().json().await.unwrap();
        now["kid"] != jwk["kid"]
    })
    .await;
    // A key file that no longer parses: the service stops serving, exits non-zero, and
    // says why.
    replace("not a key");
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(!st.success(), "exit status {st}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("signing key") && text.contains("fail closed"), "{text}");
    // And it does not start on it either.
    let (mut again, _rx) = spawn(&data, &log);
    let st = wait_exit(&mut again, Duration::from_secs(30));
    assert!(!st.success());
    assert!(std::fs::read_to_string(&log).unwrap().contains("refusing to start"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A directory left world-readable by another tool, with a key file in it.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    key(&data, "edge", &[Scope::DenylistRead], Issuers::None);
    std::fs::set_permissions(apikeys::key_file(&data), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (mut child, rx) = spawn(&data, &dir.path().join("service.log"));
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("started");
    // A checkpoint, so the service writes one more file of its own.
    let admin = key(&data, "ops", &[Scope::Admin], Issuers::None);
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(10), || async {
        let r = http.post(format!("http://{addr}/v1/admin/checkpoint")).bearer_auth(&admin).send().await.unwrap();
        r.status() == StatusCode::OK
    })
    .await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    fn walk(p: &Path, seen: &mut Vec<(String, u32)>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        seen.push((p.display().to_string(), m.permissions().mode() & 0o777));
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), seen);
            }
        }
    }
    let mut seen = Vec::new();
    walk(&data, &mut seen);
    assert!(seen.len() > 4, "{seen:?}");
    for (path, mode) in seen {
        let dir = std::fs::metadata(&path).unwrap().is_dir();
        assert!(mode & 0o077 == 0, "{path} has mode {mode:o}");
        assert_eq!(mode, if dir { 0o700 } else { 0o600 }, "{path}");
    }
}
