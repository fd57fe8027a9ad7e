//! Refresh (rotation, convergence, reuse), cookies and CSRF, logout, logout-all.

use serde_json::{json, Value};

use super::harness::{email, jwt_parts, Stack};
use crate::both_engines;

async fn refresh_json(s: &Stack, token: &str) -> crate::integration::harness::Resp {
    s.post("/auth/refresh", json!({"refresh_token": token}), &[]).await
}

fn bearer(b: &Value) -> String {
    format!("Bearer {}", b["access_token"].as_str().unwrap())
}

both_engines!(refresh_rotates_and_replays_converge, |s: Stack| async move {
    let e = email("rot");
    s.register(&e).await;
    let b0 = s.login(&e).await;
    let sid = b0["session_id"].as_str().unwrap().to_owned();
    let r0 = b0["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh_json(&s, &r0).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b1 = r.body.clone();
    assert_ne!(b1["refresh_token"], b0["refresh_token"]);
    assert_ne!(b1["access_token"], b0["access_token"]);
    assert_eq!(b1["session_id"], sid.as_str());
    // The immediate predecessor again, 9 s later: the same successor pair.
    s.clock.advance_secs(9);
    let again = refresh_json(&s, &r0).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["access_token"], b1["access_token"]);
    assert_eq!(again.body["refresh_token"], b1["refresh_token"]);
    // The successor itself rotates on.
    let r1 = b1["refresh_token"].as_str().unwrap().to_owned();
    let b2 = refresh_json(&s, &r1).await.body;
    assert!(b2["refresh_token"].is_string());
    // r0 is now two behind: reuse. The session is revoked here and at the edge.
    let r = refresh_json(&s, &r0).await;
    assert_eq!((r.status, r.kind()), (401, "reuse_detected"), "{}", r.body);
    assert!(r.set_cookies().is_empty(), "a refresh error never touches cookies");
    assert!(s.rev.denies("sid", &sid).await, "the family is revoked at the revocation service");
    let p = s.get("/profile", &[("authorization", &bearer(&b2))]).await;
    assert_eq!((p.status, p.body["reason"].as_str()), (401, Some("revoked")));
    // The newest refresh token is dead too.
    let r = refresh_json(&s, b2["refresh_token"].as_str().unwrap()).await;
    assert_eq!((r.status, r.kind()), (401, "reuse_detected"));
    assert_eq!(s.state.metrics.reuse_detections.get("refresh"), 1);
    assert!(s.state.metrics.refreshes.get("converged") >= 1);
});

both_engines!(the_predecessor_after_the_window_is_reuse, |s: Stack| async move {
    let e = email("win");
    s.register(&e).await;
    let b0 = s.login(&e).await;
    let r0 = b0["refresh_token"].as_str().unwrap().to_owned();
    let b1 = refresh_json(&s, &r0).await.body;
    s.clock.advance_secs(11);
    let r = refresh_json(&s, &r0).await;
    assert_eq!((r.status, r.kind()), (401, "reuse_detected"));
    let p = s.get("/profile", &[("authorization", &bearer(&b1))]).await;
    assert_eq!(p.body["reason"], "revoked");
    let log = s.rev.log().await;
    assert!(log.iter().any(|r| r["kind"] == "reuse_detected"), "{log:?}");
});

both_engines!(concurrent_refreshes_converge_on_one_pair, |s: Stack| async move {
    let e = email("tabs");
    s.register(&e).await;
    let b0 = s.login(&e).await;
    let sid = b0["session_id"].as_str().unwrap().to_owned();
    let r0 = b0["refresh_token"].as_str().unwrap().to_owned();
    let s = std::sync::Arc::new(s);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, r0) = (s.clone(), r0.clone());
            tokio::spawn(async move { refresh_json(&s, &r0).await })
        })
        .collect();
    let mut pairs = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "every tab gets a pair: {}", r.body);
        pairs.push((r.body["access_token"].clone(), r.body["refresh_token"].clone()));
    }
    assert!(pairs.windows(2).all(|w| w[0] == w[1]), "all the same pair");
    // Exactly one rotation reached the revocation service, and the session lives.
    let log = s.rev.log().await;
    let rotations = log.iter().filter(|r| r["kind"] == "rotation" && r["sid"] == sid.as_str()).count();
    assert_eq!(rotations, 1, "{log:?}");
    assert!(!s.rev.denies("sid", &sid).await);
    let next = refresh_json(&s, pairs[0].1.as_str().unwrap()).await;
    assert_eq!(next.status, 200);
});

