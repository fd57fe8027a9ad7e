//! JWKS and key rotation, health, metrics, OpenAPI, CORS, JSON 404/405.

use serde_json::{json, Value};
use tollgate_auth::config::Config;

use super::harness::{email, jwt_parts, Stack};
use crate::both_engines;

both_engines!(jwks_publishes_the_access_keys_only, |s: Stack| async move {
    let e = email("jwks");
    s.register(&e).await;
    let b = s.login(&e).await;
    let r = s.get("/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "public, max-age=300");
    let kids: Vec<&str> = r.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    let (ah, _) = jwt_parts(b["access_token"].as_str().unwrap());
    let (rh, _) = jwt_parts(b["refresh_token"].as_str().unwrap());
    assert_eq!(kids, vec![ah["kid"].as_str().unwrap()]);
    assert!(!kids.contains(&rh["kid"].as_str().unwrap()));
    assert!(r.body["keys"][0].get("d").is_none(), "public keys only");
    // The published set verifies the token with tollgate-core.
    let jwks = tollgate_core::Jwks::from_json(r.text.as_bytes()).unwrap();
    let mut policy = tollgate_core::Policy::default();
    policy.issuers = Some(vec!["https://issuer.test".into()]);
    policy.audiences = Some(vec!["https://api.test".into()]);
    let v = tollgate_core::Verifier::new(jwks, policy);
    let now = (s.clock_secs()) as i64;
    assert!(v.verify(b["access_token"].as_str().unwrap(), now, None).is_ok());
});

// A one-day schedule: the revocation service runs on the real clock and refuses an
// `exp` more than 30 days ahead of it, so the test's clock moves a day, not a month.
both_engines!(keys_rotate_on_schedule, |c: &mut Config| c.key_rotation_days = 1, |s: Stack| async move {
    let e = email("rot");
    s.register(&e).await;
    let before = s.login(&e).await;
    let (h0, _) = jwt_parts(before["access_token"].as_str().unwrap());
    // A day on: the maintenance pass publishes a new key, which signs only after the
    // publication delay (max-age 300 + 60 s).
    s.clock.advance_secs(86400);
    let added = s.state.tokens.maintain(&s.state.store).await.unwrap();
    assert_eq!(added.len(), 2, "access and refresh");
    let kids = |r: &Value| {
        r["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let published = kids(&s.get("/.well-known/jwks.json", &[]).await.body);
    assert_eq!(published.len(), 2);
    let b = s.login(&e).await;
    assert_eq!(jwt_parts(b["access_token"].as_str().unwrap()).0["kid"], h0["kid"], "not signing yet");
    s.clock.advance_secs(361);
    let b = s.login(&e).await;
    let (h1, _) = jwt_parts(b["access_token"].as_str().unwrap());
    assert_ne!(h1["kid"], h0["kid"]);
    assert!(published.contains(&h1["kid"].as_str().unwrap().to_owned()));
    // A second instance on the same database reads the same keys.
    let again = s.state.tokens.maintain(&s.state.store).await.unwrap();
    assert!(again.is_empty(), "not due again");
    let p = s.get("/profile", &[("authorization", &format!("Bearer {}", b["access_token"].as_str().unwrap()))]).await;
    assert_eq!(p.status, 200);
});

both_engines!(operations_endpoints, |s: Stack| async move {
    assert_eq!(s.get("/healthz", &[]).await.body, json!({"status": "ok"}));
    assert_eq!(s.get("/readyz", &[]).await.body, json!({"status": "ready"}));
    let o = s.get("/openapi.yaml", &[]).await;
    assert!(o.text.starts_with("openapi: 3.1"), "{}", &o.text[..o.text.len().min(40)]);
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/logout-all",
        "/profile",
        "/admin/users",
    ] {
        assert!(o.text.contains(&format!("  {path}:")), "{path} documented");
    }
    let r = s.get("/nope", &[]).await;
    assert_eq!((r.status, r.kind()), (404, "not_found"));
    let r = s.get("/auth/login", &[]).await;
    assert_eq!((r.status, r.kind()), (405, "method_not_allowed"));
    let e = email("m");
    s.register(&e).await;
    s.login(&e).await;
    let m = s.get("/metrics", &[]).await.text;
    assert!(m.contains("tollgate_auth_logins_total{method=\"password\"} 1"), "{m}");
    assert!(m.contains("tollgate_auth_registrations_total{result=\"created\"} 1"));
    assert!(m.contains("tollgate_auth_http_responses_total{class=\"4xx\"} 2"));
});

both_engines!(cors_allow_list_with_credentials, |s: Stack| async move {
    let pre = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = pre("https://app.test").await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.test");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let bad = crate::integration::harness::Resp::from(pre("https://evil.test").await.unwrap()).await;
    assert_eq!((bad.status, bad.kind()), (403, "cors_origin_not_allowed"));
    assert!(bad.headers.get("access-control-allow-origin").is_none());
    let r = s.get("/healthz", &[("origin", "https://app.test")]).await;
    assert_eq!(r.headers["access-control-allow-origin"], "https://app.test");
    let r = s.get("/healthz", &[("origin", "https://evil.test")]).await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
});
