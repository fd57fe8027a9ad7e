//! The crash test: the real binary, many concurrent writers, `kill -9` at a random
//! moment, restart on the same data directory, and check that every acknowledged
//! event is there with its sequence number, the log is gap-free, and nothing that was
//! not acknowledged is half-applied (log, idempotency keys, refresh family and
//! denylist agree). Several rounds on one data directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tollgate_revocation::{apikeys, Issuers, Scope};

/// An `exp` a day after the real clock (the binary runs on it), the same for the whole
/// run (retries must carry the same event).
fn far() -> u64 {
    static FAR: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *FAR.get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 86_400)
}

struct Proc {
    child: Child,
    base: String,
}

fn start(dir: &Path) -> Proc {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("service.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-revocation"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
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
    Proc { child, base: format!("http://{addr}") }
}

#[derive(Default)]
struct Ledger {
    /// seq → (idempotency key, jti), for every acknowledged revoke_token.
    acked: BTreeMap<u64, (String, String)>,
    /// Events sent but never acknowledged: (idempotency key, jti).
    unacked: Vec<(String, String)>,
    /// The last acknowledged rotation target of the family chain, and its seq.
    chain: Option<(String, u64)>,
}

async fn writer(http: Client, base: String, key: String, client: usize, round: usize, ledger: Arc<Mutex<Ledger>>) {
    for n in 0.. {
        // Singles and batches of three.
        let ids: Vec<(String, String)> = (0..if n % 2 == 0 { 1 } else { 3 })
            .map(|b| (format!("k-{round}-{client}-{n}-{b}"), format!("j-{round}-{client}-{n}-{b}")))
            .collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|(k, j)| json!({"kind": "revoke_token", "jti": j, "exp": far(), "idempotency_key": k}))
            .collect();
        let r = http.post(format!("{base}/v1/events")).bearer_auth(&key).json(&json!({"events": events})).send().await;
        let acked = match r {
            Ok(r) if r.status() == StatusCode::OK => r.json::<Value>().await.ok(),
            _ => None,
        };
        let mut l = ledger.lock().unwrap();
        match acked {
            Some(v) => {
                for (a, id) in v["accepted"].as_array().unwrap().iter().zip(ids) {
                    assert_eq!(a["duplicate"], false);
                    l.acked.insert(a["seq"].as_u64().unwrap(), id);
                }
            }
            None => {
                l.unacked.extend(ids);
                return;
            }
        }
    }
}

async fn chain(http: Client, base: String, key: String, round: usize, start_at: u64, ledger: Arc<Mutex<Ledger>>) {
    for n in start_at.. {
        let body =
            json!({"sid": "chain", "presented_jti": format!("c{n}"), "next_jti": format!("c{}", n + 1), "exp": far()});
        let r = http.post(format!("{base}/v1/refresh/rotate")).bearer_auth(&key).json(&body).send().await;
        match r {
            Ok(r) if r.status() == StatusCode::OK => {
                let v: Value = r.json().await.unwrap();
                ledger.lock().unwrap().chain = Some((format!("c{}", n + 1), v["seq"].as_u64().unwrap()));
            }
            Ok(r) => {
                panic!("round {round}: rotation {n} refused: {} {}", r.status(), r.text().await.unwrap_or_default())
            }
            Err(_) => return,
        }
    }
}

