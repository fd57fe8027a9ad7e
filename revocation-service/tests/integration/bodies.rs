//! Property tests: no request body or query string gets a 5xx; every 4xx is the JSON
//! error shape. Driven in-process through the router (same handlers, no socket) on a
//! real sled database.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tollgate_revocation::{App, ManualClock};
use tower::ServiceExt;

use super::harness::{config, Keys, T0_MS};

const FIELDS: &[&str] = &[
    "kind",
    "jti",
    "sid",
    "sub",
    "before",
    "exp",
    "iss",
    "idempotency_key",
    "events",
    "from_jti",
    "to_jti",
    "refresh_jti",
    "presented_jti",
    "next_jti",
    "x",
];
const KINDS: &[&str] =
    &["revoke_token", "logout", "revoke_subject", "rotation", "reuse_detected", "session_start", "", "LOGOUT"];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(KINDS).prop_map(Value::from),
        proptest::sample::select(FIELDS).prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        (1usize..3000).prop_map(|n| Value::from("y".repeat(n))),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(FIELDS).prop_map(String::from), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid body for one of the endpoints with one field replaced or removed.
fn mutated() -> impl Strategy<Value = Value> {
    let valid = prop_oneof![
        Just(json!({"kind": "revoke_token", "jti": "j", "exp": 2_000_000_000u64})),
        Just(
            json!({"kind": "revoke_subject", "sub": "u", "before": 5, "exp": 2_000_000_000u64, "idempotency_key": "k"})
        ),
        Just(json!({"sid": "s", "sub": "u", "refresh_jti": "r0", "exp": 2_000_000_000u64})),
        Just(json!({"sid": "s", "presented_jti": "r0", "next_jti": "r1", "exp": 2_000_000_000u64})),
        Just(json!({"events": [{"kind": "logout", "sid": "s", "exp": 1}]})),
    ];
    (valid, proptest::sample::select(FIELDS), proptest::option::of(json_value())).prop_map(|(mut v, f, new)| {
        if let Some(o) = v.as_object_mut() {
            match new {
                Some(n) => o.insert(f.to_string(), n),
                None => o.remove(f),
            };
        }
        v
    })
}

struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    key: String,
    read: String,
    _dir: tempfile::TempDir,
    _app: Option<App>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::create(dir.path());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        // No long-poll may wait: a generated `wait=N` must not stall the test.
        let cfg = tollgate_revocation::Config { max_long_poll_secs: 0, ..config(dir.path()) };
        let app = rt.block_on(App::open_with_clock(cfg, Arc::new(ManualClock::new(T0_MS)))).unwrap();
        Harness { router: app.router(), rt, key: keys.admin, read: keys.read, _dir: dir, _app: Some(app) }
    }

    /// Sends a request; asserts the reply is not a 5xx and, if a 4xx, the JSON error shape.
    fn check(&self, req: Request<Body>) -> Result<u16, TestCaseError> {
        let router = self.router.clone();
        let (status, body) = self.rt.block_on(async move {
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
            (status, body)
        });
        prop_assert!(status.as_u16() < 500, "status {status}: {}", String::from_utf8_lossy(&body));
        if status.is_client_error() {
            let v: Value = serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
        }
        Ok(status.as_u16())
    }

    fn post(&self, path: &str, body: Vec<u8>) -> Result<u16, TestCaseError> {
        let req = Request::post(path)
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        self.check(req)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(app) = self._app.take() {
            let _ = self.rt.block_on(app.close());
        }
    }
}

const PATHS: [&str; 3] = ["/v1/events", "/v1/sessions", "/v1/refresh/rotate"];

#[test]
fn no_body_gets_a_5xx() {
    let h = Harness::new();
    let cfg = ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(cfg, |(bytes in proptest::collection::vec(any::<u8>(), 0..256), path in 0usize..3)| {
        h.post(PATHS[path], bytes)?;
    });
    proptest!(cfg, |(v in json_value(), path in 0usize..3)| {
        h.post(PATHS[path], serde_json::to_vec(&v).unwrap())?;
    });
    proptest!(cfg, |(v in mutated(), path in 0usize..3)| {
        h.post(PATHS[path], serde_json::to_vec(&v).unwrap())?;
    });
    proptest!(cfg, |(q in "[a-z=&0-9%-]{0,30}", json in any::<bool>())| {
        let mut req = Request::get(format!("/v1/denylist?{q}")).header("authorization", format!("Bearer {}", h.read));
        if json {
            req = req.header("accept", "application/json");
        }
        let status = h.check(req.body(Body::empty()).unwrap())?;
        prop_assert!(status == 200 || status == 400 || status == 410, "{q} → {status}");
    });
}
