//! Tokens issued per second by `tollgate-origin` (`Issuer::issue_access`, `ring`
//! backend; pure Rust with `--no-default-features`) against `jsonwebtoken` 11 with aws-lc-rs signing the same claims with the
//! same key, ES256 and RS256-2048, one thread, in the same run.
//!
//! Both sides do a whole issue per iteration: a fresh 128-bit `jti`, the clock read,
//! the claims serialised, the signature, base64url. The raw signatures (`ring` as the
//! crate calls it, aws-lc-rs as jsonwebtoken calls it) are timed beside them to show
//! where the time goes. Cases run interleaved (one ~2 ms batch of each per round) and
//! every ratio is the median of within-round ratios, so load from other work on the
//! machine weighs on all cases alike. `BENCH_SECONDS` (default 10) per algorithm.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tollgate_origin::{AccessClaims, Algorithm, Issuer, IssuerConfig, KeySet, SigningKey, SystemClock};

/// The signing backend this build of tollgate-origin uses.
const BACKEND: &str = if cfg!(feature = "ring") { "ring" } else { "rust" };
const ISS: &str = "https://auth.example";
const AUD: &str = "https://api.example";

/// The peer's claims: what `issue_access` writes for these inputs.
#[derive(Serialize)]
struct PeerClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    sid: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
    roles: &'a [&'a str],
}

const ORIGIN_CASE: &str = if cfg!(feature = "ring") { "tollgate-origin (ring)" } else { "tollgate-origin (pure Rust)" };

type Case<'a> = (&'static str, Box<dyn FnMut() -> usize + 'a>);

