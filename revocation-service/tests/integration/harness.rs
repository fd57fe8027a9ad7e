//! Starting and stopping the service in-process, API keys, and waiting with deadlines.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tollgate_core::jwk::P256Key;
use tollgate_core::wire::DenylistSigner;
use tollgate_revocation::{apikeys, App, Config, Issuers, ManualClock, Scope, ServiceError};

/// A fixed signing key so tests can check signatures against a key they hold.
pub const SIGNING_KEY: [u8; 32] = [7; 32];
/// The manual clock's start: 2026-01-01T00:00:00Z, in ms.
pub const T0_MS: u64 = 1_767_225_600_000;
/// `exp` well after T0, within the default bound of 30 days ahead.
pub const FAR: u64 = T0_MS / 1000 + 20 * 86_400;

pub struct Keys {
    pub write: String,
    pub read: String,
    pub admin: String,
}

impl Keys {
    pub fn create(dir: &Path) -> Keys {
        let k = |name: &str, s: Scope, i: Issuers| apikeys::create(dir, name, &[s], &i).unwrap().1;
        Keys {
            write: k("origin", Scope::EventsWrite, Issuers::Any),
            read: k("edge", Scope::DenylistRead, Issuers::None),
            admin: k("ops", Scope::Admin, Issuers::Any),
        }
    }
}

pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    pub http: Client,
    pub replayed_at_start: u64,
    pub projected_at_start: u64,
    pub checkpoint_at_start: Option<u64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServiceError>>>,
}

pub fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        signing_key: Some(SIGNING_KEY.iter().map(|b| format!("{b:02x}")).collect()),
        shutdown_grace_secs: 5,
        metrics_require_key: false,
        ..Config::default()
    }
}

pub fn signer() -> DenylistSigner {
    DenylistSigner::from_secret(&SIGNING_KEY).unwrap()
}

pub fn public_key() -> P256Key {
    signer().public_key()
}

impl Server {
    pub async fn start(dir: &Path) -> Server {
        Server::start_with(config(dir), ManualClock::new(T0_MS)).await
    }

    pub async fn start_with(cfg: Config, clock: ManualClock) -> Server {
        let dir = cfg.data_dir.clone();
        let app = App::open_with_clock(cfg, Arc::new(clock)).await.unwrap();
        let (replayed_at_start, checkpoint_at_start) = (app.replayed_at_start(), app.checkpoint_at_start());
        let projected_at_start = app.projected_at_start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = rx.await;
        }));
        Server {
            base: format!("http://{addr}"),
            dir,
            http: Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
            replayed_at_start,
            projected_at_start,
            checkpoint_at_start,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful shutdown; returns once the database is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t).await.expect("shutdown within 30 s").unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(key).json(&body).send().await.unwrap()
    }

    pub async fn post_raw(&self, key: &str, path: &str, body: Vec<u8>) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, key: &str, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(key).send().await.unwrap()
    }

    pub async fn get_json(&self, key: &str, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(key).header("accept", "application/json").send().await.unwrap()
    }

    /// The JSON view of the denylist.
    pub async fn view(&self, key: &str) -> Value {
        let r = self.get_json(key, "/v1/denylist").await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

/// Asserts a JSON error reply and returns its body.
pub async fn expect_error(r: Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(r.status(), status, "expected {status} {kind}");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], kind, "body {v}");
    assert!(v["detail"].is_string(), "body {v}");
    v
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "condition not met within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
