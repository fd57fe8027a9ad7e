//! Register, login, profile.

use serde_json::json;

use super::harness::{email, jwt_parts, Stack, PASSWORD};
use crate::both_engines;

both_engines!(register_rules, |s: Stack| async move {
    let e = email("reg");
    let r = s
        .post("/auth/register", json!({"email": format!("  {}  ", e.to_uppercase()), "password": PASSWORD}), &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["email"], e.as_str(), "normalised: trimmed, lower case");
    assert_eq!(r.body["roles"], json!(["user"]));
    assert!(r.body.get("password_hash").is_none());
    let stored = s.state.store.user_by_email(&e).await.unwrap().unwrap();
    assert!(
        stored.password_hash.unwrap().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "Argon2id, RustCrypto defaults"
    );

    // A duplicate (any case): 409, saying no more than that.
    let r =
        s.post("/auth/register", json!({"email": e.to_uppercase(), "password": "another good password"}), &[]).await;
    assert_eq!((r.status, r.kind()), (409, "email_taken"));
    assert_eq!(r.body.as_object().unwrap().len(), 2, "only error and detail: {}", r.body);

    for (body, status, kind) in [
        (json!({"email": email("w"), "password": "short"}), 422, "weak_password"),
        (json!({"email": email("w"), "password": "password123"}), 422, "weak_password"),
        (json!({"email": "not-an-email", "password": PASSWORD}), 422, "invalid_email"),
        (json!({"email": email("w")}), 422, "invalid_request"),
        (json!({"email": email("w"), "password": PASSWORD, "admin": true}), 422, "invalid_request"),
        (json!({"email": 5, "password": PASSWORD}), 422, "invalid_request"),
    ] {
        let r = s.post("/auth/register", body.clone(), &[]).await;
        assert_eq!((r.status, r.kind()), (status, kind), "{body}: {}", r.body);
    }
    let r = s
        .http
        .post(s.url("/auth/register"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    let r = crate::integration::harness::Resp::from(r).await;
    assert_eq!((r.status, r.kind()), (400, "bad_json"));
    let r = s.http.post(s.url("/auth/register")).body("email=a").send().await.unwrap();
    let r = crate::integration::harness::Resp::from(r).await;
    assert_eq!((r.status, r.kind()), (415, "unsupported_media_type"));
    let big = "x".repeat(70 * 1024);
    let r =
        s.http.post(s.url("/auth/register")).header("content-type", "application/json").body(big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
});

both_engines!(login_issues_the_profile_s_tokens, |s: Stack| async move {
    let e = email("login");
    let id = s.register(&e).await;
    let b = s.login(&e).await;
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 900);
    assert_eq!(b["refresh_expires_in"], 7 * 86400);
    let sid = b["session_id"].as_str().unwrap();
    let (h, c) = jwt_parts(b["access_token"].as_str().unwrap());
    assert_eq!((h["alg"].as_str(), h["typ"].as_str()), (Some("ES256"), Some("JWT")));
    assert_eq!(c["iss"], "https://issuer.test");
    assert_eq!(c["aud"], "https://api.test");
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["sid"], sid);
    assert_eq!(c["roles"], json!(["user"]));
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 900);
    assert_eq!(c["jti"].as_str().unwrap().len(), 22);
    let (rh, rc) = jwt_parts(b["refresh_token"].as_str().unwrap());
    assert_eq!(rh["typ"], "refresh+jwt");
    assert_ne!(rh["kid"], h["kid"], "the refresh token has its own key");
    assert_eq!(rc["sid"], sid);
    assert_eq!(rc["exp"].as_u64().unwrap() - rc["iat"].as_u64().unwrap(), 7 * 86400);
    // The session started at the revocation service (a session_start in its log).
    let log = s.rev.log().await;
    assert!(log.iter().any(|r| r["kind"] == "session_start" && r["sid"] == sid), "{log:?}");
    // And the profile answers with the account.
    let auth = format!("Bearer {}", b["access_token"].as_str().unwrap());
    let p = s.get("/profile", &[("authorization", &auth)]).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["user"]["email"], e.as_str());
    assert_eq!(p.body["session"]["id"], sid);
});

both_engines!(login_failures_look_the_same, |s: Stack| async move {
    let e = email("fail");
    s.register(&e).await;
    // A social-only account (no password).
    let social = email("social");
    s.state
        .store
        .create_user(&tollgate_auth::store::NewUser {
            id: tollgate_auth::sessions::random_id(),
            email: social.clone(),
            email_verified: true,
            password_hash: None,
            roles: vec!["user".into()],
            created_at: 0,
        })
        .await
        .unwrap();
    let mut bodies = Vec::new();
    for (who, pw) in [(e.as_str(), "wrong password!"), ("nobody@example.test", PASSWORD), (social.as_str(), PASSWORD)] {
        let r = s.post("/auth/login", json!({"email": who, "password": pw}), &[]).await;
        assert_eq!(r.status, 401, "{who}");
        assert!(r.headers.get("www-authenticate").is_some());
        bodies.push(r.text);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "one body for all three: {bodies:?}");
    assert_eq!(s.state.metrics.login_failures.get("invalid_credentials"), 3);
});

both_engines!(rehash_on_login_when_parameters_change, |s: Stack| async move {
    let e = email("rehash");
    s.register(&e).await;
    let weak = tollgate_auth::password::Hasher::new(argon2::Params::new(1024, 1, 1, None).unwrap(), 1).unwrap();
    let old = weak.hash(PASSWORD).await.unwrap();
    let u = s.state.store.user_by_email(&e).await.unwrap().unwrap();
    s.state.store.set_password_hash(&u.id, &old).await.unwrap();
    s.login(&e).await;
    let now = s.state.store.user_by_email(&e).await.unwrap().unwrap().password_hash.unwrap();
    assert_ne!(now, old);
    assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{now}");
    s.login(&e).await;
});

both_engines!(profile_errors_speak_the_edge_s_401, |s: Stack| async move {
    let e = email("prof");
    s.register(&e).await;
    let b = s.login(&e).await;
    let at = b["access_token"].as_str().unwrap().to_owned();
    let r = s.get("/profile", &[]).await;
    assert_eq!((r.status, r.kind()), (401, "missing_token"));
    let r = s.get("/profile", &[("authorization", "Bearer nope")]).await;
    assert_eq!((r.status, r.kind(), r.body["reason"].as_str()), (401, "invalid_token", Some("malformed")));
    // The cookie works as well as the header.
    let r = s.get("/profile", &[("cookie", &format!("access_token={at}"))]).await;
    assert_eq!(r.status, 200);
    // A token of another issuer's key: refused.
    let (_, claims) = jwt_parts(&at);
    assert_eq!(claims["sub"].as_str().unwrap().len(), 22);
    let forged = format!("{}.{}", at.rsplit_once('.').unwrap().0, "A".repeat(86));
    let r = s.get("/profile", &[("authorization", &format!("Bearer {forged}"))]).await;
    assert_eq!(r.body["reason"], "invalid_signature");
    // Past exp: TOKEN_EXPIRED, so the client refreshes silently.
    s.clock.advance_secs(901);
    let r = s.get("/profile", &[("authorization", &format!("Bearer {at}"))]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["code"], "TOKEN_EXPIRED");
    assert_eq!(r.body["reason"], "expired");
    assert!(r.headers["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
});