/// Reads the whole log through the admin endpoint.
async fn read_log(http: &Client, base: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let v: Value = http
            .get(format!("{base}/v1/admin/log?from={from}&limit=1000"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let recs = v["records"].as_array().unwrap().clone();
        if recs.is_empty() {
            return out;
        }
        from = recs.last().unwrap()["seq"].as_u64().unwrap() + 1;
        out.extend(recs);
    }
}

/// Checks the restarted service against everything acknowledged so far; returns the
/// chain's current token number.
async fn verify(http: &Client, base: &str, key: &str, ledger: &Mutex<Ledger>) -> u64 {
    let log = read_log(http, base, key).await;
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r["seq"].as_u64().unwrap(), i as u64 + 1, "log has a gap before {r}");
    }
    let by_seq: HashMap<u64, &Value> = log.iter().map(|r| (r["seq"].as_u64().unwrap(), r)).collect();
    for (seq, (k, j)) in &ledger.lock().unwrap().acked {
        let r = by_seq.get(seq).unwrap_or_else(|| panic!("acknowledged seq {seq} lost"));
        assert_eq!(
            (r["idempotency_key"].as_str(), r["jti"].as_str()),
            (Some(k.as_str()), Some(j.as_str())),
            "seq {seq}"
        );
    }
    let mut seen = HashSet::new();
    for r in log.iter().filter_map(|r| r["idempotency_key"].as_str()) {
        assert!(seen.insert(r.to_string()), "idempotency key {r} appended twice");
    }
    // The fold agrees with the log.
    let view: Value = http
        .get(format!("{base}/v1/denylist"))
        .bearer_auth(key)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: HashSet<&str> = view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "jti")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let logged: HashSet<&str> =
        log.iter().filter(|r| r["kind"] == "revoke_token").map(|r| r["jti"].as_str().unwrap()).collect();
    assert_eq!(listed, logged);
    assert_eq!(view["seq"].as_u64().unwrap(), log.len() as u64);
    // Unacknowledged events: either wholly there (log + idempotency key) or wholly absent.
    let logged_keys: HashMap<&str, u64> =
        log.iter().filter_map(|r| Some((r["idempotency_key"].as_str()?, r["seq"].as_u64()?))).collect();
    let unacked = {
        let mut l = ledger.lock().unwrap();
        let unacked = std::mem::take(&mut l.unacked);
        let present = unacked.iter().filter(|(k, _)| logged_keys.contains_key(k.as_str())).count();
        eprintln!(
            "crash round: log {} events, {} acknowledged, {} unacknowledged of which {present} were durable",
            log.len(),
            l.acked.len(),
            unacked.len()
        );
        unacked
    };
    for (k, j) in unacked {
        let ev = json!({"kind": "revoke_token", "jti": j, "exp": far(), "idempotency_key": k});
        let v: Value = http
            .post(format!("{base}/v1/events"))
            .bearer_auth(key)
            .json(&ev)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let a = &v["accepted"][0];
        match logged_keys.get(k.as_str()) {
            Some(seq) => assert_eq!((a["seq"].as_u64(), a["duplicate"].as_bool()), (Some(*seq), Some(true)), "{k}"),
            None => assert_eq!(a["duplicate"], false, "{k}"),
        }
        ledger.lock().unwrap().acked.insert(a["seq"].as_u64().unwrap(), (k, j));
    }
    // The refresh family matches the log: its last logged rotation target is current.
    let last = log
        .iter()
        .rfind(|r| r["kind"] == "rotation")
        .map_or("c0".to_string(), |r| r["to_jti"].as_str().unwrap().to_string());
    if let Some((acked_jti, acked_seq)) = &ledger.lock().unwrap().chain {
        let r = by_seq[acked_seq];
        assert_eq!(r["to_jti"].as_str(), Some(acked_jti.as_str()));
    }
    last.trim_start_matches('c').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, key) = apikeys::create(&data, "crash", &[Scope::Admin], &Issuers::Any).unwrap();
    let http = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut chain_at = 0u64;
    let rounds = 5;
    for round in 0..=rounds {
        let mut p = start(dir.path());
        if round == 0 {
            let s = json!({"sid": "chain", "sub": "u", "refresh_jti": "c0", "exp": far()});
            let r = http.post(format!("{}/v1/sessions", p.base)).bearer_auth(&key).json(&s).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        } else {
            chain_at = verify(&http, &p.base, &key, &ledger).await;
        }
        if round == rounds {
            // Last round: a graceful stop exits cleanly.
            let pid = p.child.id().to_string();
            assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
            let t0 = std::time::Instant::now();
            loop {
                if let Some(st) = p.child.try_wait().unwrap() {
                    assert!(st.success(), "{st}");
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(30), "no exit after SIGTERM");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            break;
        }
        let before = ledger.lock().unwrap().acked.len();
        let kill_after = before + rand::thread_rng().gen_range(30..600);
        let mut tasks = Vec::new();
        for c in 0..16 {
            tasks.push(tokio::spawn(writer(http.clone(), p.base.clone(), key.clone(), c, round, ledger.clone())));
        }
        tasks.push(tokio::spawn(chain(http.clone(), p.base.clone(), key.clone(), round, chain_at, ledger.clone())));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while ledger.lock().unwrap().acked.len() < kill_after {
            assert!(std::time::Instant::now() < deadline, "writers stalled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        p.child.kill().unwrap(); // SIGKILL
        p.child.wait().unwrap();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t).await.expect("client ends after the kill").unwrap();
        }
    }
    let l = ledger.lock().unwrap();
    assert!(l.acked.len() > 4 * 30, "{} events acknowledged", l.acked.len());
}
