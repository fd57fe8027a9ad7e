//! End-to-end tests of the `tollgate` binary: the shared conformance suite
//! (`shared/conformance/cases/*.jsonl`, beside the checkout) through
//! `tollgate conformance`, a runner that must notice a wrong expectation, and the
//! `keygen` → `mint` → `verify` round trip for both algorithms, with the JWKS read from
//! a file and from a small HTTP server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// A fixed clock for minting and verifying (2025-11-22T08:26:40Z).
const NOW: u64 = 1_763_800_000;

fn tollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

fn run(args: &[&str]) -> Output {
    tollgate().args(args).output().expect("run tollgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// `shared/conformance/cases`, beside the workspace root (`cli/..`).
fn cases_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/cases");
    assert!(dir.is_dir(), "the shared conformance cases are missing: {}", dir.display());
    dir
}

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

fn case_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap().lines().filter(|l| !l.trim().is_empty()).map(String::from).collect()
}

// ------------------------------------------------------------------- conformance

#[test]
fn every_shared_conformance_case_passes() {
    let files = case_files();
    let mut ids = Vec::new();
    for f in &files {
        for line in case_lines(f) {
            let case: Value = serde_json::from_str(&line).unwrap();
            ids.push(case["id"].as_str().unwrap().to_string());
        }
    }
    let out = tollgate().arg("conformance").args(&files).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "conformance failed:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let (summary, results) = lines.split_last().unwrap();
    assert_eq!(*summary, format!("{} passed, 0 failed", ids.len()));
    // One JSON line per case, in file order, none marked as failing.
    assert_eq!(results.len(), ids.len());
    for (line, id) in results.iter().zip(&ids) {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["id"].as_str(), Some(id.as_str()));
        assert!(r.get("pass").is_none(), "{line}");
        assert!(matches!(r["verdict"].as_str(), Some("accept" | "reject")), "{line}");
    }
    // The suite as shipped has 96 cases; more is fine, fewer means files went missing.
    assert!(ids.len() >= 96, "only {} cases", ids.len());
}

#[test]
fn a_wrong_expectation_fails_the_run() {
    let lines = case_lines(&cases_dir().join("es256.jsonl"));
    let mut accept: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(accept["expect"], json!({"verdict": "accept"}));
    let good = accept.clone();
    accept["id"] = json!("flipped/accept-expected-reject");
    accept["expect"] = json!({"verdict": "reject", "reason": "invalid_signature"});
    let mut reject = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|c| c["expect"]["reason"] == "unknown_key")
        .unwrap();
    reject["id"] = json!("flipped/wrong-reason");
    reject["expect"]["reason"] = json!("invalid_signature");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flipped.jsonl");
    std::fs::write(&file, format!("{good}\n{accept}\n\n{reject}\nnot json\n")).unwrap();
    let out = tollgate().arg("conformance").arg(&file).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().last(), Some("1 passed, 3 failed"));
    let results: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let failed: Vec<&str> =
        results.iter().filter(|r| r["pass"] == json!(false)).map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(failed.len(), 3);
    assert_eq!(&failed[..2], ["flipped/accept-expected-reject", "flipped/wrong-reason"]);
    let wrong_reason = results.iter().find(|r| r["id"] == "flipped/wrong-reason").unwrap();
    assert_eq!(wrong_reason["reason"], "unknown_key");

    // A file that cannot be read is an error of the run itself, not a case failure.
    let out = tollgate().arg("conformance").arg(dir.path().join("missing.jsonl")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

// ------------------------------------------------------------------- keygen, mint, verify

struct Key {
    _dir: tempfile::TempDir,
    pem: PathBuf,
    jwks: PathBuf,
    kid: String,
}

fn keygen(alg: &str) -> Key {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    let out = run(&["keygen", alg, "--out", prefix.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let pem = dir.path().join("k.pem");
    let jwks = dir.path().join("k.jwks.json");
    assert!(std::fs::read_to_string(&pem).unwrap().contains("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&pem).unwrap().permissions().mode() & 0o077, 0, "private key readable by others");
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&jwks).unwrap()).unwrap();
    let key = &doc["keys"][0];
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["alg"], alg.to_uppercase());
    assert_eq!(key["kid"], info["kid"]);
    assert!(key.get("d").is_none(), "the JWKS must hold only the public key");
    Key { kid: info["kid"].as_str().unwrap().to_string(), pem, jwks, _dir: dir }
}

fn mint(key: &Key, extra: &[&str]) -> String {
    let mut args = vec!["mint", "--key", key.pem.to_str().unwrap(), "--sub", "alice", "--ttl", "15m"];
    args.extend_from_slice(&["--sid", "s1", "--claim", "role=admin"]);
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = stdout(&out).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}

/// Verifies and returns (exit code, parsed stdout).
fn verify(jwks: &str, token: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify", "--jwks", jwks];
    args.extend_from_slice(extra);
    args.push(token);
    let out = run(&args);
    let text = stdout(&out);
    let v =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn assert_claims(claims: &Value, key: &Key) {
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], "s1");
    assert_eq!(claims["role"], "admin");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 900);
    assert!(!key.kid.is_empty());
}

