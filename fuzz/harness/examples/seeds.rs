//! Writes the committed seed corpus, `fuzz/corpus/{verify,jwks,wire}/`:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml -p tollgate-fuzz-harness --example seeds
//! ```
//!
//! Tokens and JWKS documents come from the shared conformance cases (beside the
//! checkout, `../shared/conformance/cases`); snapshots and deltas are signed here with
//! the harness's service key. Every file starts with the mode byte its harness reads
//! (see `tollgate_fuzz_harness::{verify, jwks, wire}`; `jwks` has no mode byte).
//! The output is deterministic: ECDSA signatures are RFC 6979.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tollgate_core::wire::{encode_delta, encode_snapshot, v1, Delta, DeltaEvent};
use tollgate_core::{Entry, EntryKind};
use tollgate_fuzz_harness::{base_replica, jwks_document, wire_signer, AUD, FUZZ_KID, ISS, NOW, STAMP};

/// Conformance cases whose tokens seed `verify` (a spread of verdicts and reasons).
const TOKEN_CASES: &[&str] = &[
    "es256/valid/basic",
    "es256/valid/high-s",
    "es256/invalid/der-signature",
    "rs256/valid/2048",
    "rs256/invalid/tampered-payload",
    "claims/aud/array-contains",
    "claims/exp/fractional-future",
    "structure/base64/padding-on-signature",
    "structure/json/payload-not-json",
    "structure/crit/present",
    "structure/typ/application-prefix",
    "keys/embedded-jwk/attacker-kid",
    "denylist/sid/listed",
];

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases = load_cases(&fuzz.join("../../shared/conformance/cases"));
    let mut total = 0;

    let dir = fresh(&fuzz.join("corpus/verify"));
    for id in TOKEN_CASES {
        let case = cases.iter().find(|c| c["id"] == *id).unwrap_or_else(|| panic!("no case {id}"));
        let token = case["token"].as_str().unwrap_or_else(|| panic!("{id}: no token"));
        total += write(&dir, &format!("raw-{}", id.replace('/', "-")), &[&[0], token.as_bytes()]);
    }
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{FUZZ_KID}"}}"#);
    let exp = NOW + 600;
    let payloads = [
        ("valid", format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","jti":"j1","iat":{NOW},"exp":{exp}}}"#)),
        (
            "aud-array-nbf",
            format!(r#"{{"iss":"{ISS}","aud":["x","{AUD}"],"sub":"a","jti":"j","nbf":{NOW},"exp":{exp}.5}}"#),
        ),
        (
            "revoked-sid",
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"a","jti":"j","sid":"s-revoked","exp":{exp}}}"#),
        ),
        (
            "revoked-sub",
            format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"user-revoked","jti":"j","iat":1,"exp":{exp}}}"#),
        ),
        ("bad-types", r#"{"iss":1,"aud":[true],"exp":"x","nbf":null}"#.to_string()),
    ];
    for (name, payload) in &payloads {
        total += write(&dir, &format!("signed-{name}"), &[&[1], header.as_bytes(), &[0], payload.as_bytes()]);
    }
    for (name, h) in [
        ("crit", r#"{"alg":"ES256","crit":["b64"],"b64":false}"#),
        ("typ-kid-types", r#"{"alg":"RS256","typ":7,"kid":"rsa-2048"}"#),
        ("alg-none", r#"{"alg":"none"}"#),
    ] {
        total += write(
            &dir,
            &format!("segments-{name}"),
            &[&[2], h.as_bytes(), &[0], payloads[0].1.as_bytes(), &[0], &[7; 64]],
        );
    }

    let dir = fresh(&fuzz.join("corpus/jwks"));
    total += write(&dir, "harness", &[jwks_document().to_string().as_bytes()]);
    let docs: BTreeSet<String> = cases.iter().map(|c| c["jwks"].to_string()).collect();
    for (i, doc) in docs.iter().enumerate() {
        total += write(&dir, &format!("conformance-{i:02}"), &[doc.as_bytes()]);
    }

    let dir = fresh(&fuzz.join("corpus/wire"));
    let signer = wire_signer();
    let mut list = base_replica();
    let snapshot = encode_snapshot(&list, STAMP, &signer);
    let ev = |seq: u64, kind: EntryKind, iss: Option<&str>, id: &str| DeltaEvent {
        seq,
        entry: Entry { kind, iss: iss.map(String::from), id: id.into(), exp: 1000 + seq },
    };
    let delta = Delta {
        stamp: STAMP,
        from: 5,
        to: 9,
        events: vec![
            ev(6, EntryKind::Jti, None, "j6"),
            ev(7, EntryKind::Sid, Some(ISS), "s7"),
            ev(8, EntryKind::Subject { before: 77 }, None, "u8"),
        ],
    };
    let delta_bytes = encode_delta(&delta, &signer);
    list.apply_decoded_delta(&delta).unwrap_or_else(|e| panic!("{e}"));
    let later = encode_snapshot(&list, STAMP, &signer);
    let gap =
        encode_delta(&Delta { stamp: STAMP, from: 7, to: 8, events: vec![ev(8, EntryKind::Jti, None, "x")] }, &signer);
    let behind = encode_delta(&Delta { stamp: STAMP, from: 1, to: 3, events: vec![] }, &signer);
    // Version 1, as served to old replicas during an upgrade window.
    let entries = [delta.events[0].entry.clone(), delta.events[1].entry.clone()];
    let v1_snapshot = v1::encode_snapshot(*list.hash_key(), 5, &entries, &signer);
    let v1_delta = v1::encode_delta(&delta, &signer);
    let body = |m: &[u8]| m[..m.len() - 64].to_vec();
    for (name, msg) in [
        ("snapshot", &snapshot),
        ("snapshot-later", &later),
        ("delta", &delta_bytes),
        ("delta-gap", &gap),
        ("delta-behind", &behind),
        ("v1-snapshot", &v1_snapshot),
        ("v1-delta", &v1_delta),
    ] {
        total += write(&dir, &format!("signed-{name}"), &[&[0], msg]);
        total += write(&dir, &format!("body-{name}"), &[&[1], &body(msg)]);
    }
    println!("wrote {total} bytes of seeds under {}", fuzz.join("corpus").display());
}

fn load_cases(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Creates `dir`, emptied of earlier seeds.
fn fresh(dir: &Path) -> PathBuf {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.to_path_buf()
}

fn write(dir: &Path, name: &str, parts: &[&[u8]]) -> usize {
    let bytes = parts.concat();
    std::fs::write(dir.join(name), &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    bytes.len()
}
