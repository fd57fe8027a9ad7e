//! The stack under test: the revocation service (real binary), the login service (in
//! process, real socket, injected clock), a real database.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tollgate_auth::app::{self, AppState};
use tollgate_auth::clock::ManualClock;
use tollgate_auth::config::Config;

/// Which database a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs `case` on SQLite and on PostgreSQL (optionally with a configuration tweak).
#[macro_export]
macro_rules! both_engines {
    ($name:ident, $body:expr) => {
        $crate::both_engines!($name, |_c: &mut tollgate_auth::config::Config| {}, $body);
    };
    ($name:ident, $tune:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::integration::harness::Db::Sqlite;
                if let Some(s) = $crate::integration::harness::Stack::start(db, $tune).await {
                    ($body)(s).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::integration::harness::Db::Postgres;
                if let Some(s) = $crate::integration::harness::Stack::start(db, $tune).await {
                    ($body)(s).await;
                }
            }
        }
    };
}

fn workspace_target() -> PathBuf {
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The `tollgate-revocation` binary: `TOLLGATE_REVOCATION_BIN`, else the workspace's debug build.
pub fn revocation_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_REVOCATION_BIN") {
        return PathBuf::from(p);
    }
    let p = workspace_target().join("debug/tollgate-revocation");
    assert!(p.exists(), "{} is missing: run `cargo build -p tollgate-revocation` (auth/test.sh does)", p.display());
    p
}

/// The real revocation service, stopped on drop.
pub struct RevocationService {
    child: Child,
    pub url: String,
    pub write_key: String,
    pub read_key: String,
    pub admin_key: String,
    _dir: tempfile::TempDir,
}

