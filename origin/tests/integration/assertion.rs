//! The `X-Tollgate-Assertion` middleware in a real axum server on loopback: every
//! refusal reason, spoofed identity headers without an assertion, a replay after
//! expiry, HS256 rotation with two secrets, ES256 through the core, and the handler
//! seeing only the assertion's payload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tollgate_core::b64;
use tollgate_origin::assertion::hs256_kid;
use tollgate_origin::{AssertionLayer, AssertionVerifier, EdgeIdentity, ManualClock, SigningKey};

const T0: u64 = 1_767_225_600;
const SECRET_OLD: &str = "old-secret-old-secret-old-secret-0";
const SECRET_NEW: &str = "new-secret-new-secret-new-secret-1";
const AUD: &str = "http://origin.test";

enum Signer<'a> {
    Hs(&'a str),
    Es(&'a SigningKey),
}

/// An assertion made as the contract says the Worker makes it (independently of the
/// crate's verifier).
fn make(signer: &Signer<'_>, header: Option<Value>, payload: &Value) -> String {
    let header = header.unwrap_or_else(|| match signer {
        Signer::Hs(s) => json!({"alg": "HS256", "typ": "tollgate-assertion+jwt", "kid": hs256_kid(s.as_bytes())}),
        Signer::Es(k) => json!({"alg": "ES256", "typ": "tollgate-assertion+jwt", "kid": k.kid()}),
    });
    let input =
        format!("{}.{}", b64::encode(header.to_string().as_bytes()), b64::encode(payload.to_string().as_bytes()));
    let sig = match signer {
        Signer::Hs(s) => {
            let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(s.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Signer::Es(k) => k.sign(input.as_bytes()).unwrap(),
    };
    format!("{input}.{}", b64::encode(&sig))
}

/// The `hdr` of these `X-Tollgate-*` headers (lower-case names).
fn hdr(headers: &[(&str, &str)]) -> String {
    let mut h: Vec<_> = headers.to_vec();
    h.sort();
    let canon: String = h.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    b64::encode(&Sha256::digest(canon.as_bytes()))
}

fn payload(method: &str, target: &str, headers: &[(&str, &str)]) -> Value {
    json!({"iss": "tollgate-edge", "aud": AUD, "iat": T0, "exp": T0 + 60, "jti": "req-1", "method": method,
           "target": target, "auth": "verified", "sub": "alice", "sid": "sess-1", "tok_iss": "https://auth.test",
           "roles": ["admin"], "scope": "read write", "hdr": hdr(headers)})
}

struct Origin {
    base: String,
    calls: Arc<AtomicUsize>,
    clock: ManualClock,
    http: reqwest::Client,
}

async fn origin(verifier: AssertionVerifier) -> Origin {
    let clock = ManualClock::new(T0);
    let verifier = verifier.audience(AUD).with_clock(Arc::new(clock.clone()));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new()
        .fallback(move |who: EdgeIdentity| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"sub": who.sub, "sid": who.sid, "roles": who.roles, "scope": who.scope,
                                  "tok_iss": who.tok_iss, "jti": who.jti, "admin": who.has_role("admin"),
                                  "write": who.has_scope("write")}))
            }
        })
        .layer(AssertionLayer::new(verifier));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    Origin { base, calls, clock, http: reqwest::Client::new() }
}

