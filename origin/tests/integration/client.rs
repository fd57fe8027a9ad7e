//! The RevocationClient against the real service: every call, every error kind it can
//! meet, retries that append exactly once, and the bounds on time and attempts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tollgate_origin::{
    ClientConfig, ClientError, Event, RetryPolicy, RevocationClient, RotateOutcome, Rotation, ServiceErrorKind,
    SessionStart,
};

use super::harness::{closed_port, eventually, half_sent_post, scoped_keys, silent_server, wall_now, Proxy, Service};

fn client(base: &str, key: &str) -> RevocationClient {
    let mut c = ClientConfig::new(base, key);
    c.retry.initial_backoff = Duration::from_millis(20);
    RevocationClient::from_config(c).unwrap()
}

fn kind(e: &ClientError) -> (u16, ServiceErrorKind, String) {
    let s = e.service().unwrap_or_else(|| panic!("expected a service error, got {e}"));
    (s.status, s.kind, s.kind_str.clone())
}

/// The log record with this seq.
fn record(log: &[Value], seq: u64) -> &Value {
    log.iter().find(|r| r["seq"] == seq).unwrap_or_else(|| panic!("no record {seq}"))
}

#[tokio::test]
async fn every_call_against_the_real_service() {
    let svc = Service::start(&[]);
    let c = client(&svc.base, &svc.keys.write);
    let exp = wall_now() + 3600;

    let s = c.start_session(&SessionStart::new("fam-1", "alice", "r1", exp).iss(svc.issuer)).await.unwrap();
    assert!(!s.duplicate);
    let again = c.start_session(&SessionStart::new("fam-1", "alice", "r1", exp).iss(svc.issuer)).await.unwrap();
    assert_eq!((again.seq, again.duplicate), (s.seq, true));

    let r = c.rotate(&Rotation::new("fam-1", "r1", "r2", exp).iss(svc.issuer)).await.unwrap();
    let RotateOutcome::Rotated { seq: rot_seq, duplicate: false, grace: false } = r else { panic!("{r:?}") };
    assert_eq!(rot_seq, s.seq + 1);
    // A retry of the last rotation is recognised.
    let r = c.rotate(&Rotation::new("fam-1", "r1", "r2", exp)).await.unwrap();
    assert_eq!(r, RotateOutcome::Rotated { seq: rot_seq, duplicate: true, grace: false });
    // Presenting the earlier token again is reuse: the family is revoked.
    let r = c.rotate(&Rotation::new("fam-1", "r1", "r3", exp)).await.unwrap();
    let RotateOutcome::ReuseDetected { seq: Some(reuse_seq) } = r else { panic!("{r:?}") };
    let r = c.rotate(&Rotation::new("fam-1", "r1", "r4", exp)).await.unwrap();
    assert_eq!(r, RotateOutcome::ReuseDetected { seq: None });
    let e = c.rotate(&Rotation::new("fam-1", "r2", "r5", exp)).await.unwrap_err();
    assert_eq!(kind(&e), (409, ServiceErrorKind::SessionRevoked, "session_revoked".into()));

    let logout = c.logout("sess-9").iss(svc.issuer).exp(exp).await.unwrap();
    assert_eq!((logout.kind.as_str(), logout.duplicate), ("logout", false));
    let tok = c.revoke_token("jti-1").await.unwrap();
    let before = wall_now();
    let subj = c.revoke_subject("bob", before).iss(svc.issuer).await.unwrap();
    assert_eq!((tok.seq, subj.seq), (logout.seq + 1, logout.seq + 2));
    let batch = c
        .post_batch(&[Event::logout("sess-a"), Event::revoke_token("jti-b").exp(exp), Event::reuse_detected("s", "j")])
        .await
        .unwrap();
    let seqs: Vec<u64> = batch.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [subj.seq + 1, subj.seq + 2, subj.seq + 3]);
    assert!(batch.iter().all(|a| !a.duplicate));

    // What reached the log is what was sent, with one idempotency key per call and
    // `<key>.<i>` in a batch; default exp = now + 20 minutes (revoke_subject: before + 20).
    let log = svc.log().await;
    assert_eq!(record(&log, reuse_seq)["kind"], "reuse_detected");
    let l = record(&log, logout.seq);
    assert_eq!(
        (&l["sid"], &l["iss"], &l["exp"]),
        (&Value::from("sess-9"), &Value::from(svc.issuer), &Value::from(exp))
    );
    let t = record(&log, tok.seq);
    let t_exp = t["exp"].as_u64().unwrap();
    assert!((before..=wall_now() + 1200).contains(&t_exp) && t_exp >= before + 1200 - 5, "{t}");
    let sj = record(&log, subj.seq);
    assert_eq!((sj["sub"].as_str(), sj["before"].as_u64()), (Some("bob"), Some(before)));
    let keys: Vec<String> =
        seqs.iter().map(|s| record(&log, *s)["idempotency_key"].as_str().unwrap().to_string()).collect();
    let stem = keys[0].strip_suffix(".0").unwrap();
    assert_eq!(keys, [format!("{stem}.0"), format!("{stem}.1"), format!("{stem}.2")]);
    assert_eq!(record(&log, seqs[1])["exp"], exp);

    // wait_for_edge with the pinned key: the signed delta reaches the batch's last seq.
    let mut cfg = ClientConfig::new(&svc.base, &svc.keys.write);
    cfg.read_key = Some(svc.keys.read.clone());
    cfg.denylist_key = Some(c.fetch_denylist_key().await.unwrap());
    let reader = RevocationClient::from_config(cfg).unwrap();
    let reached = reader.wait_for_edge(seqs[2], Duration::from_secs(10)).await.unwrap();
    assert!(reached >= seqs[2]);
    // A long-poll that parks until the next event lands.
    let waiting = tokio::spawn({
        let reader = reader.clone();
        let next = seqs[2] + 1;
        async move { reader.wait_for_edge(next, Duration::from_secs(20)).await }
    });
    let later = c.logout("sess-late").await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), later.seq);
    // A wrongly pinned key is refused (the delta's signature does not verify).
    let mut cfg = ClientConfig::new(&svc.base, &svc.keys.read);
    let other = tollgate_origin::SigningKey::generate_es256().unwrap();
    cfg.denylist_key = Some(other.public_jwk().clone());
    let wrong = RevocationClient::from_config(cfg).unwrap();
    let e = wrong.wait_for_edge(later.seq, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, ClientError::Protocol(_)), "{e}");
}