impl RevocationService {
    pub fn start() -> RevocationService {
        let dir = tempfile::tempdir().unwrap();
        let bin = revocation_bin();
        let clean = |c: &mut Command| {
            for (k, _) in std::env::vars() {
                if k.starts_with("TOLLGATE_") {
                    c.env_remove(k);
                }
            }
        };
        let key = |name: &str, scope: &str| {
            let issuer: &[&str] = if scope == "events:write" { &["--issuer", "https://issuer.test"] } else { &[] };
            let mut c = Command::new(&bin);
            clean(&mut c);
            let out = c
                .args(["keys", "create", "--data-dir"])
                .arg(dir.path())
                .args(["--name", name, "--scope", scope])
                .args(issuer)
                .stderr(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "keys create --name {name} --scope {scope} failed");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let write_key = key("auth", "events:write");
        let read_key = key("edge", "denylist:read");
        let admin_key = key("admin", "admin");
        let mut c = Command::new(&bin);
        clean(&mut c);
        let mut child = c
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .env("TOLLGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("tollgate-revocation listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the revocation service did not start within 30 s");
        RevocationService { child, url: format!("http://{addr}"), write_key, read_key, admin_key, _dir: dir }
    }

    /// Every live denylist entry (JSON view).
    pub async fn denylist(&self) -> Value {
        reqwest::Client::new()
            .get(format!("{}/v1/denylist", self.url))
            .bearer_auth(&self.read_key)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The stored log records.
    pub async fn log(&self) -> Vec<Value> {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/v1/admin/log?from=0&limit=10000", self.url))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["records"].as_array().cloned().unwrap_or_else(|| v.as_array().cloned().unwrap_or_default())
    }

    /// Kills the service (to test the login service without it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RevocationService {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh PostgreSQL database on the server named by `TOLLGATE_AUTH_TEST_PG_URL`.
async fn fresh_pg_database() -> Option<String> {
    let Ok(base) = std::env::var("TOLLGATE_AUTH_TEST_PG_URL") else {
        assert!(
            std::env::var("TOLLGATE_AUTH_REQUIRE_PG").is_err(),
            "TOLLGATE_AUTH_REQUIRE_PG is set but TOLLGATE_AUTH_TEST_PG_URL is not"
        );
        eprintln!("skipped: TOLLGATE_AUTH_TEST_PG_URL is not set (auth/test.sh starts a PostgreSQL)");
        return None;
    };
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", tollgate_auth::sessions::random_id().to_lowercase().replace(['-', '_'], "x"));
    let pool = sqlx::AnyPool::connect(&base).await.unwrap();
    pool.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    pool.close().await;
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some(format!("{prefix}/{name}"))
}

/// The stack: login service + revocation service + database.
pub struct Stack {
    pub base: String,
    pub clock: ManualClock,
    pub state: Arc<AppState>,
    pub rev: RevocationService,
    pub http: reqwest::Client,
    #[allow(dead_code)]
    pub db: Db,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Starts a stack; `tune` adjusts the configuration. `None`: PostgreSQL is not
    /// available (the case is skipped).
    pub async fn start(db: Db, tune: impl FnOnce(&mut Config)) -> Option<Stack> {
        let database_url = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(fresh_pg_database().await?),
        };
        let rev = RevocationService::start();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            database_url,
            listen: "127.0.0.1:0".parse().unwrap(),
            revocation_url: rev.url.clone(),
            revocation_token: rev.write_key.clone(),
            allowed_origins: vec!["https://app.test".into()],
            ..Config::default()
        };
        tune(&mut config);
        config.validate().unwrap();
        // The revocation service runs on the real clock, so this one starts there too
        // (read once) and then moves only when a test moves it.
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let clock = ManualClock::at_ms(now_ms);
        let state = Arc::new(AppState::new(config, Arc::new(clock.clone())).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let task = tokio::spawn(async move {
            app::run(listener, st, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Some(Stack { base, clock, state, rev, http, db, shutdown: Some(tx), task: Some(task), _dir: dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST a JSON body; returns (status, headers, body).
    pub async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Resp {
        let mut r = self.http.post(self.url(path)).json(&body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        Resp::from(r.send().await.unwrap()).await
    }

    /// POST with no body.
    pub async fn post_empty(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut r = self.http.post(self.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        Resp::from(r.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut r = self.http.get(self.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        Resp::from(r.send().await.unwrap()).await
    }

    /// Registers `email` with a good password; returns the account id.
    pub async fn register(&self, email: &str) -> String {
        let r = self.post("/auth/register", json!({"email": email, "password": PASSWORD}), &[]).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Logs in (JSON tokens).
    pub async fn login(&self, email: &str) -> Value {
        let r = self.post("/auth/login", json!({"email": email, "password": PASSWORD}), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Gives `email` the admin role directly in the database.
    pub async fn make_admin(&self, email: &str) {
        let u = self.state.store.user_by_email(email).await.unwrap().unwrap();
        self.state.store.set_roles(&u.id, &["user".into(), "admin".into()], 0).await.unwrap();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A response: status, headers, JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, body, text }
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    /// The value a `Set-Cookie` gives cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            c.split(';').next().and_then(|kv| kv.split_once('=')).filter(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
        })
    }

    pub fn kind(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// Decodes a JWT's header and payload without verifying (tests inspect what was issued).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let mut it = token.split('.');
    let dec = |s: &str| -> Value {
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
    };
    (dec(it.next().unwrap()), dec(it.next().unwrap()))
}

/// A unique email for a case.
pub fn email(tag: &str) -> String {
    format!("{tag}.{}@example.test", tollgate_auth::sessions::random_id().to_lowercase())
}

impl RevocationService {
    /// Whether the denylist holds an entry of `kind` for `id`.
    pub async fn denies(&self, kind: &str, id: &str) -> bool {
        let d = self.denylist().await;
        d["entries"].as_array().unwrap().iter().any(|e| e["kind"] == kind && e["id"] == id)
    }
}

impl Stack {
    /// The injected clock, in seconds.
    pub fn clock_secs(&self) -> u64 {
        use tollgate_auth::clock::Clock;
        self.clock.now_secs()
    }
}
