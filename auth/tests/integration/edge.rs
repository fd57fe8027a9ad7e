//! With `edge_assertion_secrets`, protected routes also need the Worker's
//! `X-Tollgate-Assertion` (docs/origin-assertion.md) for the token's subject.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};

use super::harness::{email, Stack};
use crate::both_engines;

const SECRET: &str = "an edge assertion secret of 32+ bytes";

fn assertion(s: &Stack, method: &str, target: &str, sub: &str) -> String {
    let now = s.clock_secs();
    let header = json!({"alg": "HS256", "typ": "tollgate-assertion+jwt", "kid": tollgate_origin::assertion::hs256_kid(SECRET.as_bytes())});
    let hdr = tollgate_origin::assertion::header_digest(&axum::http::HeaderMap::new());
    let payload: Value = json!({
        "iss": "tollgate-edge", "aud": s.base, "iat": now, "exp": now + 60, "jti": "AAAAAAAAAAAAAAAAAAAAAA",
        "method": method, "target": target, "auth": "verified", "sub": sub, "roles": ["user"], "hdr": hdr,
    });
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload.to_string()));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

both_engines!(
    protected_routes_need_the_edge_assertion,
    |c: &mut tollgate_auth::config::Config| c.edge_assertion_secrets = vec![SECRET.into()],
    |s: Stack| async move {
        let e = email("edge");
        let id = s.register(&e).await;
        let b = s.login(&e).await;
        let auth = format!("Bearer {}", b["access_token"].as_str().unwrap());
        // A request straight to the service, token and all: refused.
        let r = s.get("/profile", &[("authorization", &auth)]).await;
        assert_eq!((r.status, r.kind(), r.body["reason"].as_str()), (401, "invalid_assertion", Some("missing")));
        // Through "the edge": accepted.
        let a = assertion(&s, "GET", "/profile", &id);
        let r = s.get("/profile", &[("authorization", &auth), ("x-tollgate-assertion", &a)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // An assertion for another request or another subject: refused.
        let other = assertion(&s, "GET", "/admin/users", &id);
        let r = s.get("/profile", &[("authorization", &auth), ("x-tollgate-assertion", &other)]).await;
        assert_eq!(r.body["reason"], "wrong_target");
        let not_me = assertion(&s, "GET", "/profile", "someone-else");
        let r = s.get("/profile", &[("authorization", &auth), ("x-tollgate-assertion", &not_me)]).await;
        assert_eq!(r.body["reason"], "wrong_subject");
        // Expired after its 60 s.
        s.clock.advance_secs(70);
        let r = s.get("/profile", &[("authorization", &auth), ("x-tollgate-assertion", &a)]).await;
        assert_eq!(r.body["reason"], "expired");
    }
);
