//! End-to-end verification (token string → verified claims) against the raw signature
//! check of the same crate (ring, aws-lc-rs) and against the `jsonwebtoken` peer, ES256 and RS256-2048,
//! all in one run: criterion times each case for absolute figures, then the cases run
//! again interleaved (one batch of each per round) for ratios that hold on shared,
//! drifting cores; the ratios are printed at the end. `BENCH_QUICK=1` shortens the run.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use serde::Deserialize;
use tollgate_bench::fixtures::{AcceptAll, Alg, Fixture, PublicKey, AUDIENCE, ISSUER, NOW};
use tollgate_bench::lists;
use tollgate_bench::report::{self, ids};
use tollgate_bench::timing::{self, measure_interleaved, measuring, quick, Case};
use tollgate_core::signature::{AwsLc, Ring};
use tollgate_core::{Denylist, RustCrypto, SignatureBackend};

/// The claims the peer deserializes: every member the policy requires is a
/// non-optional field, so a token missing one fails as it does in tollgate.
#[allow(dead_code)] // read only through deserialization
#[derive(Deserialize)]
struct PeerClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
    sid: Option<String>,
}

/// Builds a raw signature check of `f`'s signing input against `sig`.
type RawCheck = fn(&Fixture, &[u8]) -> Box<dyn Fn() -> bool>;

fn raw_core(f: &Fixture, sig: &[u8]) -> Box<dyn Fn() -> bool> {
    let msg = f.signing_input().to_vec();
    let sig = sig.to_vec();
    match &f.public {
        PublicKey::P256 { sec1 } => {
            use p256::ecdsa::signature::Verifier as _;
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1).unwrap();
            Box::new(move || p256::ecdsa::Signature::from_slice(&sig).is_ok_and(|sig| key.verify(&msg, &sig).is_ok()))
        }
        PublicKey::Rsa { n, e } => {
            use sha2::{Digest, Sha256};
            let key =
                rsa::PublicKey::new(rsa::BoxedUint::from_be_slice_vartime(n), rsa::BoxedUint::from_be_slice_vartime(e))
                    .unwrap();
            Box::new(move || {
                let digest = Sha256::digest(&msg);
                key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).is_ok()
            })
        }
    }
}

fn raw_ring(f: &Fixture, sig: &[u8]) -> Box<dyn Fn() -> bool> {
    use ring::signature as rs;
    let msg = f.signing_input().to_vec();
    let sig = sig.to_vec();
    // As core's Ring backend does: the key is handed over unparsed on every call.
    match f.public.clone() {
        PublicKey::P256 { sec1 } => Box::new(move || {
            rs::UnparsedPublicKey::new(&rs::ECDSA_P256_SHA256_FIXED, &sec1[..]).verify(&msg, &sig).is_ok()
        }),
        PublicKey::Rsa { n, e } => Box::new(move || {
            rs::RsaPublicKeyComponents { n: &n[..], e: &e[..] }
                .verify(&rs::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, &msg, &sig)
                .is_ok()
        }),
    }
}

fn raw_aws_lc(f: &Fixture, sig: &[u8]) -> Box<dyn Fn() -> bool> {
    use aws_lc_rs::signature as aws;
    let msg = f.signing_input().to_vec();
    let sig = sig.to_vec();
    // As the jsonwebtoken peer does: the key is handed over unparsed on every call.
    match f.public.clone() {
        PublicKey::P256 { sec1 } => Box::new(move || {
            aws::UnparsedPublicKey::new(&aws::ECDSA_P256_SHA256_FIXED, &sec1[..]).verify(&msg, &sig).is_ok()
        }),
        PublicKey::Rsa { n, e } => Box::new(move || {
            aws::RsaPublicKeyComponents { n: &n[..], e: &e[..] }
                .verify(&aws::RSA_PKCS1_2048_8192_SHA256, &msg, &sig)
                .is_ok()
        }),
    }
}

