//! `tollgate-revocation-bench`: durable ingest against Redis, replication latency, and
//! start-up rebuild time. See the README's "Benchmarks" section.
//!
//! ```text
//! cargo run --release -p tollgate-revocation --features bench --bin tollgate-revocation-bench [-- --quick]
//! ```
//!
//! The service runs as a child process (this binary re-executed with `serve-child`),
//! Redis as `redis-server` with `appendonly yes` and `appendfsync always`; the load
//! generator is bounded in requests and time. Every figure is measured in this run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tollgate_revocation::{apikeys, App, Config, Issuers, Scope};

/// An `exp` a week ahead of the real clock (within the service's 30-day bound).
fn exp() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 7 * 86_400
}

/// The service's per-key limits, lifted for the load generator (one key drives
/// everything here); `/metrics` without a key (the bench reads flush counts).
const BENCH_ENV: [(&str, &str); 4] = [
    ("TOLLGATE_KEY_EVENTS_PER_SEC", "100000000"),
    ("TOLLGATE_KEY_BURST_EVENTS", "100000000"),
    ("TOLLGATE_KEY_MAX_LIVE_ENTRIES", "100000000"),
    ("TOLLGATE_METRICS_REQUIRE_KEY", "false"),
];

struct Opts {
    quick: bool,
    rebuild_events: u64,
    level_requests: [u64; 3],
    level_secs: u64,
    replication_events: u64,
    /// Reuse (or create) this data directory for the start-up measurement.
    rebuild_dir: Option<PathBuf>,
    /// Only the start-up measurement.
    rebuild_only: bool,
}

const LEVELS: [usize; 3] = [1, 16, 64];

fn percentile(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    f64::from(sorted[i]) / 1000.0
}

struct Level {
    clients: usize,
    done: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Level {
    fn rate(&self) -> f64 {
        self.done as f64 / self.secs
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The service under test, as a child process.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(data_dir: &Path) -> Result<Service> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve-child")
            .arg(data_dir)
            .env("TOLLGATE_LOG", "warn")
            .env("TOLLGATE_CHECKPOINT_ON_SHUTDOWN", "false")
            .envs(BENCH_ENV)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(120)).context("service did not start")?;
        Ok(Service { child, base: format!("http://{addr}") })
    }

    fn stop(mut self) -> Result<()> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let st = self.child.wait()?;
        if !st.success() {
            bail!("service exited with {st}");
        }
        Ok(())
    }
}

/// The child: serve `data_dir` on an ephemeral port until SIGTERM.
fn serve_child(data_dir: PathBuf) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut cfg = Config { data_dir, ..Config::default() };
        let _unknown = cfg.apply_env(std::env::vars())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = App::open(cfg).await?;
        println!("listening on {addr}");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        app.serve(listener, async move {
            term.recv().await;
        })
        .await?;
        Ok(())
    })
}

async fn run_level<F, Fut>(clients: usize, max_requests: u64, max_secs: u64, op: F) -> Result<Level>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(max_secs);
    let per_client = max_requests.div_ceil(clients as u64);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client as usize);
            for n in 0..per_client {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                op(c, n).await?;
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(Level { clients, done: all.len() as u64, secs, p50_ms: percentile(&all, 50), p99_ms: percentile(&all, 99) })
}

/// A keep-alive HTTP/1.1 connection speaking just enough to post events: as lean as
/// the Redis client below, so the two load generators cost the machine alike.
struct Http1 {
    r: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    head: String,
    line: String,
    body: Vec<u8>,
}

