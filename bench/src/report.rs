//! Reads the figures of a run and prints them with their peers, ratios and goals.
//!
//! Sources, all under the bench target directory (`$CARGO_TARGET_DIR`, else
//! `bench/target`):
//! - `criterion/**/new/{benchmark,estimates}.json`: criterion's results (median);
//! - `tollgate-bench/{verify,denylist}-interleaved.jsonl`: the benches' interleaved runs,
//!   the source of every ratio (see [`crate::timing::measure_interleaved`]);
//! - `tollgate-bench/memory.jsonl`: written by the `denylist-memory` binary;
//! - `tollgate-bench/wasm-*.jsonl`: the wasm32 loop, natively and under Node.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fixtures::Alg;

/// The bench target directory.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// Where criterion writes (it honours `CRITERION_HOME`, else `<target>/criterion`).
pub fn criterion_dir() -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(d) => PathBuf::from(d),
        None => target_dir().join("criterion"),
    }
}

/// Where the bench binaries write their JSON lines.
pub fn results_dir() -> PathBuf {
    target_dir().join("tollgate-bench")
}

/// One case of an interleaved run, as read back.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Median ns per iteration.
    pub median_ns: f64,
    /// Median within-round ratio to each other case of its group.
    pub ratios: BTreeMap<String, f64>,
}

/// Every figure of the last run that could be found.
#[derive(Debug, Default)]
pub struct Results {
    /// Criterion median per benchmark id, in nanoseconds.
    pub criterion: BTreeMap<String, f64>,
    /// `memory.jsonl` lines.
    pub memory: Vec<Value>,
    /// Interleaved runs per file stem (`verify-interleaved`, `wasm-native`, ...), by
    /// `group/name`.
    pub runs: BTreeMap<String, BTreeMap<String, Run>>,
}