#[tokio::test]
async fn every_error_kind_the_client_can_meet() {
    let svc = Service::start(&[]);
    let c = client(&svc.base, &svc.keys.write);
    let exp = wall_now() + 3600;
    let proxy = Proxy::start(svc.addr()).await;
    let via = client(&proxy.base, &svc.keys.write);

    // 401, 403: bad key, key without the scope.
    let e = client(&svc.base, "tgk_nope_nope").logout("s").await.unwrap_err();
    assert_eq!(kind(&e), (401, ServiceErrorKind::Unauthorized, "unauthorized".into()));
    let e = client(&svc.base, &svc.keys.read).logout("s").await.unwrap_err();
    assert_eq!(kind(&e), (403, ServiceErrorKind::Forbidden, "forbidden".into()));
    // 422 invalid_event (an id over 1024 bytes), never retried.
    let e = via.revoke_token("j".repeat(1025)).await.unwrap_err();
    assert_eq!(kind(&e).1, ServiceErrorKind::InvalidEvent);
    assert!(e.service().unwrap().detail.contains("jti"), "{e}");
    assert_eq!(proxy.stats.requests.load(Ordering::SeqCst), 1, "a 4xx is never retried");
    // 422 idempotency_conflict: one key, two different events.
    c.logout("s1").idempotency_key("same").await.unwrap();
    let e = c.logout("s2").idempotency_key("same").await.unwrap_err();
    assert_eq!(kind(&e).1, ServiceErrorKind::IdempotencyConflict);
    // 413 too_many_events and body_too_large.
    let many: Vec<Event> = (0..1001).map(|i| Event::revoke_token(format!("j{i}"))).collect();
    let e = c.post_batch(&many).await.unwrap_err();
    assert_eq!(kind(&e), (413, ServiceErrorKind::TooManyEvents, "too_many_events".into()));
    let big: Vec<Event> = (0..1000).map(|i| Event::revoke_token(format!("{i:04}{}", "x".repeat(1016)))).collect();
    let e = c.post_batch(&big).await.unwrap_err();
    assert_eq!(kind(&e), (413, ServiceErrorKind::BodyTooLarge, "body_too_large".into()));
    // Sessions and rotations.
    c.start_session(&SessionStart::new("fam", "alice", "r1", exp).iss(svc.issuer)).await.unwrap();
    let e = c.start_session(&SessionStart::new("fam", "mallory", "r1", exp)).await.unwrap_err();
    assert_eq!(kind(&e), (409, ServiceErrorKind::SessionExists, "session_exists".into()));
    let e = c.rotate(&Rotation::new("nope", "r1", "r2", exp)).await.unwrap_err();
    assert_eq!(kind(&e), (404, ServiceErrorKind::UnknownSession, "unknown_session".into()));
    let e = c.rotate(&Rotation::new("fam", "never", "r2", exp)).await.unwrap_err();
    assert_eq!(kind(&e), (409, ServiceErrorKind::UnknownToken, "unknown_token".into()));
    let e = c.rotate(&Rotation::new("fam", "r1", "r2", exp).iss("https://other.test")).await.unwrap_err();
    assert_eq!(kind(&e), (409, ServiceErrorKind::IssuerMismatch, "issuer_mismatch".into()));
    c.rotate(&Rotation::new("fam", "r1", "r2", exp)).await.unwrap();
    let e = c.rotate(&Rotation::new("fam", "r2", "r1", exp)).await.unwrap_err();
    assert_eq!(kind(&e), (409, ServiceErrorKind::JtiConflict, "jti_conflict".into()));
    c.logout("fam").await.unwrap();
    let e = c.rotate(&Rotation::new("fam", "r2", "r3", exp)).await.unwrap_err();
    assert_eq!(kind(&e), (409, ServiceErrorKind::SessionRevoked, "session_revoked".into()));
    assert!(e.service().unwrap().body["revoked_seq"].is_u64());
    // No request of this test was retried: one request per call through the proxy.
    assert_eq!(proxy.stats.requests.load(Ordering::SeqCst), 1);

    // Where the service scopes keys by issuer and bounds times (issue 19 §4): 403
    // forbidden_issuer for another issuer's event, 400 bad_expiry for an exp in ms.
    if scoped_keys() {
        let scoped = client(&svc.base, &svc.key_for_issuer("scoped", svc.issuer));
        scoped.logout("s").iss(svc.issuer).await.unwrap();
        let e = scoped.logout("s").iss("https://other.test").await.unwrap_err();
        assert_eq!(kind(&e), (403, ServiceErrorKind::ForbiddenIssuer, "forbidden_issuer".into()));
        let e = c.revoke_token("j").exp(exp * 1000).await.unwrap_err();
        assert_eq!(kind(&e), (400, ServiceErrorKind::BadExpiry, "bad_expiry".into()));
    }
}

