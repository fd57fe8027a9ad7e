//! The verify measurement as a plain timing loop, built for `wasm32-wasip1` and run
//! under Node's `node:wasi` (`run.mjs`), and built natively for the comparison:
//! ES256 and RS256-2048, raw pure-Rust signature checks (the crates core uses,
//! p256 0.14 / rsa 0.10) and full `Verifier` paths.
//! The cases of each algorithm run interleaved (one batch of each per round). One JSON
//! line per case on stdout. `BENCH_QUICK=1` shortens the budget.

use std::hint::black_box;
use std::time::Duration;

use tollgate_bench::fixtures::{AcceptAll, Alg, Fixture, PublicKey, NOW};
use tollgate_bench::lists;
use tollgate_bench::timing::{measure_interleaved, Case};
use tollgate_core::{Denylist, RustCrypto, SignatureBackend};

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let budget = Duration::from_secs(if quick { 4 } else { 10 });
    let denylist = lists::build(10_000, 42);
    let empty = Denylist::default();
    for alg in Alg::ALL {
        let f = Fixture::new(alg);
        let verifier = f.verifier();
        let msg = f.signing_input().to_vec();
        let raw: Box<dyn FnMut() -> bool + '_> = match &f.public {
            PublicKey::P256 { sec1 } => {
                use p256::ecdsa::signature::Verifier as _;
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1).expect("fixture key");
                let sig = f.signature.clone();
                Box::new(move || p256::ecdsa::Signature::from_slice(&sig).is_ok_and(|s| key.verify(&msg, &s).is_ok()))
            }
            PublicKey::Rsa { n, e } => {
                use sha2::{Digest, Sha256};
                let key = rsa::PublicKey::new(
                    rsa::BoxedUint::from_be_slice_vartime(n),
                    rsa::BoxedUint::from_be_slice_vartime(e),
                )
                .expect("fixture key");
                let sig = f.signature.clone();
                Box::new(move || key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&msg), &sig).is_ok())
            }
        };
        let mut cases: Vec<Case<'_>> = vec![("raw/rustcrypto-core", raw)];
        for (name, work) in cases.iter_mut() {
            assert!(work(), "{name} rejects the fixture");
        }
        let paths: [(&str, &dyn SignatureBackend, &Denylist); 3] = [
            ("tollgate/rustcrypto/empty-denylist", &RustCrypto, &empty),
            ("tollgate/rustcrypto/10k-denylist", &RustCrypto, &denylist),
            ("tollgate/no-signature/10k-denylist", &AcceptAll, &denylist),
        ];
        for (name, backend, list) in paths {
            let (verifier, token) = (&verifier, f.token.as_str());
            assert!(verifier.verify_with(backend, token, NOW, Some(list)).is_ok(), "{name} rejects the fixture");
            cases.push((
                name,
                Box::new(move || verifier.verify_with(backend, black_box(token), NOW, Some(list)).is_ok()),
            ));
        }
        for r in measure_interleaved(budget, Duration::from_millis(3), &mut cases) {
            println!("{}", r.to_json(&format!("verify-{}", alg.id())));
        }
    }
}