impl Origin {
    async fn send(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut b = self.http.request(method.parse().unwrap(), format!("{}{target}", self.base));
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let r = b.send().await.unwrap();
        let status = r.status();
        if method == "HEAD" {
            return (status, Value::Null);
        }
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body: Value = r.json().await.unwrap();
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(ct, "application/json");
            assert_eq!(body["error"], "invalid_assertion", "{body}");
        }
        (status, body)
    }

    async fn reason(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> String {
        let (status, body) = self.send(method, target, headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        body["reason"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn the_handler_gets_the_identity_from_the_assertion_only() {
    let o = origin(AssertionVerifier::hs256([SECRET_OLD, SECRET_NEW]).unwrap()).await;
    let target = "/profile/caf%C3%A9?q=a%20b&x=1";
    // The Worker sent X-Tollgate-Sub "mallory" (as a loose header); the payload says
    // alice: the handler sees alice.
    let sent = [("x-tollgate-sub", "mallory"), ("x-tollgate-request-id", "req-1")];
    for secret in [SECRET_OLD, SECRET_NEW] {
        let a = make(&Signer::Hs(secret), None, &payload("GET", target, &sent));
        let (status, body) = o.send("GET", target, &[sent[0], sent[1], ("x-tollgate-assertion", a.as_str())]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"sub": "alice", "sid": "sess-1", "roles": ["admin"], "scope": "read write",
                   "tok_iss": "https://auth.test", "jti": "req-1", "admin": true, "write": true})
        );
    }
    // A secret that was dropped from the origin's list (or never given) is unknown.
    let a = make(&Signer::Hs("third-secret-third-secret-third-2"), None, &payload("GET", target, &sent));
    assert_eq!(o.reason("GET", target, &[sent[0], sent[1], ("x-tollgate-assertion", &a)]).await, "unknown_key");
    // HEAD stays HEAD.
    let a = make(&Signer::Hs(SECRET_NEW), None, &payload("HEAD", "/h", &[]));
    assert_eq!(o.send("HEAD", "/h", &[("x-tollgate-assertion", &a)]).await.0, StatusCode::OK);
    assert_eq!(o.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn es256_assertions_verify_through_the_core() {
    let key = SigningKey::generate_es256().unwrap();
    let o = origin(AssertionVerifier::es256(&[key.public_jwk().clone()]).unwrap()).await;
    let a = make(&Signer::Es(&key), None, &payload("POST", "/x", &[]));
    let (status, body) = o.send("POST", "/x", &[("x-tollgate-assertion", &a)]).await;
    assert_eq!((status, body["sub"].as_str()), (StatusCode::OK, Some("alice")));
    // Another key with the same kid claimed: the signature fails.
    let other = SigningKey::generate_es256().unwrap();
    let forged = make(
        &Signer::Es(&other),
        Some(json!({"alg": "ES256", "typ": "tollgate-assertion+jwt",
                                                       "kid": key.kid()})),
        &payload("POST", "/x", &[]),
    );
    assert_eq!(o.reason("POST", "/x", &[("x-tollgate-assertion", &forged)]).await, "bad_signature");
    // An HS256 assertion at an ES256-only origin: no such key.
    let hs = make(&Signer::Hs(SECRET_OLD), None, &payload("POST", "/x", &[]));
    assert_eq!(o.reason("POST", "/x", &[("x-tollgate-assertion", &hs)]).await, "unknown_key");
    assert_eq!(o.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn spoofed_headers_without_an_assertion_and_a_replay_after_expiry_are_refused() {
    let o = origin(AssertionVerifier::hs256([SECRET_OLD]).unwrap()).await;
    // Straight to the origin with the identity headers an attacker would set.
    let spoofed =
        [("x-tollgate-sub", "admin"), ("x-tollgate-sid", "s"), ("x-tollgate-claims", "eyJyb2xlcyI6WyJhZG1pbiJdfQ")];
    assert_eq!(o.reason("GET", "/admin/users", &spoofed).await, "missing");
    // A captured assertion, replayed once it has expired (exp = iat + 60, leeway 5).
    let a = make(&Signer::Hs(SECRET_OLD), None, &payload("GET", "/admin/users", &[]));
    let with = [("x-tollgate-assertion", a.as_str())];
    assert_eq!(o.send("GET", "/admin/users", &with).await.0, StatusCode::OK);
    o.clock.set(T0 + 64);
    assert_eq!(o.send("GET", "/admin/users", &with).await.0, StatusCode::OK, "within the leeway");
    o.clock.set(T0 + 65);
    assert_eq!(o.reason("GET", "/admin/users", &with).await, "expired");
    // Replayed for another request, or with spoofed headers added: refused too.
    o.clock.set(T0);
    assert_eq!(o.reason("GET", "/admin/users?all=1", &with).await, "wrong_target");
    assert_eq!(o.reason("GET", "/admin/users", &[with[0], spoofed[0]]).await, "wrong_headers");
    assert_eq!(o.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn every_reason_in_check_order() {
    let o = origin(AssertionVerifier::hs256([SECRET_OLD]).unwrap()).await;
    let hs = Signer::Hs(SECRET_OLD);
    let good = payload("GET", "/p", &[("x-tollgate-sub", "alice")]);
    let with = |p: &Value, f: &dyn Fn(&mut Value)| {
        let mut p = p.clone();
        f(&mut p);
        make(&hs, None, &p)
    };
    let header = |h: Value| make(&hs, Some(h), &good);
    let kid = hs256_kid(SECRET_OLD.as_bytes());
    let valid = make(&hs, None, &good);
    let parts: Vec<String> = valid.split('.').map(str::to_string).collect();
    let (h64, p64, s64) = (&parts[0], &parts[1], &parts[2]);
    let mut flipped = b64::decode(s64.as_bytes()).unwrap();
    flipped[0] ^= 1;
    let cases: Vec<(String, &str)> = vec![
        ("a.b".into(), "malformed"),
        (format!("{valid}.x"), "malformed"),
        (format!("{h64}=.{p64}.{s64}"), "malformed"),
        (
            format!("{}.{p64}.{s64}", b64::encode(br#"{"alg":"HS256","alg":"HS256","typ":"tollgate-assertion+jwt"}"#)),
            "malformed",
        ),
        (header(json!({"alg": "HS256", "typ": "JWT", "kid": kid})), "malformed"),
        (header(json!({"alg": "HS256", "typ": "tollgate-assertion+jwt", "kid": kid, "crit": ["x"]})), "malformed"),
        (header(json!({"alg": "HS256", "typ": "tollgate-assertion+jwt"})), "malformed"),
        (header(json!({"alg": "none", "typ": "tollgate-assertion+jwt", "kid": kid})), "unknown_key"),
        (header(json!({"alg": "HS256", "typ": "tollgate-assertion+jwt", "kid": "nope"})), "unknown_key"),
        (format!("{h64}.{p64}.{}", b64::encode(&flipped)), "bad_signature"),
        (format!("{h64}.{p64}."), "bad_signature"),
        (with(&good, &|p| p["roles"] = json!("admin")), "malformed"),
        (with(&good, &|p| p["auth"] = json!("maybe")), "malformed"),
        (with(&good, &|p| p["iss"] = json!("someone-else")), "wrong_issuer"),
        (with(&good, &|p| p["aud"] = json!("http://other.test")), "wrong_audience"),
        (with(&good, &|p| p["exp"] = json!(T0 - 5)), "expired"),
        (with(&good, &|p| p["iat"] = json!(T0 + 6)), "not_yet_valid"),
        (with(&good, &|p| p["method"] = json!("POST")), "wrong_method"),
        (with(&good, &|p| p["target"] = json!("/p?")), "wrong_target"),
        (with(&good, &|p| p["hdr"] = json!(hdr(&[("x-tollgate-sub", "bob")]))), "wrong_headers"),
    ];
    for (assertion, want) in &cases {
        let got = o.reason("GET", "/p", &[("x-tollgate-sub", "alice"), ("x-tollgate-assertion", assertion)]).await;
        assert_eq!(&got, want, "{assertion}");
    }
    // Two assertion headers.
    let two = [("x-tollgate-assertion", valid.as_str()), ("x-tollgate-assertion", &valid), ("x-tollgate-sub", "alice")];
    assert_eq!(o.reason("GET", "/p", &two).await, "malformed");
    // And the good one passes: the checks above failed for their reason only.
    let (status, _) = o.send("GET", "/p", &[("x-tollgate-sub", "alice"), ("x-tollgate-assertion", &valid)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(o.calls.load(Ordering::SeqCst), 1);
    // Every reason of the contract appears.
    let mut seen: Vec<&str> = cases.iter().map(|c| c.1).collect();
    seen.push("missing");
    for r in tollgate_origin::AssertionError::ALL {
        assert!(seen.contains(&r.reason()), "{} untested here", r.reason());
    }
}

#[tokio::test]
async fn without_the_layer_the_extractor_fails_closed() {
    let app = axum::Router::new().fallback(|who: EdgeIdentity| async move { who.jti });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let r = reqwest::Client::new().get(format!("{base}/x")).header("x-tollgate-sub", "admin").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "misconfigured"}));
}