#[tokio::test]
async fn a_retry_after_a_dropped_answer_appends_exactly_once() {
    let svc = Service::start(&[]);
    let proxy = Proxy::start(svc.addr()).await;
    let c = client(&proxy.base, &svc.keys.write);
    let exp = wall_now() + 3600;
    let head = svc.head().await;

    // Each call: the proxy lets the request through, swallows the service's answer and
    // closes the connection; the client retries with the same idempotency key (or the
    // same content) and gets the original seq back.
    proxy.stats.drop_next.store(1, Ordering::SeqCst);
    let a = c.logout("sess-1").await.unwrap();
    assert_eq!((a.seq, a.duplicate), (head + 1, true));
    proxy.stats.drop_next.store(1, Ordering::SeqCst);
    let b = c.post_batch(&[Event::revoke_token("j1"), Event::revoke_token("j2")]).await.unwrap();
    assert_eq!(b.iter().map(|x| (x.seq, x.duplicate)).collect::<Vec<_>>(), [(head + 2, true), (head + 3, true)]);
    proxy.stats.drop_next.store(1, Ordering::SeqCst);
    let s = c.start_session(&SessionStart::new("fam", "alice", "r1", exp)).await.unwrap();
    assert_eq!((s.seq, s.duplicate), (head + 4, true));
    proxy.stats.drop_next.store(1, Ordering::SeqCst);
    let r = c.rotate(&Rotation::new("fam", "r1", "r2", exp)).await.unwrap();
    assert_eq!(r, RotateOutcome::Rotated { seq: head + 5, duplicate: true, grace: false });

    assert_eq!(proxy.stats.dropped.load(Ordering::SeqCst), 4);
    assert_eq!(proxy.stats.requests.load(Ordering::SeqCst), 8, "each call: one dropped attempt and one retry");
    // The log holds each event once, gap-free.
    let log = svc.log().await;
    let seqs: Vec<u64> = log.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=head + 5).collect::<Vec<_>>());
    assert_eq!(svc.head().await, head + 5);
    let kinds: Vec<&str> = log.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["logout", "revoke_token", "revoke_token", "session_start", "rotation"]);
}