impl Results {
    /// Loads whatever exists; missing sources are simply empty.
    pub fn load() -> Results {
        let mut r = Results::default();
        collect_criterion(&criterion_dir(), &mut r.criterion, 0);
        let dir = results_dir();
        r.memory = read_lines(&dir.join("memory.jsonl"));
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            if stem == "memory" || path.extension().is_none_or(|x| x != "jsonl") {
                continue;
            }
            let runs = read_lines(&path)
                .into_iter()
                .filter_map(|v| {
                    let id = format!("{}/{}", v["group"].as_str()?, v["name"].as_str()?);
                    let ratios =
                        v["ratios"].as_object()?.iter().filter_map(|(k, x)| Some((k.clone(), x.as_f64()?))).collect();
                    Some((id, Run { median_ns: v["median_ns"].as_f64()?, ratios }))
                })
                .collect();
            r.runs.insert(stem, runs);
        }
        r
    }

    fn c(&self, id: &str) -> Option<f64> {
        self.criterion.get(id).copied()
    }

    fn run(&self, stem: &str, id: &str) -> Option<&Run> {
        self.runs.get(stem)?.get(id)
    }

    /// The interleaved ratio `case / reference` of `group` in the run `stem`.
    fn ratio(&self, stem: &str, group: &str, case: &str, reference: &str) -> Option<f64> {
        self.run(stem, &format!("{group}/{case}"))?.ratios.get(reference).copied()
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .map(|s| s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

fn collect_criterion(dir: &Path, out: &mut BTreeMap<String, f64>, depth: usize) {
    if depth > 4 {
        return;
    }
    let new = dir.join("new");
    if let (Ok(b), Ok(e)) =
        (fs::read_to_string(new.join("benchmark.json")), fs::read_to_string(new.join("estimates.json")))
    {
        let b: Value = serde_json::from_str(&b).unwrap_or_default();
        let e: Value = serde_json::from_str(&e).unwrap_or_default();
        if let (Some(id), Some(median)) = (b["full_id"].as_str(), e["median"]["point_estimate"].as_f64()) {
            out.insert(id.to_string(), median);
        }
    }
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != "new" && e.file_name() != "base" {
            collect_criterion(&e.path(), out, depth + 1);
        }
    }
}

/// Criterion ids of the verify bench, per algorithm.
pub mod ids {
    use crate::fixtures::Alg;

    /// Group name: `verify-es256` / `verify-rs256`.
    pub fn group(alg: Alg) -> String {
        format!("verify-{}", alg.id())
    }
    /// Raw check with the crate core uses (p256 0.14 / rsa 0.10).
    pub const RAW_CORE: &str = "raw/rustcrypto-core";
    /// Raw check with ring, called as core's `Ring` backend calls it.
    pub const RAW_RING: &str = "raw/ring";
    /// Full verify, pure-Rust backend, empty denylist.
    pub const PURE_EMPTY: &str = "tollgate/rustcrypto/empty-denylist";
    /// Full verify, pure-Rust backend, 10k-entry denylist.
    pub const PURE_10K: &str = "tollgate/rustcrypto/10k-denylist";
    /// Full verify, ring backend, empty denylist.
    pub const RING_EMPTY: &str = "tollgate/ring/empty-denylist";
    /// Full verify, ring backend, 10k-entry denylist.
    pub const RING_10K: &str = "tollgate/ring/10k-denylist";
    /// Raw check with aws-lc-rs, the peer's crypto, as jsonwebtoken calls it (the key
    /// handed over unparsed on every call).
    pub const RAW_AWS_LC: &str = "raw/aws-lc-rs";
    /// Full verify, aws-lc-rs backend (keys parsed once), empty denylist.
    pub const AWS_LC_EMPTY: &str = "tollgate/aws-lc-rs/empty-denylist";
    /// Full verify, aws-lc-rs backend, 10k-entry denylist.
    pub const AWS_LC_10K: &str = "tollgate/aws-lc-rs/10k-denylist";
    /// Everything but the signature (a backend that accepts), empty denylist.
    pub const NOSIG_EMPTY: &str = "tollgate/no-signature/empty-denylist";
    /// Everything but the signature, 10k-entry denylist.
    pub const NOSIG_10K: &str = "tollgate/no-signature/10k-denylist";
    /// The peer: jsonwebtoken with aws-lc-rs, decode + validate.
    pub const PEER: &str = "peer/jsonwebtoken-aws-lc-rs";
    /// Full id of one of the above.
    pub fn full(alg: Alg, name: &str) -> String {
        format!("{}/{name}", group(alg))
    }
}

fn us(ns: Option<f64>) -> String {
    ns.map(|ns| format!("{:>8.1} µs", ns / 1000.0)).unwrap_or_else(|| format!("{:>11}", "—"))
}

fn nanos(ns: Option<f64>) -> String {
    ns.map(|ns| format!("{ns:>7.1} ns")).unwrap_or_else(|| format!("{:>10}", "—"))
}

fn goal(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

const VERIFY_RUN: &str = "verify-interleaved";

/// The verify tables (one per algorithm).
pub fn verify(r: &Results) -> String {
    let mut s = String::new();
    for alg in Alg::ALL {
        let group = ids::group(alg);
        let core_crate = match alg {
            Alg::Es256 => "p256 0.14",
            Alg::Rs256 => "rsa 0.10",
        };
        let _ = writeln!(
            s,
            "\n{} verify — median per call: criterion (each case alone) | interleaved (all cases in alternation)",
            alg.name()
        );
        let raw_core = format!("raw {core_crate}");
        let rows: [(&str, &str); 12] = [
            (ids::RAW_CORE, &raw_core),
            (ids::PURE_EMPTY, "tollgate pure Rust, empty denylist"),
            (ids::PURE_10K, "tollgate pure Rust, 10k denylist"),
            (ids::RAW_RING, "raw ring 0.17"),
            (ids::RING_EMPTY, "tollgate ring, empty denylist"),
            (ids::RING_10K, "tollgate ring, 10k denylist"),
            (ids::RAW_AWS_LC, "raw aws-lc-rs 1.19 (key parsed per call)"),
            (ids::AWS_LC_EMPTY, "tollgate aws-lc-rs, empty denylist"),
            (ids::AWS_LC_10K, "tollgate aws-lc-rs, 10k denylist"),
            (ids::NOSIG_EMPTY, "tollgate without signature, empty denylist"),
            (ids::NOSIG_10K, "tollgate without signature, 10k denylist"),
            (ids::PEER, "peer: jsonwebtoken 11 + aws-lc-rs"),
        ];
        for (id, label) in rows {
            let full = ids::full(alg, id);
            let _ =
                writeln!(s, "  {label:<44} {} | {}", us(r.c(&full)), us(r.run(VERIFY_RUN, &full).map(|x| x.median_ns)));
        }
        if let Some(x) = r.run(VERIFY_RUN, &ids::full(alg, ids::NOSIG_10K)) {
            let _ = writeln!(
                s,
                "  pipeline without signature, 10k denylist: {:.0} ns  goal ≤ 1000 ns: {}",
                x.median_ns,
                goal(x.median_ns <= 1000.0)
            );
        }
        let _ = writeln!(s, "  ratios, within rounds of the interleaved run:");
        let ratio = |s: &mut String, label: &str, case: &str, reference: &str, limit: Option<f64>| {
            if let Some(x) = r.ratio(VERIFY_RUN, &group, case, reference) {
                let verdict = limit.map(|l| format!("  goal ≤ {l:.2}×: {}", goal(x <= l))).unwrap_or_default();
                let _ = writeln!(s, "    {label:<58} {x:>7.3}× ({:+.1} %){verdict}", (x - 1.0) * 100.0);
            }
        };
        ratio(
            &mut s,
            &format!("pure Rust, empty denylist / raw {core_crate}"),
            ids::PURE_EMPTY,
            ids::RAW_CORE,
            Some(1.1),
        );
        ratio(&mut s, &format!("pure Rust, 10k denylist / raw {core_crate}"), ids::PURE_10K, ids::RAW_CORE, Some(1.1));
        ratio(&mut s, "ring, empty denylist / raw ring", ids::RING_EMPTY, ids::RAW_RING, Some(1.05));
        ratio(&mut s, "ring, 10k denylist / raw ring", ids::RING_10K, ids::RAW_RING, Some(1.05));
        ratio(&mut s, &format!("no signature, 10k denylist / raw {core_crate}"), ids::NOSIG_10K, ids::RAW_CORE, None);
        ratio(&mut s, "no signature, 10k denylist / raw ring", ids::NOSIG_10K, ids::RAW_RING, None);
        ratio(&mut s, "ring, empty denylist / jsonwebtoken + aws-lc-rs", ids::RING_EMPTY, ids::PEER, Some(1.0));
        ratio(&mut s, "ring, 10k denylist / jsonwebtoken + aws-lc-rs", ids::RING_10K, ids::PEER, Some(1.0));
        ratio(&mut s, "pure Rust, empty denylist / jsonwebtoken + aws-lc-rs", ids::PURE_EMPTY, ids::PEER, None);
        ratio(&mut s, "jsonwebtoken + aws-lc-rs / raw ring", ids::PEER, ids::RAW_RING, None);
        ratio(&mut s, "raw ring / raw aws-lc-rs", ids::RAW_RING, ids::RAW_AWS_LC, None);
        ratio(&mut s, "aws-lc-rs, empty denylist / jsonwebtoken + aws-lc-rs", ids::AWS_LC_EMPTY, ids::PEER, Some(1.0));
        ratio(&mut s, "aws-lc-rs, 10k denylist / jsonwebtoken + aws-lc-rs", ids::AWS_LC_10K, ids::PEER, Some(1.0));
    }
    s
}

/// The denylist lookup and snapshot tables.
pub fn denylist(r: &Results) -> String {
    let mut s = String::from(
        "\nDenylist lookup — Denylist::is_revoked(iss, jti, sid, sub, iat) over 65,536 random queries;\n\
         median per lookup: criterion | interleaved. naive = std HashSet/HashMap of the\n\
         identifiers themselves (no scope, no expiry, no key), for scale\n",
    );
    for n in ["10k", "100k", "1M"] {
        let group = format!("denylist-lookup/{n}");
        let fig = |case: &str| {
            format!(
                "{} | {}",
                nanos(r.c(&format!("denylist-lookup/{case}/{n}"))),
                nanos(r.run("denylist-interleaved", &format!("{group}/{case}")).map(|x| x.median_ns))
            )
        };
        let _ = writeln!(s, "  {n:>5} entries  hit {}   miss {}", fig("hit"), fig("miss"));
        let _ = writeln!(s, "  {:>14}  naive hit {}   naive miss {}", "", fig("naive-hit"), fig("naive-miss"));
        let rm = r.ratio("denylist-interleaved", &group, "miss", "naive-miss");
        let rh = r.ratio("denylist-interleaved", &group, "hit", "naive-hit");
        if let (Some(rm), Some(rh)) = (rm, rh) {
            let _ = writeln!(s, "  {:>14}  tollgate / naive: hit {rh:.2}×, miss {rm:.2}×", "");
        }
        let median = |c: &str| r.run("denylist-interleaved", &format!("{group}/{c}")).map(|x| x.median_ns);
        let limits: &[(&str, f64)] = match n {
            "10k" => &[("miss", 60.0)],
            "1M" => &[("miss", 100.0), ("hit", 150.0)],
            _ => &[],
        };
        for &(case, limit) in limits {
            if let Some(x) = median(case) {
                let _ =
                    writeln!(s, "  {:>14}  goal {case} < {limit:.0} ns at {n}: {} ({x:.0} ns)", "", goal(x < limit));
            }
        }
    }
    let _ = writeln!(s, "\nSnapshot of 100k entries — criterion median");
    for op in ["encode", "decode"] {
        if let Some(v) = r.c(&format!("snapshot-100k/{op}")) {
            let ms = v / 1e6;
            let _ = writeln!(s, "  {op:<8} {ms:>8.2} ms   goal < 20 ms: {}", goal(ms < 20.0));
        }
    }
    if let Some(v) = r.memory.iter().find(|v| v["entries"] == 100_000) {
        let _ = writeln!(s, "  size     {} bytes (100k entries)", v["snapshot_bytes"]);
    }
    s
}

/// The memory table (from `denylist-memory`).
pub fn memory(r: &Results) -> String {
    let mut s = String::from("\nDenylist memory — counting allocator, live heap bytes per entry\n");
    for v in &r.memory {
        let n = v["entries"].as_u64().unwrap_or(0);
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let (ins, dec) = (f("inserted_bytes_per_entry"), f("decoded_bytes_per_entry"));
        let snap = v["snapshot_bytes"].as_u64().unwrap_or(0);
        let _ = writeln!(
            s,
            "  {n:>8} entries: by inserts {ins:>5.1} B (peak while growing {:>5.1}), from a snapshot {dec:>5.1} B; \
             goal ≤ 24: {}; naive {:>5.1} B; snapshot {snap} bytes ({:.1} B/entry)",
            f("insert_peak_bytes_per_entry"),
            goal(ins <= 24.0 && dec <= 24.0),
            f("naive_bytes_per_entry"),
            snap as f64 / n.max(1) as f64
        );
    }
    s
}

/// The wasm32 table: the same interleaved loop natively and under Node.
pub fn wasm(r: &Results) -> String {
    let mut s =
        String::from("\nwasm32-wasip1 under Node 20 vs native — same interleaved loop (bench/wasm), median per call\n");
    let Some(native) = r.runs.get("wasm-native") else {
        return s + "  (no results: run scripts/bench-core.sh)\n";
    };
    let others: Vec<(&String, &BTreeMap<String, Run>)> =
        r.runs.iter().filter(|(k, _)| k.starts_with("wasm-") && *k != "wasm-native").collect();
    let _ = write!(s, "  {:<48} {:>11}", "", "native");
    for (k, _) in &others {
        let _ = write!(s, " {:>20}", k.trim_start_matches("wasm-"));
    }
    s.push('\n');
    for (id, n) in native {
        let _ = write!(s, "  {id:<48} {}", us(Some(n.median_ns)));
        for (_, m) in &others {
            match m.get(id) {
                Some(w) => {
                    let _ = write!(s, " {} ({:>4.1}×)", us(Some(w.median_ns)), w.median_ns / n.median_ns);
                }
                None => {
                    let _ = write!(s, " {:>20}", "—");
                }
            }
        }
        s.push('\n');
    }
    let stems: Vec<&String> = r.runs.keys().filter(|k| k.starts_with("wasm-")).collect();
    for (title, case, reference) in
        [("full verify (10k denylist) / raw signature", "tollgate/rustcrypto/10k-denylist", ids::RAW_CORE)]
    {
        let _ = writeln!(s, "  {title}, within rounds:");
        for alg in Alg::ALL {
            let group = ids::group(alg);
            let _ = write!(s, "    {:<8}", alg.name());
            for stem in &stems {
                if let Some(x) = r.ratio(stem, &group, case, reference) {
                    let _ = write!(s, "  {}: {x:.3}×", stem.trim_start_matches("wasm-"));
                }
            }
            s.push('\n');
        }
    }
    s
}