impl Http1 {
    async fn connect(addr: &str, key: &str) -> Result<Http1> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        );
        Ok(Http1 { r: tokio::io::BufReader::new(r), w, head, line: String::new(), body: Vec::new() })
    }

    /// Posts `body` and checks for a 200.
    async fn post_events(&mut self, body: &str) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let req = format!("{}content-length: {}\r\n\r\n{body}", self.head, body.len());
        self.w.write_all(req.as_bytes()).await?;
        self.line.clear();
        self.r.read_line(&mut self.line).await?;
        let ok = self.line.starts_with("HTTP/1.1 200");
        let mut len = 0usize;
        loop {
            self.line.clear();
            self.r.read_line(&mut self.line).await?;
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse()?;
                }
            }
        }
        self.body.resize(len, 0);
        self.r.read_exact(&mut self.body).await?;
        if !ok {
            bail!("service answered {}", String::from_utf8_lossy(&self.body));
        }
        Ok(())
    }
}

/// A Redis connection speaking just enough RESP for SETEX and PING.
struct Redis {
    r: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Redis {
    async fn connect(port: u16) -> Result<Redis> {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Redis { r: tokio::io::BufReader::new(r), w, line: String::new() })
    }

    async fn command(&mut self, args: &[&str]) -> Result<()> {
        let mut buf = format!("*{}\r\n", args.len());
        for a in args {
            buf.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.w.write_all(buf.as_bytes()).await?;
        self.line.clear();
        self.r.read_line(&mut self.line).await?;
        if !self.line.starts_with('+') {
            bail!("redis answered {:?}", self.line.trim_end());
        }
        Ok(())
    }
}

fn start_redis(dir: &Path) -> Result<Option<(Child, u16)>> {
    let port = free_port()?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes"])
        .args(["--appendfsync", "always", "--save", "", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn();
    match child {
        Ok(c) => Ok(Some((c, port))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("redis-server not found (apt-get install -y redis-server): Redis columns skipped");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn wait_redis(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut r) = Redis::connect(port).await {
            if r.command(&["PING"]).await.is_ok() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("redis did not answer PING");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ingest(o: &Opts, svc: &Service, key: &str, redis: Option<(u16, u32)>) -> Result<()> {
    let redis_port = redis.map(|r| r.0);
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(30)).build()?;
    println!("\n## Durable ingest (one event per request, acknowledged after fsync)\n");
    println!("| clients | tollgate events/s | p50 ms | p99 ms | redis SETEX/s | p50 ms | p99 ms | throughput ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    // Warm-up: connections and sled's first segments.
    for i in 0..200 {
        let ev = json!({"kind": "revoke_token", "jti": format!("warm-{i}"), "exp": exp()});
        http.post(format!("{}/v1/events", svc.base)).bearer_auth(key).json(&ev).send().await?.error_for_status()?;
    }
    let mut notes = Vec::new();
    for (i, &clients) in LEVELS.iter().enumerate() {
        let before = flush_stats(&http, &svc.base).await?;
        let svc_cpu0 = pid_cpu_secs(svc.child.id());
        let addr = svc.base.trim_start_matches("http://").to_string();
        let mut conns = Vec::new();
        for _ in 0..clients {
            conns.push(Arc::new(tokio::sync::Mutex::new(Http1::connect(&addr, key).await?)));
        }
        let conns = Arc::new(conns);
        let ours = run_level(clients, o.level_requests[i], o.level_secs, move |c, n| {
            let conns = conns.clone();
            async move {
                let body = format!(r#"{{"kind":"revoke_token","jti":"b{clients}-{c}-{n}","exp":{}}}"#, exp());
                conns[c].lock().await.post_events(&body).await
            }
        })
        .await?;
        let svc_cpu = pid_cpu_secs(svc.child.id()) - svc_cpu0;
        let after = flush_stats(&http, &svc.base).await?;
        let flushes = after.0 - before.0;
        let redis_cpu0 = redis.map(|r| pid_cpu_secs(r.1));
        let theirs = match redis_port {
            Some(port) => {
                let conns: Vec<Arc<tokio::sync::Mutex<Redis>>> = {
                    let mut v = Vec::new();
                    for _ in 0..clients {
                        v.push(Arc::new(tokio::sync::Mutex::new(Redis::connect(port).await?)));
                    }
                    v
                };
                let conns = Arc::new(conns);
                Some(
                    run_level(clients, o.level_requests[i], o.level_secs, move |c, n| {
                        let conns = conns.clone();
                        async move {
                            let mut r = conns[c].lock().await;
                            r.command(&["SETEX", &format!("blacklist:b{clients}-{c}-{n}"), "3600", "1"]).await
                        }
                    })
                    .await?,
                )
            }
            None => None,
        };
        let redis_cpu = match (redis, redis_cpu0, &theirs) {
            (Some(r), Some(c0), Some(t)) => {
                format!(", redis-server {:.0} µs CPU/event", (pid_cpu_secs(r.1) - c0) / t.done as f64 * 1e6)
            }
            _ => String::new(),
        };
        notes.push(format!(
            "{clients} client(s): {flushes:.0} group commits, {:.1} events each, mean flush {:.3} ms; \
             service {:.0} µs CPU/event{redis_cpu}",
            ours.done as f64 / flushes.max(1.0),
            (after.1 - before.1) / flushes.max(1.0) * 1000.0,
            svc_cpu / ours.done as f64 * 1e6
        ));
        match theirs {
            Some(t) => println!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2}× |",
                ours.clients,
                ours.rate(),
                ours.p50_ms,
                ours.p99_ms,
                t.rate(),
                t.p50_ms,
                t.p99_ms,
                ours.rate() / t.rate()
            ),
            None => println!(
                "| {} | {:.0} | {:.2} | {:.2} | – | – | – | – |",
                ours.clients,
                ours.rate(),
                ours.p50_ms,
                ours.p99_ms
            ),
        }
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}

/// `(flush count, flush seconds)` from the service's metrics.
async fn flush_stats(http: &reqwest::Client, base: &str) -> Result<(f64, f64)> {
    let m = http.get(format!("{base}/metrics")).send().await?.text().await?;
    let get = |name: &str| {
        m.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0)
    };
    Ok((get("tollgate_flush_seconds_count "), get("tollgate_flush_seconds_sum ")))
}

async fn replication(o: &Opts, svc: &Service, key: &str) -> Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let jwk: Value = http.get(format!("{}/v1/denylist/key", svc.base)).send().await?.json().await?;
    let d = |k: &str| {
        tollgate_core::b64::decode(jwk[k].as_str().unwrap_or("").as_bytes()).map_err(|_| anyhow::anyhow!("bad JWK"))
    };
    let pk = tollgate_core::jwk::P256Key::from_coordinates(&d("x")?, &d("y")?)?;
    let snap = http.get(format!("{}/v1/denylist", svc.base)).bearer_auth(key).send().await?.bytes().await?;
    let mut replica = tollgate_core::Denylist::default();
    replica.apply_snapshot(&snap, &pk)?;
    let (tx, mut rx) = tokio::sync::watch::channel((replica.seq(), Instant::now()));
    let (h, base, k) = (http.clone(), svc.base.clone(), key.to_string());
    let poller = tokio::spawn(async move {
        loop {
            let url = format!("{base}/v1/denylist?since={}&wait=30", replica.seq());
            let Ok(r) = h.get(url).bearer_auth(&k).send().await else { return };
            let Ok(b) = r.bytes().await else { return };
            if replica.apply_delta(&b, &pk).is_err() {
                return;
            }
            if tx.send((replica.seq(), Instant::now())).is_err() {
                return;
            }
        }
    });
    let mut lat = Vec::new();
    let mut already = 0;
    for i in 0..o.replication_events {
        let ev = json!({"kind": "logout", "sid": format!("rep-{i}"), "exp": exp()});
        let r: Value =
            http.post(format!("{}/v1/events", svc.base)).bearer_auth(key).json(&ev).send().await?.json().await?;
        let acked = Instant::now();
        let seq = r["accepted"][0]["seq"].as_u64().context("seq")?;
        let got = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|(s, _)| *s >= seq)).await??.1;
        if got <= acked {
            already += 1;
        }
        lat.push(u32::try_from(got.saturating_duration_since(acked).as_micros()).unwrap_or(u32::MAX));
    }
    poller.abort();
    lat.sort_unstable();
    println!("\n## Replication: logout acknowledged → long-polling replica holds it\n");
    println!(
        "{} logouts, one at a time: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} already held when the ack arrived)",
        lat.len(),
        percentile(&lat, 50),
        percentile(&lat, 99),
        lat.last().map_or(f64::NAN, |v| f64::from(*v) / 1000.0),
        already
    );
    Ok(())
}

async fn rebuild(o: &Opts, root: &Path) -> Result<()> {
    let data = o.rebuild_dir.clone().unwrap_or_else(|| root.join("rebuild"));
    println!("\n## Start-up: rebuild the denylist from the log\n");
    if !data.join("db").exists() {
        fill(o, &data).await?;
    }
    let size = dir_size(&data) - std::fs::metadata(data.join("checkpoint.bin")).map(|m| m.len()).unwrap_or(0);
    println!(
        "data directory without checkpoint: {:.1} MiB ({:.0} bytes/event)",
        size as f64 / 1048576.0,
        size as f64 / o.rebuild_events as f64
    );
    let checkpoint = data.join("checkpoint.bin");
    let projection = data.join("denylist.proj");
    // The projection as the filling service left it, restored after the passes so a
    // re-run on the same directory measures the same thing.
    let saved = std::fs::read(&projection).ok();
    let _ = std::fs::remove_file(&checkpoint);
    let cfg = Config { data_dir: data.clone(), ..Config::default() };
    let passes = [
        "no checkpoint: the log and its denylist projection",
        "from a checkpoint at the head",
        "no checkpoint, no projection: the whole log from sled",
    ];
    for (i, label) in passes.into_iter().enumerate() {
        if i == 2 {
            let _ = std::fs::remove_file(&checkpoint);
            let _ = std::fs::remove_file(&projection);
        }
        let (cpu0, t) = (cpu_secs(), Instant::now());
        let app = App::open(cfg.clone()).await?;
        let (took, cpu) = (t.elapsed(), cpu_secs() - cpu0);
        let [open, cp, replay] = app.startup_times();
        println!(
            "- {label}: {:.3} s wall, {cpu:.3} s CPU (sled open {:.3} s, checkpoint {:.3} s, projection + log {:.3} s; head {}, {} events from the projection, {} from the log)",
            took.as_secs_f64(),
            open.as_secs_f64(),
            cp.as_secs_f64(),
            replay.as_secs_f64(),
            app.head(),
            app.projected_at_start(),
            app.replayed_at_start()
        );
        app.close().await?; // writes the checkpoint used by the next pass
    }
    let proj_size = saved.as_ref().map_or(0, Vec::len);
    println!("denylist projection file: {:.1} MiB", proj_size as f64 / 1048576.0);
    let cp = std::fs::metadata(data.join("checkpoint.bin")).map(|m| m.len()).unwrap_or(0);
    println!("checkpoint file: {:.1} MiB", cp as f64 / 1048576.0);
    let _ = std::fs::remove_file(&checkpoint);
    match saved {
        Some(bytes) => std::fs::write(&projection, bytes)?,
        None => {
            let _ = std::fs::remove_file(&projection);
        }
    }
    Ok(())
}

/// A process's user + system CPU time, seconds (Linux `/proc/PID/stat`, 100 Hz ticks).
fn pid_cpu_secs(pid: u32) -> f64 {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

fn stat_cpu(stat: &str) -> f64 {
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // After the command: state (not numeric, skipped), ppid, ..., utime (14th field), stime.
    f.get(10).zip(f.get(11)).map_or(f64::NAN, |(u, s)| (u + s) / 100.0)
}

/// This process's user + system CPU time, seconds (Linux `/proc/self/stat`, 100 Hz ticks).
fn cpu_secs() -> f64 {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

async fn fill(o: &Opts, data: &Path) -> Result<()> {
    let (_, key) = apikeys::create(data, "bench", &[Scope::Admin], &Issuers::Any)?;
    let svc = Service::start(data)?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let t0 = Instant::now();
    let batches = o.rebuild_events.div_ceil(1000);
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let (h, base, k) = (http.clone(), svc.base.clone(), key.clone());
        let n = o.rebuild_events;
        tasks.push(tokio::spawn(async move {
            let mut b = w;
            while b < batches {
                let events: Vec<Value> = (b * 1000..((b + 1) * 1000).min(n))
                    .map(|i| match i % 10 {
                        0 | 1 => json!({"kind": "logout", "sid": format!("sess-{i}"), "iss": "https://idp.example", "exp": exp()}),
                        2 => json!({"kind": "revoke_subject", "sub": format!("user-{}", i % 10_000), "before": 1_700_000_000u64 + i, "exp": exp()}),
                        _ => json!({"kind": "revoke_token", "jti": format!("01HZX{i:020}"), "exp": exp()}),
                    })
                    .collect();
                h.post(format!("{base}/v1/events")).bearer_auth(&k).json(&json!({"events": events})).send().await?.error_for_status()?;
                b += 4;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let fill = t0.elapsed();
    svc.stop()?;
    println!(
        "log of {} events written in {:.1} s over HTTP (batches of 1000, 4 clients: {:.0} events/s)",
        o.rebuild_events,
        fill.as_secs_f64(),
        o.rebuild_events as f64 / fill.as_secs_f64()
    );
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-child") {
        return serve_child(PathBuf::from(args.get(1).context("serve-child DIR")?));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rebuild_only = args.iter().any(|a| a == "--rebuild-only");
    let rebuild_dir = args.iter().position(|a| a == "--rebuild-dir").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let o = if quick {
        Opts {
            quick,
            rebuild_events: 50_000,
            level_requests: [300, 2000, 4000],
            level_secs: 5,
            replication_events: 100,
            rebuild_dir,
            rebuild_only,
        }
    } else {
        Opts {
            quick,
            rebuild_events: 1_000_000,
            level_requests: [5_000, 30_000, 60_000],
            level_secs: 20,
            replication_events: 1000,
            rebuild_dir,
            rebuild_only,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let root = tempfile::tempdir()?;
        println!("# tollgate-revocation bench{}", if o.quick { " (--quick)" } else { "" });
        println!(
            "machine: {} cores; service and load generator share it; data in {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            root.path().display()
        );
        println!("load average at start (other work on the machine): {}", loadavg());
        println!("service: default configuration, except {}", BENCH_ENV.map(|(k, v)| format!("{k}={v}")).join(" "));
        if o.rebuild_only {
            return rebuild(&o, root.path()).await;
        }
        let data = root.path().join("ingest");
        let (_, key) = apikeys::create(&data, "bench", &[Scope::Admin], &Issuers::Any)?;
        let svc = Service::start(&data)?;
        let redis_dir = root.path().join("redis");
        std::fs::create_dir_all(&redis_dir)?;
        let redis = start_redis(&redis_dir)?;
        if let Some((_, port)) = &redis {
            wait_redis(*port).await?;
        }
        let r = ingest(&o, &svc, &key, redis.as_ref().map(|r| (r.1, r.0.id()))).await;
        if let Some((mut c, _)) = redis {
            let _ = c.kill();
            let _ = c.wait();
        }
        r?;
        replication(&o, &svc, &key).await?;
        svc.stop()?;
        rebuild(&o, root.path()).await?;
        println!("\nload average at end: {}", loadavg());
        Ok(())
    })
}
