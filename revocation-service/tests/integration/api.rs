//! Endpoints, errors, auth and scopes, idempotency, restart recovery.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_revocation::{apikeys, Config, Issuers, ManualClock, Scope};

use super::harness::{config, eventually, expect_error, Keys, Server, FAR, T0_MS};

#[tokio::test]
async fn health_metrics_key_and_unknown_routes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ready", "seq": 0}));
    let r = s.http.get(s.url("/v1/denylist/key")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), super::harness::signer().public_jwk());
    s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "s", "exp": FAR})).await;
    let m = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "tollgate_events_total{kind=\"logout\"} 1",
        "tollgate_denylist_entries{kind=\"sid\"} 1",
        "tollgate_log_length 1",
        "tollgate_flush_seconds_count 1",
        "tollgate_replication_clients 0",
    ] {
        assert!(m.lines().any(|l| l == line), "metrics lack {line:?}:\n{m}");
    }
    expect_error(s.http.get(s.url("/nope")).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
    expect_error(
        s.http.get(s.url("/v1/events")).send().await.unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn auth_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let ev = json!({"kind": "revoke_token", "jti": "j", "exp": FAR});
    let r = s.http.post(s.url("/v1/events")).json(&ev).send().await.unwrap();
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = s.http.post(s.url("/v1/events")).header("authorization", "Basic abc").json(&ev).send().await.unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let forged = format!("{}x", &keys.write[..keys.write.len() - 1]);
    expect_error(s.post(&forged, "/v1/events", ev.clone()).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Scopes: write cannot read, read cannot write, neither can administer.
    for (key, path) in [(&keys.read, "/v1/events"), (&keys.read, "/v1/sessions"), (&keys.read, "/v1/refresh/rotate")] {
        expect_error(s.post(key, path, json!({})).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    expect_error(s.get(&keys.write, "/v1/denylist").await, StatusCode::FORBIDDEN, "forbidden").await;
    expect_error(s.get(&keys.write, "/v1/denylist?since=0").await, StatusCode::FORBIDDEN, "forbidden").await;
    for path in ["/v1/admin/checkpoint", "/v1/admin/compact"] {
        expect_error(s.post(&keys.write, path, json!({})).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    expect_error(s.get(&keys.read, "/v1/admin/log").await, StatusCode::FORBIDDEN, "forbidden").await;
    // Admin can do everything.
    assert_eq!(s.post(&keys.admin, "/v1/events", ev.clone()).await.status(), StatusCode::OK);
    assert_eq!(s.get(&keys.admin, "/v1/denylist").await.status(), StatusCode::OK);
    // A key created while the service runs starts working; a revoked one stops.
    let (_, fresh) = apikeys::create(&s.dir, "late", &[Scope::EventsWrite], &Issuers::Any).unwrap();
    eventually(Duration::from_secs(10), || async { s.post(&fresh, "/v1/events", ev.clone()).await.status() == 200 })
        .await;
    apikeys::revoke(&s.dir, "late").unwrap();
    eventually(Duration::from_secs(10), || async { s.post(&fresh, "/v1/events", ev.clone()).await.status() == 401 })
        .await;
    assert_eq!(s.post(&keys.write, "/v1/events", ev.clone()).await.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn events_of_every_kind_are_logged_and_listed_as_posted() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let r = s.post(&keys.write, "/v1/events", json!({"kind": "revoke_token", "jti": "tok-1", "exp": FAR})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": [{"seq": 1, "kind": "revoke_token", "duplicate": false}]})
    );
    let batch = json!({"events": [
        {"kind": "logout", "sid": "sess/é", "iss": "https://idp.example", "exp": FAR},
        {"kind": "revoke_subject", "sub": "user-7", "before": 1_700_000_000u64, "exp": FAR + 1},
        {"kind": "reuse_detected", "sid": "fam-9", "jti": "r-old", "exp": FAR + 2},
    ]});
    let v: Value = s.post(&keys.write, "/v1/events", batch).await.json().await.unwrap();
    let seqs: Vec<u64> = v["accepted"].as_array().unwrap().iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [2, 3, 4]);
    let view = s.view(&keys.read).await;
    assert_eq!(view["seq"], 4);
    assert_eq!(view["count"], 4);
    let e = &view["entries"];
    assert_eq!(e[0], json!({"kind": "jti", "id": "tok-1", "iss": null, "exp": FAR, "seq": 1}));
    assert_eq!(e[1], json!({"kind": "sid", "id": "sess/é", "iss": "https://idp.example", "exp": FAR, "seq": 2}));
    assert_eq!(
        e[2],
        json!({"kind": "sub", "id": "user-7", "iss": null, "exp": FAR + 1, "seq": 3, "before": 1_700_000_000u64})
    );
    assert_eq!(e[3], json!({"kind": "sid", "id": "fam-9", "iss": null, "exp": FAR + 2, "seq": 4}));
    // The admin log shows every field, the posting key's id and the receive time.
    let log: Value = s.get(&keys.admin, "/v1/admin/log?from=3&limit=1").await.json().await.unwrap();
    let rec = &log["records"][0];
    assert_eq!(rec["seq"], 3);
    assert_eq!(rec["kind"], "revoke_subject");
    assert_eq!(rec["received_ms"], T0_MS);
    assert_eq!(rec["key_id"].as_str().unwrap(), keys.write.split('_').nth(1).unwrap());
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let cfg = Config { max_body_bytes: 4096, ..config(dir.path()) };
    let s = Server::start_with(cfg, ManualClock::new(T0_MS)).await;
    let post = |b: Value| s.post(&keys.write, "/v1/events", b);
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            json!({"kind": "revoke_token", "jti": 5, "exp": FAR}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            "jti: expected a string",
        ),
        (
            json!({"kind": "teleport", "exp": FAR}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            "kind: unknown event kind",
        ),
        (json!({"kind": "logout", "exp": FAR}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", "sid: missing"),
        (json!({"kind": "logout", "sid": "s"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", "exp: missing"),
        (
            json!({"kind": "logout", "sid": "s", "exp": "soon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            "exp: expected",
        ),
        (
            json!({"kind": "logout", "sid": "s", "exp": 1, "extra": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            "extra: unknown field",
        ),
        (
            json!({"kind": "rotation", "sid": "s", "from_jti": "a", "to_jti": "b", "exp": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            "kind: rotation events are recorded through their own endpoint",
        ),
        (json!({"events": []}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", "events: must not be empty"),
        (json!({"events": {}}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", "events: expected an array"),
        (
            json!({"events": [{"kind": "logout", "sid": "s", "exp": 1}, {"kind": "logout", "exp": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            "events[1].sid: missing",
        ),
        (json!([1, 2]), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", "$: expected an object"),
    ];
    for (body, status, kind, detail) in cases {
        let v = expect_error(post(body.clone()).await, status, kind).await;
        assert!(v["detail"].as_str().unwrap().starts_with(detail), "{body} → {v}");
    }
    let raw = |b: &[u8]| s.post_raw(&keys.write, "/v1/events", b.to_vec());
    let v = expect_error(raw(b"{\"kind\": ").await, StatusCode::BAD_REQUEST, "bad_json").await;
    assert!(v["detail"].as_str().unwrap().contains("EOF"), "{v}");
    expect_error(raw(b"").await, StatusCode::BAD_REQUEST, "bad_json").await;
    let v = expect_error(
        raw(br#"{"kind":"logout","sid":"a","sid":"b","exp":1}"#).await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("duplicate"), "{v}");
    let big = format!(r#"{{"kind":"logout","sid":"{}","exp":1}}"#, "x".repeat(5000));
    expect_error(raw(big.as_bytes()).await, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    let long_id = json!({"kind": "logout", "sid": "x".repeat(1025), "exp": 1});
    let v = expect_error(post(long_id).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_event").await;
    assert!(v["detail"].as_str().unwrap().contains("longer than 1024 bytes"));
    // Too many events (body limit raised so the count is what trips).
    s.stop().await;
    let s = Server::start_with(config(dir.path()), ManualClock::new(T0_MS)).await;
    let many: Vec<Value> =
        (0..1001).map(|i| json!({"kind": "revoke_token", "jti": format!("j{i}"), "exp": 1})).collect();
    expect_error(
        s.post(&keys.write, "/v1/events", json!({"events": many})).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_events",
    )
    .await;
    let ok: Vec<Value> =
        (0..1000).map(|i| json!({"kind": "revoke_token", "jti": format!("j{i}"), "exp": FAR})).collect();
    let v: Value = s.post(&keys.write, "/v1/events", json!({"events": ok})).await.json().await.unwrap();
    assert_eq!(v["accepted"].as_array().unwrap().len(), 1000);
    // Bad queries.
    for q in ["?since=x", "?since=-1", "?wait=3", "?since=0&since=1", "?what=1"] {
        expect_error(s.get(&keys.read, &format!("/v1/denylist{q}")).await, StatusCode::BAD_REQUEST, "invalid_query")
            .await;
    }
    // Nothing was appended by any refused request.
    assert_eq!(s.view(&keys.read).await["seq"], 1000);
    s.stop().await;
}

#[tokio::test]
async fn idempotency_keys_return_the_original_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let batch = json!({"events": [
        {"kind": "revoke_token", "jti": "a", "exp": FAR, "idempotency_key": "k-a"},
        {"kind": "revoke_token", "jti": "b", "exp": FAR},
        {"kind": "revoke_token", "jti": "a", "exp": FAR, "idempotency_key": "k-a"},
    ]});
    let first: Value = s.post(&keys.write, "/v1/events", batch.clone()).await.json().await.unwrap();
    assert_eq!(
        first["accepted"],
        json!([
            {"seq": 1, "kind": "revoke_token", "duplicate": false},
            {"seq": 2, "kind": "revoke_token", "duplicate": false},
            {"seq": 1, "kind": "revoke_token", "duplicate": true},
        ])
    );
    let retry: Value = s.post(&keys.write, "/v1/events", batch).await.json().await.unwrap();
    assert_eq!(retry["accepted"][0], json!({"seq": 1, "kind": "revoke_token", "duplicate": true}));
    assert_eq!(retry["accepted"][1], json!({"seq": 3, "kind": "revoke_token", "duplicate": false}));
    // Same key, different event: refused, nothing appended.
    let other = json!({"kind": "revoke_token", "jti": "zzz", "exp": FAR, "idempotency_key": "k-a"});
    expect_error(
        s.post(&keys.write, "/v1/events", other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_conflict",
    )
    .await;
    assert_eq!(s.view(&keys.read).await["seq"], 3);
    // Keys are per API key: another key's "k-a" is its own.
    let (_, w2) = apikeys::create(&s.dir, "origin-2", &[Scope::EventsWrite], &Issuers::Any).unwrap();
    let mine = json!({"kind": "revoke_token", "jti": "q", "exp": FAR, "idempotency_key": "k-a"});
    eventually(Duration::from_secs(10), || async { s.post(&w2, "/v1/events", mine.clone()).await.status() == 200 })
        .await;
    assert_eq!(s.view(&keys.read).await["seq"], 4);
    // Survives a restart.
    s.stop().await;
    let s = Server::start(dir.path()).await;
    let again = json!({"kind": "revoke_token", "jti": "a", "exp": FAR, "idempotency_key": "k-a"});
    let v: Value = s.post(&keys.write, "/v1/events", again).await.json().await.unwrap();
    assert_eq!(v["accepted"][0], json!({"seq": 1, "kind": "revoke_token", "duplicate": true}));
    s.stop().await;
}

#[tokio::test]
async fn restart_rebuilds_from_checkpoint_or_full_log_and_prunes_expired() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let now = T0_MS / 1000;
    let s = Server::start_with(Config { checkpoint_on_shutdown: false, ..config(dir.path()) }, ManualClock::new(T0_MS))
        .await;
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"kind": "revoke_token", "jti": format!("j{i}"), "exp": if i < 10 { now + 60 } else { FAR }}))
        .collect();
    s.post(&keys.write, "/v1/events", json!({"events": events})).await;
    s.post(&keys.write, "/v1/sessions", json!({"sid": "s1", "sub": "u", "refresh_jti": "r0", "exp": FAR})).await;
    let before = s.view(&keys.read).await;
    let snap_before = s.get(&keys.read, "/v1/denylist").await.bytes().await.unwrap();
    s.stop().await;
    // No checkpoint: the denylist projection stands in for the log.
    let s = Server::start_with(Config { checkpoint_on_shutdown: false, ..config(dir.path()) }, ManualClock::new(T0_MS))
        .await;
    assert_eq!((s.checkpoint_at_start, s.replayed_at_start, s.projected_at_start), (None, 0, 51));
    assert_eq!(s.view(&keys.read).await, before);
    assert_eq!(s.get(&keys.read, "/v1/denylist").await.bytes().await.unwrap(), snap_before);
    s.stop().await;
    // Without the projection either: full replay of the log, the same fold.
    std::fs::remove_file(dir.path().join("denylist.proj")).unwrap();
    let s = Server::start(dir.path()).await;
    assert_eq!((s.checkpoint_at_start, s.replayed_at_start, s.projected_at_start), (None, 51, 0));
    assert_eq!(s.view(&keys.read).await, before);
    assert_eq!(s.get(&keys.read, "/v1/denylist").await.bytes().await.unwrap(), snap_before);
    // Family state survived: r0 rotates.
    let r = s
        .post(
            &keys.write,
            "/v1/refresh/rotate",
            json!({"sid": "s1", "presented_jti": "r0", "next_jti": "r1", "exp": FAR}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await; // writes a checkpoint at 52
                    // From the checkpoint, 7 minutes later (past `exp` plus the edges' 5-minute
                    // leeway): the 10 short-lived entries are pruned.
    let s = Server::start_with(config(dir.path()), ManualClock::new(T0_MS + 420_000)).await;
    assert_eq!((s.checkpoint_at_start, s.replayed_at_start, s.projected_at_start), (Some(52), 0, 0));
    let v = s.view(&keys.read).await;
    assert_eq!((v["seq"].as_u64(), v["count"].as_u64()), (Some(52), Some(40)));
    let r = s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "x", "exp": FAR})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["accepted"][0]["seq"], 53);
    s.stop().await;
}

#[tokio::test]
async fn cli_manages_keys_against_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let s = Server::start(dir.path()).await;
    let bin = env!("CARGO_BIN_EXE_tollgate-revocation");
    let out = std::process::Command::new(bin)
        .args(["keys", "create", "--data-dir"])
        .arg(dir.path())
        .args(["--name", "cli-key", "--scope", "denylist:read,events:write"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an events:write key without an issuer scope is refused at creation");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--issuer"));
    let out = std::process::Command::new(bin)
        .args(["keys", "create", "--data-dir"])
        .arg(dir.path())
        .args(["--name", "cli-key", "--scope", "denylist:read,events:write", "--issuer", "https://idp.example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("tgk_"));
    eventually(Duration::from_secs(10), || async { s.get(&secret, "/v1/denylist").await.status() == 200 }).await;
    let out = std::process::Command::new(bin)
        .args(["keys", "revoke", "--data-dir"])
        .arg(dir.path())
        .args(["--name", "cli-key"])
        .output()
        .unwrap();
    assert!(out.status.success());
    eventually(Duration::from_secs(10), || async { s.get(&secret, "/v1/denylist").await.status() == 401 }).await;
    let out = std::process::Command::new(bin).args(["keys", "list", "--data-dir"]).arg(dir.path()).output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.contains("cli-key") && l.contains("\thttps://idp.example\t") && l.ends_with("revoked")),
        "{listing}"
    );
    assert!(!listing.contains(&secret) && !listing.contains(&keys.write));
    let bad = std::process::Command::new(bin)
        .args(["keys", "create", "--data-dir"])
        .arg(dir.path())
        .args(["--name", "x", "--scope", "root"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    s.stop().await;
}

#[test]
fn openapi_documents_every_route() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    let documented: Vec<&str> =
        spec.lines().filter_map(|l| l.strip_prefix("  /").and_then(|p| p.strip_suffix(':'))).collect();
    let served = [
        "v1/events",
        "v1/sessions",
        "v1/refresh/rotate",
        "v1/denylist",
        "v1/denylist/key",
        "v1/admin/log",
        "v1/admin/checkpoint",
        "v1/admin/compact",
        "healthz",
        "readyz",
        "metrics",
    ];
    let mut a = documented.clone();
    let mut b = served.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

/// A connection that has sent a POST's headers and half its body, and holds a request
/// slot until it is dropped (or the request deadline passes).
async fn half_sent_post(s: &Server, write_key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {write_key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"kind\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow
}

#[tokio::test]
async fn concurrency_timeouts_and_replica_counts_are_bounded() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let cfg = Config {
        max_concurrent_requests: 1,
        request_timeout_ms: 500,
        max_replication_clients: 1,
        ..config(dir.path())
    };
    let s = Server::start_with(cfg, ManualClock::new(T0_MS)).await;
    // A client that sends headers and half a body holds the only request slot...
    let mut slow = half_sent_post(&s, &keys.write).await;
    // ...so another request is refused at once rather than queued without bound.
    eventually(Duration::from_secs(10), || async {
        let r = s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "s", "exp": FAR})).await;
        r.status() == StatusCode::SERVICE_UNAVAILABLE && r.json::<Value>().await.unwrap()["error"] == "overloaded"
    })
    .await;
    // The slow request itself hits the deadline and gets a JSON 503.
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"error\":\"timeout\""), "{text}");
    // The slot is free again.
    let r = s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "s", "exp": FAR})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Parked long-polls give their request slot back but are bounded by
    // max_replication_clients.
    // (Stage one may have let a post through before the slow request held the slot.)
    let head =
        s.http.get(s.url("/readyz")).send().await.unwrap().json::<Value>().await.unwrap()["seq"].as_u64().unwrap();
    let poll = format!("/v1/denylist?since={head}&wait=5");
    let (http, url, rk) = (s.http.clone(), s.url(&poll), keys.read.clone());
    let parked = tokio::spawn(async move { http.get(url).bearer_auth(rk).send().await.unwrap().status() });
    eventually(Duration::from_secs(10), || async {
        let m = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
        m.lines().any(|l| l == "tollgate_replication_clients 1")
    })
    .await;
    let r = s.get(&keys.read, &poll).await;
    expect_error(r, StatusCode::SERVICE_UNAVAILABLE, "too_many_replicas").await;
    assert_eq!(
        s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "t", "exp": FAR})).await.status(),
        StatusCode::OK
    );
    assert_eq!(parked.await.unwrap(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn delta_requests_with_wait_count_against_the_request_bound_until_they_park() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let cfg = Config {
        max_concurrent_requests: 1,
        request_timeout_ms: 60_000,
        max_replication_clients: 4,
        ..config(dir.path())
    };
    let s = Server::start_with(cfg, ManualClock::new(T0_MS)).await;
    let r = s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "s", "exp": FAR})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A half-sent body holds the only request slot (until this side closes it).
    let slow = half_sent_post(&s, &keys.write).await;
    eventually(Duration::from_secs(10), || async {
        let r = s.get(&keys.read, "/v1/denylist?since=0").await;
        r.status() == StatusCode::SERVICE_UNAVAILABLE && r.json::<Value>().await.unwrap()["error"] == "overloaded"
    })
    .await;
    // `wait=` does not buy a way around the bound: a delta with events to send (a
    // log scan and a signature) is refused like a plain one, and so is a long-poll
    // that would park, since it holds a request slot until it parks.
    for q in ["/v1/denylist?since=0&wait=1", "/v1/denylist?since=0&wait=0", "/v1/denylist?since=1&wait=1"] {
        expect_error(s.get(&keys.read, q).await, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    }
    drop(slow);
    eventually(Duration::from_secs(10), || async { s.get(&keys.read, "/v1/denylist?since=0").await.status() == 200 })
        .await;
    // A long-poll that parks gives its request slot back (it holds a replica slot
    // instead), so parked replicas never starve intake.
    let (http, url, rk) = (s.http.clone(), s.url("/v1/denylist?since=1&wait=30"), keys.read.clone());
    let parked = tokio::spawn(async move { http.get(url).bearer_auth(rk).send().await.unwrap().status() });
    eventually(Duration::from_secs(10), || async {
        let r = s.http.get(s.url("/metrics")).send().await.unwrap();
        r.status() == StatusCode::OK && r.text().await.unwrap().lines().any(|l| l == "tollgate_replication_clients 1")
    })
    .await;
    let r = s.post(&keys.write, "/v1/events", json!({"kind": "logout", "sid": "t", "exp": FAR})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), parked).await.unwrap().unwrap(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn a_torn_or_damaged_projection_is_trusted_only_up_to_its_last_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::create(dir.path());
    let cfg = || Config { checkpoint_on_shutdown: false, ..config(dir.path()) };
    let s = Server::start_with(cfg(), ManualClock::new(T0_MS)).await;
    for round in 0..3 {
        let events: Vec<Value> = (0..10)
            .map(|i| json!({"kind": "logout", "sid": format!("s{round}-{i}"), "iss": "https://i", "exp": FAR}))
            .collect();
        s.post(&keys.write, "/v1/events", json!({"events": events})).await;
    }
    let before = s.view(&keys.read).await;
    s.stop().await;
    let proj = dir.path().join("denylist.proj");
    let whole = std::fs::read(&proj).unwrap();
    // Each start that cannot use the projection through the head begins it anew and
    // checkpoints: put the file under test back and drop that checkpoint first.
    let put = |bytes: &[u8]| {
        std::fs::write(&proj, bytes).unwrap();
        let _ = std::fs::remove_file(dir.path().join("checkpoint.bin"));
    };
    // The last group torn (a crash mid-write): its 10 events come from the log.
    put(&whole[..whole.len() - 5]);
    let s = Server::start_with(cfg(), ManualClock::new(T0_MS)).await;
    assert_eq!((s.projected_at_start, s.replayed_at_start), (20, 10));
    assert_eq!(s.view(&keys.read).await, before);
    s.stop().await;
    // A flipped byte in the first group: nothing of the file is used.
    let mut bad = whole.clone();
    bad[40] ^= 0x20;
    put(&bad);
    let s = Server::start_with(cfg(), ManualClock::new(T0_MS)).await;
    assert_eq!((s.projected_at_start, s.replayed_at_start), (0, 30));
    assert_eq!(s.view(&keys.read).await, before);
    s.stop().await;
    // Another data directory's projection is ignored.
    let other = tempfile::tempdir().unwrap();
    let o =
        Server::start_with(Config { checkpoint_on_shutdown: false, ..config(other.path()) }, ManualClock::new(T0_MS))
            .await;
    o.post(&keys.write, "/v1/events", json!({"kind": "revoke_token", "jti": "x", "exp": FAR})).await;
    o.stop().await;
    put(&std::fs::read(other.path().join("denylist.proj")).unwrap());
    let s = Server::start_with(cfg(), ManualClock::new(T0_MS)).await;
    assert_eq!((s.projected_at_start, s.replayed_at_start), (0, 30));
    assert_eq!(s.view(&keys.read).await, before);
    s.stop().await;
}