#[tokio::test]
async fn a_503_is_retried_until_the_service_takes_the_call() {
    let svc = Service::start(&[("TOLLGATE_MAX_CONCURRENT_REQUESTS", "1"), ("TOLLGATE_REQUEST_TIMEOUT_MS", "1500")]);
    let proxy = Proxy::start(svc.addr()).await;
    let probe = client(&svc.base, &svc.keys.write);

    // With the only request slot held, retries are used up and the 503 is returned.
    let _slow = half_sent_post(&svc.addr(), &svc.keys.write).await;
    eventually(Duration::from_secs(10), || async {
        probe.logout("probe").await.err().and_then(|e| e.kind()) == Some(ServiceErrorKind::Overloaded)
    })
    .await;
    let mut cfg = ClientConfig::new(&proxy.base, &svc.keys.write);
    cfg.retry = RetryPolicy::none();
    cfg.retry.max_attempts = 2;
    cfg.retry.initial_backoff = Duration::from_millis(10);
    let e = RevocationClient::from_config(cfg).unwrap().logout("s").await.unwrap_err();
    assert_eq!(kind(&e), (503, ServiceErrorKind::Overloaded, "overloaded".into()));
    assert_eq!(*proxy.stats.statuses.lock().unwrap(), [503, 503]);

    // With enough retries, the call lands once the stalled request times out and frees
    // the slot.
    let mut cfg = ClientConfig::new(&proxy.base, &svc.keys.write);
    cfg.retry.max_attempts = 20;
    cfg.retry.initial_backoff = Duration::from_millis(100);
    cfg.retry.max_backoff = Duration::from_millis(400);
    let a = RevocationClient::from_config(cfg).unwrap().logout("s").await.unwrap();
    assert!(!a.duplicate);
    let statuses = proxy.stats.statuses.lock().unwrap().clone();
    assert_eq!(statuses.last(), Some(&200));
    assert!(statuses[2..statuses.len() - 1].iter().all(|s| *s == 503), "{statuses:?}");
    // Appended once.
    assert_eq!(svc.log().await.iter().filter(|r| r["sid"] == "s").count(), 1);
}

#[tokio::test]
async fn connection_errors_and_timeouts_are_bounded() {
    // Refused: every attempt fails fast, then Unreachable.
    let base = closed_port().await;
    let e = client(&base, "k").logout("s").await.unwrap_err();
    let ClientError::Unreachable { attempts: 4, last } = &e else { panic!("{e}") };
    assert!(last.to_lowercase().contains("connect"), "{last}");

    // Silent: each attempt times out.
    let (base, _task) = silent_server().await;
    let mut cfg = ClientConfig::new(&base, "k");
    cfg.attempt_timeout = Duration::from_millis(200);
    cfg.retry.max_attempts = 3;
    cfg.retry.initial_backoff = Duration::from_millis(10);
    let started = tokio::time::Instant::now();
    let e = RevocationClient::from_config(cfg.clone()).unwrap().logout("s").await.unwrap_err();
    let ClientError::Unreachable { attempts: 3, last } = &e else { panic!("{e}") };
    assert!(last.contains("timed out"), "{last}");
    // The call's deadline cuts the retries short.
    cfg.retry.max_attempts = 100;
    cfg.call_timeout = Duration::from_millis(700);
    let e = RevocationClient::from_config(cfg).unwrap().logout("s").await.unwrap_err();
    assert!(matches!(e, ClientError::Deadline { attempts: 2..=4, .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