fn bench_alg(c: &mut Criterion, alg: Alg, lines: &mut Vec<String>) {
    let f = Fixture::new(alg);
    let verifier = f.verifier();
    let denylist = lists::build(10_000, 42);
    let empty = Denylist::default();

    // The peer, set up once as a service would: key from the same JWK, same policy.
    let (peer_key, peer_alg) = match alg {
        Alg::Es256 => (
            jsonwebtoken::DecodingKey::from_ec_components(f.jwk["x"].as_str().unwrap(), f.jwk["y"].as_str().unwrap())
                .unwrap(),
            jsonwebtoken::Algorithm::ES256,
        ),
        Alg::Rs256 => (
            jsonwebtoken::DecodingKey::from_rsa_components(f.jwk["n"].as_str().unwrap(), f.jwk["e"].as_str().unwrap())
                .unwrap(),
            jsonwebtoken::Algorithm::RS256,
        ),
    };
    let mut validation = jsonwebtoken::Validation::new(peer_alg);
    validation.leeway = 0;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);

    // Every path must accept the fixture and refuse a flipped bit, or the figures mean nothing.
    let mut bad = f.signature.clone();
    bad[7] ^= 0x10;
    for (name, raw) in [("raw core", raw_core as RawCheck), ("raw ring", raw_ring), ("raw aws-lc-rs", raw_aws_lc)] {
        assert!(raw(&f, &f.signature)(), "{name} rejects the {} fixture", alg.name());
        assert!(!raw(&f, &bad)(), "{name} accepts a bad {} signature", alg.name());
    }
    for backend in [&RustCrypto as &dyn SignatureBackend, &Ring, &AwsLc, &AcceptAll] {
        verifier.verify_with(backend, &f.token, NOW, Some(&denylist)).expect("tollgate accepts the fixture");
    }
    jsonwebtoken::decode::<PeerClaims>(&f.token, &peer_key, &validation).expect("the peer accepts the fixture");

    let mut cases: Vec<Case<'_>> = Vec::new();
    for (id, raw) in [(ids::RAW_CORE, raw_core as RawCheck), (ids::RAW_RING, raw_ring), (ids::RAW_AWS_LC, raw_aws_lc)] {
        let check = raw(&f, &f.signature);
        cases.push((id, Box::new(check)));
    }
    let paths: [(&str, &dyn SignatureBackend, &Denylist); 8] = [
        (ids::PURE_EMPTY, &RustCrypto, &empty),
        (ids::PURE_10K, &RustCrypto, &denylist),
        (ids::RING_EMPTY, &Ring, &empty),
        (ids::RING_10K, &Ring, &denylist),
        (ids::AWS_LC_EMPTY, &AwsLc, &empty),
        (ids::AWS_LC_10K, &AwsLc, &denylist),
        (ids::NOSIG_EMPTY, &AcceptAll, &empty),
        (ids::NOSIG_10K, &AcceptAll, &denylist),
    ];
    for (id, backend, list) in paths {
        let (verifier, token) = (&verifier, f.token.as_str());
        cases.push((id, Box::new(move || verifier.verify_with(backend, black_box(token), NOW, Some(list)).is_ok())));
    }
    let (peer_key, validation, token) = (&peer_key, &validation, f.token.as_str());
    cases.push((
        ids::PEER,
        Box::new(move || jsonwebtoken::decode::<PeerClaims>(black_box(token), peer_key, validation).is_ok()),
    ));

    // Criterion: each case on its own, for absolute figures with confidence intervals.
    let mut g = c.benchmark_group(ids::group(alg));
    for (id, work) in cases.iter_mut() {
        g.bench_function(*id, |b| b.iter(&mut *work));
    }
    g.finish();

    // Interleaved: all cases in alternation, for ratios that survive a drifting load.
    if !measuring() {
        return;
    }
    let budget = Duration::from_secs(if quick() { 5 } else { 12 });
    let results = measure_interleaved(budget, Duration::from_millis(2), &mut cases);
    lines.extend(results.iter().map(|r| r.to_json(&ids::group(alg))));
}

fn main() -> std::io::Result<()> {
    let mut c = timing::criterion();
    let mut lines = Vec::new();
    for alg in Alg::ALL {
        bench_alg(&mut c, alg, &mut lines);
    }
    c.final_summary();
    let dir = report::results_dir();
    std::fs::create_dir_all(&dir)?;
    if !lines.is_empty() {
        std::fs::write(dir.join("verify-interleaved.jsonl"), lines.join("\n") + "\n")?;
    }
    print!("{}", report::verify(&report::Results::load()));
    Ok(())
}