both_engines!(cookies_and_csrf, |s: Stack| async move {
    let e = email("cookie");
    s.register(&e).await;
    let r = s
        .post(
            "/auth/login",
            json!({"email": e, "password": crate::integration::harness::PASSWORD, "cookies": true}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("access_token").is_none() && r.body.get("refresh_token").is_none(), "no tokens in the body");
    let sc = r.set_cookies();
    assert!(sc.iter().any(|c| c.starts_with("access_token=")
        && c.contains("HttpOnly")
        && c.contains("Secure")
        && c.contains("SameSite=Strict")
        && c.contains("Path=/;")));
    assert!(sc.iter().any(|c| c.starts_with("refresh_token=")
        && c.contains("HttpOnly")
        && c.contains("Secure")
        && c.contains("Path=/auth/refresh")));
    let at = r.cookie("access_token").unwrap();
    let rt = r.cookie("refresh_token").unwrap();
    let csrf = r.cookie("csrf_token").unwrap();
    assert_eq!(r.body["csrf_token"], csrf.as_str());
    let jar = format!("refresh_token={rt}; csrf_token={csrf}");
    // Cookie refresh without the header, with the wrong one, from another origin: 403, no cookies.
    for h in [
        vec![("cookie", jar.as_str())],
        vec![("cookie", jar.as_str()), ("x-csrf-token", "wrong")],
        vec![("cookie", jar.as_str()), ("x-csrf-token", csrf.as_str()), ("origin", "https://evil.test")],
        vec![("cookie", jar.as_str()), ("x-csrf-token", csrf.as_str()), ("sec-fetch-site", "cross-site")],
    ] {
        let r = s.post_empty("/auth/refresh", &h).await;
        assert_eq!((r.status, r.kind()), (403, "csrf_failed"), "{h:?}");
        assert!(r.set_cookies().is_empty());
    }
    // Right: new cookies, same CSRF token.
    let ok = s
        .post_empty("/auth/refresh", &[("cookie", &jar), ("x-csrf-token", &csrf), ("origin", "https://app.test")])
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_ne!(ok.cookie("refresh_token").unwrap(), rt);
    assert_eq!(ok.cookie("csrf_token").unwrap(), csrf);
    assert!(ok.body.get("refresh_token").is_none());
    // Cookie logout needs the CSRF check too.
    let at2 = ok.cookie("access_token").unwrap();
    let jar2 = format!("access_token={at2}; csrf_token={csrf}");
    let r = s.post_empty("/auth/logout", &[("cookie", &jar2)]).await;
    assert_eq!((r.status, r.kind()), (403, "csrf_failed"));
    let r = s
        .post_empty("/auth/logout", &[("cookie", &jar2), ("x-csrf-token", &csrf), ("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cleared = r.set_cookies();
    assert_eq!(cleared.len(), 3);
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
    let p = s.get("/profile", &[("cookie", &format!("access_token={at}"))]).await;
    assert_eq!(p.body["reason"], "revoked");
});

both_engines!(logout_ends_the_session_everywhere, |s: Stack| async move {
    let e = email("out");
    s.register(&e).await;
    let b = s.login(&e).await;
    let sid = b["session_id"].as_str().unwrap();
    let r = s.post_empty("/auth/logout", &[("authorization", &bearer(&b))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["logged_out"], sid);
    assert!(r.body["seq"].as_u64().unwrap() > 0);
    assert!(s.rev.denies("sid", sid).await);
    let p = s.get("/profile", &[("authorization", &bearer(&b))]).await;
    assert_eq!((p.status, p.body["reason"].as_str()), (401, Some("revoked")));
    let r = refresh_json(&s, b["refresh_token"].as_str().unwrap()).await;
    assert_eq!((r.status, r.kind()), (401, "revoked"));
    // Idempotent, and an expired access token may still log out.
    s.clock.advance_secs(1000);
    let r = s.post_empty("/auth/logout", &[("authorization", &bearer(&b))]).await;
    assert_eq!((r.status, r.body["already_ended"].as_bool()), (200, Some(true)));
    // By refresh token (API clients).
    let b2 = s.login(&e).await;
    let r = s.post("/auth/logout", json!({"refresh_token": b2["refresh_token"]}), &[]).await;
    assert_eq!(r.status, 200);
    assert!(s.rev.denies("sid", b2["session_id"].as_str().unwrap()).await);
    let r = s.post_empty("/auth/logout", &[]).await;
    assert_eq!((r.status, r.kind()), (401, "missing_token"));
});

both_engines!(logout_all_ends_every_session, |s: Stack| async move {
    let e = email("all");
    let id = s.register(&e).await;
    let a = s.login(&e).await;
    let b = s.login(&e).await;
    let r = s.post_empty("/auth/logout-all", &[("authorization", &bearer(&a))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["sessions_ended"], 2);
    for x in [&a, &b] {
        let p = s.get("/profile", &[("authorization", &bearer(x))]).await;
        assert_eq!(p.body["reason"], "revoked");
        let r = refresh_json(&s, x["refresh_token"].as_str().unwrap()).await;
        assert_eq!(r.kind(), "revoked");
    }
    assert!(s.rev.denies("sub", &id).await);
    assert!(s.rev.denies("sid", a["session_id"].as_str().unwrap()).await);
    // A new login after the cutoff works.
    s.clock.advance_secs(1);
    let c = s.login(&e).await;
    let (_, claims) = jwt_parts(c["access_token"].as_str().unwrap());
    assert!(
        claims["iat"].as_u64().unwrap()
            >= s.state.store.user_by_id(&id).await.unwrap().unwrap().tokens_valid_after as u64
    );
    assert_eq!(s.get("/profile", &[("authorization", &bearer(&c))]).await.status, 200);
});

both_engines!(refresh_errors, |s: Stack| async move {
    let r = refresh_json(&s, "garbage").await;
    assert_eq!((r.status, r.kind()), (401, "invalid_refresh_token"));
    let r = s.post_empty("/auth/refresh", &[]).await;
    assert_eq!((r.status, r.kind()), (401, "missing_token"));
    let e = email("rerr");
    s.register(&e).await;
    let b = s.login(&e).await;
    // An access token is not a refresh token.
    let r = refresh_json(&s, b["access_token"].as_str().unwrap()).await;
    assert_eq!((r.status, r.kind(), r.body["reason"].as_str()), (401, "invalid_refresh_token", Some("invalid_type")));
    let r = s.post("/auth/refresh", json!({"refresh_token": 5}), &[]).await;
    assert_eq!((r.status, r.kind()), (422, "invalid_request"));
    s.clock.advance_secs(7 * 86400 + 1);
    let r = refresh_json(&s, b["refresh_token"].as_str().unwrap()).await;
    assert_eq!((r.status, r.kind()), (401, "refresh_expired"));
});

both_engines!(without_the_revocation_service_nothing_is_acknowledged, |s: Stack| async move {
    let e = email("down");
    s.register(&e).await;
    let b = s.login(&e).await;
    let mut s = s;
    s.rev.kill();
    let r = s.post("/auth/login", json!({"email": e, "password": crate::integration::harness::PASSWORD}), &[]).await;
    assert_eq!((r.status, r.kind()), (503, "revocation_unavailable"));
    assert!(r.headers.get("retry-after").is_some());
    let r = s.post_empty("/auth/logout", &[("authorization", &bearer(&b))]).await;
    assert_eq!(r.status, 503);
    // Not logged out here either: the session still works and the refresh is undone.
    let p = s.get("/profile", &[("authorization", &bearer(&b))]).await;
    assert_eq!(p.status, 200);
    let r = refresh_json(&s, b["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status, 503);
    let sess = s.state.store.session(b["session_id"].as_str().unwrap()).await.unwrap().unwrap();
    let (_, rc) = jwt_parts(b["refresh_token"].as_str().unwrap());
    assert_eq!(sess.current_jti, rc["jti"].as_str().unwrap(), "the rotation was undone");
});