/// keygen → mint → verify, then the typed rejections, for one algorithm.
fn round_trip(alg: &str) {
    let key = keygen(alg);
    let jwks = key.jwks.to_str().unwrap();
    let now = NOW.to_string();

    // As a user would type it: the clock decides, and 15 minutes is plenty.
    let token = mint(&key, &[]);
    let (code, claims) = verify(jwks, &token, &[]);
    assert_eq!(code, 0, "{claims}");
    assert_claims(&claims, &key);

    // With a fixed clock: valid until exactly iat + 900.
    let token = mint(&key, &["--now", &now, "--iss", "https://issuer.test", "--aud", "https://api.test"]);
    let (code, claims) = verify(jwks, &token, &["--now", &(NOW + 899).to_string(), "--iss", "https://issuer.test"]);
    assert_eq!(code, 0, "{claims}");
    assert_claims(&claims, &key);
    assert_eq!(claims["iat"], NOW);

    let reject = |extra: &[&str], reason: &str| {
        let (code, out) = verify(jwks, &token, extra);
        assert_eq!(code, 1, "{extra:?}: {out}");
        assert_eq!(out["error"], "invalid_token");
        assert_eq!(out["reason"], reason, "{extra:?}: {out}");
        assert!(out["detail"].as_str().is_some_and(|d| !d.is_empty()));
    };
    reject(&["--now", &(NOW + 900).to_string()], "expired");
    reject(&["--now", &(NOW + 800).to_string(), "--iss", "https://other.test"], "invalid_issuer");
    reject(&["--now", &now, "--aud", "https://other.test"], "invalid_audience");
    reject(&["--now", &now, "--typ", "at+jwt"], "invalid_type");
    reject(&["--now", &now, "--require", "nonce"], "missing_claim");
    let other = if alg == "es256" { "RS256" } else { "ES256" };
    reject(&["--now", &now, "--alg", other], "unsupported_algorithm");

    // The signature is checked: a changed payload and a stranger's JWKS both fail.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = tollgate_core::b64::encode(br#"{"sub":"mallory","exp":99999999999}"#);
    let forged = parts.join(".");
    let (code, out) = verify(jwks, &forged, &["--now", &now]);
    assert_eq!((code, out["reason"].as_str()), (1, Some("invalid_signature")));
    let (code, out) = verify(jwks, "not.a.token", &["--now", &now]);
    assert_eq!((code, out["reason"].as_str()), (1, Some("malformed")));

    // The token can come from standard input.
    let mut child = tollgate()
        .args(["verify", "--jwks", jwks, "--now", &now, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{token}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "alice");
}

#[test]
fn es256_keygen_mint_verify() {
    round_trip("es256");
}

#[test]
fn rs256_keygen_mint_verify() {
    round_trip("rs256");
}

#[test]
fn a_token_is_not_verified_by_another_key() {
    let a = keygen("es256");
    let b = keygen("es256");
    let token = mint(&a, &["--now", &NOW.to_string()]);
    // The kid names a's key, which b's JWKS does not have.
    let (code, out) = verify(b.jwks.to_str().unwrap(), &token, &["--now", &NOW.to_string()]);
    assert_eq!((code, out["reason"].as_str()), (1, Some("unknown_key")));
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["keygen", "hs256", "--out", "/nonexistent/k"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["verify", "--jwks", "/nonexistent/jwks.json", "a.b.c"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/jwks.json"));
    let out = run(&["mint", "--key", "/nonexistent/k.pem", "--sub", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

// ------------------------------------------------------------------- JWKS over HTTP

/// A one-thread HTTP/1.1 server on 127.0.0.1 that serves `body` at `/jwks.json`, 404
/// elsewhere, and stops when asked for `/stop` — so the test never waits on a timer.
struct JwksServer {
    port: u16,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl JwksServer {
    fn start(body: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                // Drain the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                seen.push(path.clone());
                let (status, body) = match path.as_str() {
                    "/jwks.json" => ("200 OK", body.as_str()),
                    "/stop" => break,
                    _ => ("404 Not Found", "{}"),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).unwrap();
            }
            seen
        });
        JwksServer { port, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the server and returns the paths it was asked for.
    fn stop(mut self) -> Vec<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(b"GET /stop HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn verify_with_jwks_from_a_url() {
    let key = keygen("es256");
    let server = JwksServer::start(std::fs::read_to_string(&key.jwks).unwrap());
    let now = NOW.to_string();
    let token = mint(&key, &["--now", &now]);

    let (code, claims) = verify(&server.url("/jwks.json"), &token, &["--now", &now]);
    assert_eq!(code, 0, "{claims}");
    assert_claims(&claims, &key);
    let (code, out) = verify(&server.url("/jwks.json"), &token, &["--now", &(NOW + 900).to_string()]);
    assert_eq!((code, out["reason"].as_str()), (1, Some("expired")));

    // A failed fetch is an error (exit 2) naming the URL, not a verdict.
    let out = run(&["verify", "--jwks", &server.url("/missing.json"), "--now", &now, &token]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/missing.json"));

    assert_eq!(server.stop(), ["/jwks.json", "/jwks.json", "/missing.json", "/stop"]);
}
