//! Slow and many clients against the real binary: hundreds of connections from
//! `127.0.0.2` that send half a request line and stall, while `/healthz` and a denylist
//! read from `127.0.0.1` keep answering within a second; the stalled connections are
//! closed by the header timeout (or refused at once by the per-address cap); a client
//! sending its body one byte a second is cut off; an idle kept-alive connection is
//! closed. Also under a file limit of 128 descriptors.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tollgate_revocation::{apikeys, Issuers, Scope};

/// The service binary, killed on drop.
struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on `data`, with `env`, under a file limit of `nofile` if given
/// (through `sh -c 'ulimit -n N; exec ...'`).
fn spawn(dir: &Path, env: &[(&str, &str)], nofile: Option<u32>) -> Proc {
    let bin = env!("CARGO_BIN_EXE_tollgate-revocation");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("service.log")).unwrap();
    let data = dir.join("data");
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.env("TOLLGATE_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::from(log)).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("tollgate-revocation listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("service did not start within 60 s");
    Proc { child, addr: addr.parse().unwrap() }
}

/// A connection from `127.0.0.2` that sends half a request line and stalls.
async fn stall_from_alias(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpSocket::new_v4().ok()?;
    s.bind("127.0.0.2:0".parse().unwrap()).ok()?;
    let mut c = tokio::time::timeout(Duration::from_secs(5), s.connect(addr)).await.ok()?.ok()?;
    c.write_all(b"GET /healthz HT").await.ok()?;
    Some(c)
}

/// Waits until the server closes `c` (EOF or reset), reading whatever it sends;
/// returns what it sent, or None if it is still open at `deadline`.
async fn closed_by(mut c: TcpStream, deadline: Instant) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, c.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `/healthz` and a denylist snapshot from 127.0.0.1, each on a new connection, each
/// answered with 200 within 1 s.
async fn healthy(addr: SocketAddr, read_key: &str) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).pool_max_idle_per_host(0).build().unwrap();
    let r = http.get(format!("http://{addr}/healthz")).send().await.expect("/healthz answered within 1 s");
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .get(format!("http://{addr}/v1/denylist"))
        .bearer_auth(read_key)
        .send()
        .await
        .expect("/v1/denylist answered within 1 s");
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.expect("snapshot body within 1 s");
}

/// The attack and the checks, against a service started with a 2 s header timeout.
async fn stalled_connections_do_not_starve_health_checks(nofile: Option<u32>, attackers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, read_key) = apikeys::create(&data, "edge", &[Scope::DenylistRead], &Issuers::None).unwrap();
    let (_, metrics_key) = apikeys::create(&data, "prom", &[Scope::MetricsRead], &Issuers::None).unwrap();
    let p = spawn(dir.path(), &[("TOLLGATE_HEADER_TIMEOUT_MS", "2000")], nofile);
    healthy(p.addr, &read_key).await;
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..attackers {
        if let Some(c) = stall_from_alias(p.addr).await {
            stalled.push(c);
        }
    }
    assert_eq!(stalled.len(), attackers, "every attacking connection was at least accepted by the kernel");
    let watchers: Vec<_> =
        stalled.into_iter().map(|c| tokio::spawn(closed_by(c, opened + Duration::from_secs(2 + 10)))).collect();
    // Throughout the stall (header timeout 2 s), health and a denylist read answer.
    let until = Instant::now() + Duration::from_millis(2500);
    let mut rounds = 0;
    while Instant::now() < until {
        healthy(p.addr, &read_key).await;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rounds >= 3, "only {rounds} rounds of health checks");
    // Every stalled connection was closed: refused at once by the per-address cap (a
    // 503 too_many_connections, when the client reads it before the close), or by the
    // header timeout (nothing sent).
    for w in watchers {
        let got = w.await.unwrap().expect("a stalled connection was still open 10 s after the header timeout");
        let text = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || (text.starts_with("HTTP/1.1 503") && text.contains("too_many_connections")),
            "{text}"
        );
    }
    let m = reqwest::get(format!("http://{}/metrics", p.addr)).await.unwrap();
    assert_eq!(m.status(), StatusCode::UNAUTHORIZED, "metrics need a key");
    let m = reqwest::Client::new()
        .get(format!("http://{}/metrics", p.addr))
        .bearer_auth(&metrics_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |name: &str| -> u64 {
        m.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or_else(|| panic!("{name} in\n{m}"))
    };
    let per_ip = metric("tollgate_connections_per_address_max");
    let refused = metric("tollgate_connections_refused_total{cap=\"per_address\"}");
    let timed_out = metric("tollgate_connection_timeouts_total{timeout=\"header\"}");
    assert_eq!(refused + timed_out, attackers as u64, "every stalled connection was refused or timed out\n{m}");
    // The address held its cap until the header timeout (more, if opening them all
    // took longer than the timeout on a busy machine and slots came free meanwhile).
    assert!(timed_out >= per_ip, "{m}");
    if let Some(n) = nofile {
        assert!(metric("tollgate_connections_max") < u64::from(n), "the cap stays below the file limit");
        assert!(refused > 0, "over the per-address cap, connections were refused at once\n{m}");
    }
    healthy(p.addr, &read_key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_request_lines_from_one_address_are_cut_off_and_health_stays_up() {
    stalled_connections_do_not_starve_health_checks(None, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_file_limit_of_128_the_caps_keep_health_checks_answering() {
    stalled_connections_do_not_starve_health_checks(Some(128), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_one_byte_a_second_is_cut_off_and_idle_connections_close() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let iss = Issuers::Only(vec!["https://issuer.test".into()]);
    let (_, write_key) = apikeys::create(&data, "origin", &[Scope::EventsWrite], &iss).unwrap();
    let p = spawn(dir.path(), &[("TOLLGATE_BODY_TIMEOUT_MS", "2000"), ("TOLLGATE_KEEP_ALIVE_TIMEOUT_SECS", "2")], None);
    // Slow body: headers promise 200 bytes, then one byte a second.
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {write_key}\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = c.into_split();
    let dribble = tokio::spawn(async move {
        for _ in 0..200 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = started + Duration::from_secs(15);
    loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("the slow body was not cut off within 15 s");
        match tokio::time::timeout(left, rd.read(&mut buf)).await {
            Err(_) => panic!("the slow body was not cut off within 15 s"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    dribble.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    // An idle kept-alive connection: one request, then silence; closed after ~2 s.
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut first = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut first)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let rest = closed_by(c, Instant::now() + Duration::from_secs(12)).await;
    assert!(rest.is_some(), "an idle kept-alive connection was still open 12 s later");
}
