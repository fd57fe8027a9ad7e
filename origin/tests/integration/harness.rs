//! The real `tollgate-revocation` binary on a loopback port, its API keys, a TCP proxy
//! that can drop answers, and waiting on conditions with deadlines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The service binary: `TOLLGATE_REVOCATION_BIN`, else built here once with the same
/// cargo and target directory as this test.
pub fn service_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TOLLGATE_REVOCATION_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "TOLLGATE_REVOCATION_BIN={} does not exist", p.display());
            return p;
        }
        // target/<profile>/deps/integration-… → target
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| profile_dir.parent().unwrap().to_path_buf());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "tollgate-revocation", "--bin", "tollgate-revocation", "--target-dir"])
            .arg(&target)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .expect("run cargo build for tollgate-revocation");
        assert!(status.success(), "cargo build -p tollgate-revocation failed");
        let bin = target.join("debug").join("tollgate-revocation");
        assert!(bin.is_file(), "{} not built", bin.display());
        bin
    })
    .clone()
}

/// API keys of one service.
pub struct Keys {
    pub write: String,
    pub read: String,
    pub admin: String,
}

/// A running service; killed when dropped.
pub struct Service {
    pub base: String,
    pub keys: Keys,
    pub issuer: &'static str,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub const ISSUER: &str = "https://auth.test";

impl Service {
    /// Starts the binary on a fresh data directory with `env` (`TOLLGATE_*`) settings.
    pub fn start(env: &[(&str, &str)]) -> Service {
        let bin = service_bin();
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys {
            write: create_key(&bin, dir.path(), "origin", "events:write"),
            read: create_key(&bin, dir.path(), "edge", "denylist:read"),
            admin: create_key(&bin, dir.path(), "ops", "admin"),
        };
        let mut cmd = Command::new(&bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("TOLLGATE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start tollgate-revocation");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("tollgate-revocation listening on ") {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the service printed its address");
        Service { base: format!("http://{addr}"), keys, issuer: ISSUER, dir, child }
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// `GET /v1/admin/log` records from 1.
    pub async fn log(&self) -> Vec<Value> {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/admin/log?from=1&limit=1000", self.base))
            .bearer_auth(&self.keys.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["records"].as_array().unwrap().clone()
    }

    /// `GET /readyz` → the durable head.
    pub async fn head(&self) -> u64 {
        let v: Value = reqwest::get(format!("{}/readyz", self.base)).await.unwrap().json().await.unwrap();
        v["seq"].as_u64().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this build of the service scopes `events:write` keys by issuer (`keys create
/// --issuer` / `--all-issuers`, with 400 `bad_expiry` bounds on times).
pub fn scoped_keys() -> bool {
    static SCOPED: OnceLock<bool> = OnceLock::new();
    *SCOPED.get_or_init(|| {
        let out = Command::new(service_bin()).args(["keys", "create", "--help"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("--all-issuers")
    })
}

impl Service {
    /// Another `events:write` key, scoped to `issuer` (only where keys have scopes).
    pub fn key_for_issuer(&self, name: &str, issuer: &str) -> String {
        assert!(scoped_keys());
        let out = Command::new(service_bin())
            .args(["keys", "create", "--name", name, "--scope", "events:write", "--issuer", issuer, "--data-dir"])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "keys create: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// `keys create`. Where keys have issuer scopes, the tests' main `events:write` key may
/// write for every issuer (`--all-issuers`), as every key could before scopes.
fn create_key(bin: &Path, dir: &Path, name: &str, scope: &str) -> String {
    let mut cmd = Command::new(bin);
    cmd.args(["keys", "create", "--name", name, "--scope", scope, "--data-dir"]).arg(dir);
    if scope == "events:write" && scoped_keys() {
        cmd.arg("--all-issuers");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "keys create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Seconds since the epoch from the wall clock: the service binary runs on it, so
/// `exp` values sent to it are relative to it.
pub fn wall_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// What a [`Proxy`] saw and was told to do.
#[derive(Default)]
pub struct ProxyStats {
    /// Answers to swallow: the proxy reads the service's answer, then closes the
    /// client's connection without forwarding it.
    pub drop_next: AtomicUsize,
    /// Answers swallowed.
    pub dropped: AtomicUsize,
    /// Requests forwarded (by their request line).
    pub requests: AtomicUsize,
    /// Status codes of answers forwarded, in order.
    pub statuses: Mutex<Vec<u16>>,
}

/// A loopback TCP proxy in front of the service.
pub struct Proxy {
    pub base: String,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let stats = Arc::new(ProxyStats::default());
        let s = stats.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                let (s, upstream) = (s.clone(), upstream.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        pipe(client, server, s).await;
                    }
                });
            }
        });
        Proxy { base, stats, task }
    }
}

async fn pipe(client: TcpStream, server: TcpStream, stats: Arc<ProxyStats>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let st = stats.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = &buf[..n];
                    let starts = [&b"POST "[..], b"GET ", b"PUT ", b"DELETE "];
                    if starts.iter().any(|m| chunk.starts_with(m)) {
                        st.requests.fetch_add(1, Ordering::SeqCst);
                    }
                    if sw.write_all(chunk).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                if chunk.starts_with(b"HTTP/1.1 ") {
                    let swallow =
                        stats.drop_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1)).is_ok();
                    if swallow {
                        stats.dropped.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    if let Some(code) = std::str::from_utf8(&chunk[9..12.min(n)]).ok().and_then(|c| c.parse().ok()) {
                        stats.statuses.lock().unwrap().push(code);
                    }
                }
                if cw.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
    }
    up.abort();
    // Dropping the halves closes both connections.
}

/// A listener that accepts connections and never answers (for timeouts).
pub async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = l.accept().await {
            held.push(c);
        }
    });
    (base, task)
}

/// A loopback address where nothing listens (connection refused).
pub async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    base
}

/// Sends the head and half the body of a `POST /v1/events` and stalls: holds one of
/// the service's request slots until its request timeout.
pub async fn half_sent_post(addr: &str, key: &str) -> TcpStream {
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"kind\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
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