/// Alternates the cases, one batch of each per round, for `budget`; returns per case
/// the median ns per iteration and its median within-round ratio to each other case.
fn interleaved(budget: Duration, cases: &mut [Case<'_>]) -> Vec<(f64, Vec<f64>)> {
    let n = cases.len();
    let mut per_batch = vec![1u64; n];
    for (c, (_, f)) in cases.iter_mut().enumerate() {
        loop {
            let t = Instant::now();
            for _ in 0..per_batch[c] {
                black_box(f());
            }
            if t.elapsed() >= Duration::from_millis(2) {
                break;
            }
            per_batch[c] *= 2;
        }
    }
    let mut samples = vec![Vec::new(); n];
    let end = Instant::now() + budget;
    let mut round = 0;
    while Instant::now() < end || round < 5 {
        for k in 0..n {
            let c = (k + round) % n;
            let t = Instant::now();
            for _ in 0..per_batch[c] {
                black_box((cases[c].1)());
            }
            samples[c].push(t.elapsed().as_nanos() as f64 / per_batch[c] as f64);
        }
        round += 1;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (0..n)
        .map(|c| {
            let ratios =
                (0..n).map(|o| median(samples[c].iter().zip(&samples[o]).map(|(a, b)| a / b).collect())).collect();
            (median(samples[c].clone()), ratios)
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn run(alg: Algorithm, budget: Duration) -> String {
    let key = match alg {
        Algorithm::Rs256 => SigningKey::generate_rsa(2048).unwrap(),
        _ => SigningKey::generate_es256().unwrap(),
    };
    assert_eq!(key.backend(), BACKEND);
    let pem = key.to_pkcs8_pem().unwrap();
    let t0 = now();
    let issuer = Issuer::new(
        IssuerConfig::new(ISS, AUD),
        KeySet::new(key.clone(), t0),
        KeySet::new(SigningKey::generate_es256().unwrap(), t0),
    )
    .unwrap()
    .with_clock(Arc::new(SystemClock));
    let claims = AccessClaims::new("user-1234", "sess-5678").roles(["user"]);

    let (peer_alg, peer_key) = match alg {
        Algorithm::Rs256 => (jsonwebtoken::Algorithm::RS256, jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())),
        _ => (jsonwebtoken::Algorithm::ES256, jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())),
    };
    let peer_key = peer_key.unwrap();
    let mut header = jsonwebtoken::Header::new(peer_alg);
    header.kid = Some(key.kid().to_string());
    header.typ = Some("JWT".into());
    let peer_issue = || {
        let iat = now();
        let c = PeerClaims {
            iss: ISS,
            sub: "user-1234",
            aud: AUD,
            sid: "sess-5678",
            jti: tollgate_origin::random_id().unwrap(),
            iat,
            exp: iat + 900,
            roles: &["user"],
        };
        jsonwebtoken::encode(&header, &c, &peer_key).unwrap()
    };

    // Both sides' tokens verify with tollgate-core under the issuer's access policy,
    // and carry the same claims; else the figures would compare different work.
    let verifier = issuer.access_verifier();
    let ours = issuer.issue_access(&claims).unwrap();
    let theirs = peer_issue();
    let a = verifier.verify(&ours.token, now() as i64, None).expect("tollgate-origin's token verifies");
    let b = verifier.verify(&theirs, now() as i64, None).expect("the peer's token verifies");
    let names = |c: &tollgate_core::Claims| c.as_map().keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a.claims), names(&b.claims));

    // The raw signatures each side makes.
    let input = ours.token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let der = pem_to_der(&pem);
    let ring_rng = ring::rand::SystemRandom::new();
    let aws_rng = aws_lc_rs::rand::SystemRandom::new();
    let raw_ring: Box<dyn FnMut() -> usize> = match alg {
        Algorithm::Rs256 => {
            let kp = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
            let (input, rng) = (input.clone(), &ring_rng);
            Box::new(move || {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&ring::signature::RSA_PKCS1_SHA256, rng, &input, &mut sig).unwrap();
                sig.len()
            })
        }
        _ => {
            let kp = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &der,
                &ring_rng,
            )
            .unwrap();
            let (input, rng) = (input.clone(), &ring_rng);
            Box::new(move || kp.sign(rng, &input).unwrap().as_ref().len())
        }
    };
    let raw_aws: Box<dyn FnMut() -> usize> = match alg {
        Algorithm::Rs256 => {
            let kp = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
            let (input, rng) = (input.clone(), &aws_rng);
            Box::new(move || {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, rng, &input, &mut sig).unwrap();
                sig.len()
            })
        }
        _ => {
            let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &der,
            )
            .unwrap();
            let (input, rng) = (input.clone(), &aws_rng);
            Box::new(move || kp.sign(rng, &input).unwrap().as_ref().len())
        }
    };

    let mut cases: Vec<Case<'_>> = vec![
        (ORIGIN_CASE, Box::new(|| issuer.issue_access(black_box(&claims)).unwrap().token.len())),
        ("jsonwebtoken", Box::new(|| peer_issue().len())),
        ("raw ring sign", raw_ring),
        ("raw aws-lc-rs sign", raw_aws),
    ];
    let r = interleaved(budget, &mut cases);
    let per_s = |ns: f64| 1e9 / ns;
    let mut out = String::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        out.push_str(&format!("| {} | {name} | {:.0} | {:.1} µs |\n", alg.name(), per_s(r[i].0), r[i].0 / 1000.0));
    }
    // Throughput ratio = the peer's time / ours, within each round.
    out.push_str(&format!(
        "| {} | **tollgate-origin / jsonwebtoken (tokens/s)** | **{:.3}×** | raw ring / raw aws-lc-rs: {:.3}× |\n",
        alg.name(),
        r[1].1[0],
        r[3].1[2]
    ));
    out
}

/// PKCS#8 PEM → DER (one base64 block).
fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in b64.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let secs = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "issue throughput, one thread, {secs} s interleaved per algorithm; {} cores; load average {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("\n| alg | case | tokens (signatures) / s | per token |\n|---|---|---|---|");
    for alg in [Algorithm::Es256, Algorithm::Rs256] {
        print!("{}", run(alg, Duration::from_secs(secs)));
    }
}
