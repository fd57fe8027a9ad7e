//! `tollgate conformance FILE...`: runs the shared conformance cases through the core,
//! exactly as `shared/conformance/README.md` specifies.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tollgate_core::{Denylist, EntryKind, Jwks, Policy, Verifier};

/// One case's outcome.
pub(crate) struct Outcome {
    pub(crate) id: String,
    pub(crate) verdict: &'static str,
    pub(crate) reason: Option<String>,
    pub(crate) passed: bool,
}

/// Runs every case of every file, printing one JSON line per case and the totals.
/// Returns whether all passed.
pub(crate) fn run(files: &[impl AsRef<Path>], out: &mut impl Write) -> Result<bool> {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let file = file.as_ref();
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", file.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let o = match serde_json::from_str::<Value>(&line) {
                Ok(case) => run_case(&case),
                Err(e) => Outcome {
                    id: format!("{}:{}", file.display(), n + 1),
                    verdict: "error",
                    reason: Some(format!("case is not json: {e}")),
                    passed: false,
                },
            };
            let mut line = json!({"id": o.id, "verdict": o.verdict, "reason": o.reason});
            if !o.passed {
                line["pass"] = json!(false);
                failed += 1;
            } else {
                passed += 1;
            }
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(failed == 0)
}

fn run_case(case: &Value) -> Outcome {
    let id = case["id"].as_str().unwrap_or("<no id>").to_string();
    let expect_verdict = case["expect"]["verdict"].as_str();
    let expect_reason = case["expect"]["reason"].as_str();
    let (verdict, reason) = match evaluate(case) {
        Ok(Ok(())) => ("accept", None),
        Ok(Err(reason)) => ("reject", Some(reason)),
        Err(e) => ("error", Some(format!("{e:#}"))),
    };
    let passed = Some(verdict) == expect_verdict && (verdict == "accept" || reason.as_deref() == expect_reason);
    Outcome { id, verdict, reason, passed }
}

/// Outer error: the case itself is unusable. Inner: the verifier's verdict.
fn evaluate(case: &Value) -> Result<std::result::Result<(), String>> {
    let token = case["token"].as_str().context("case has no token string")?;
    let jwks = Jwks::from_object(case["jwks"].as_object().context("case jwks is not an object")?)
        .map_err(|e| anyhow::anyhow!("case jwks: {e}"))?;
    let policy_json = serde_json::to_vec(case.get("policy").unwrap_or(&json!({})))?;
    let policy = Policy::from_json(&policy_json).map_err(|e| anyhow::anyhow!("case policy: {e}"))?;
    let now = case["now"].as_i64().context("case now is not an integer")?;
    let denylist = case_denylist(case.get("denylist"))?;
    let verifier = Verifier::new(jwks, policy);
    Ok(verifier.verify(token, now, Some(&denylist)).map(|_| ()).map_err(|e| e.reason().as_str().to_string()))
}

fn case_denylist(v: Option<&Value>) -> Result<Denylist> {
    let mut d = Denylist::default();
    let Some(v) = v else { return Ok(d) };
    for (field, kind) in [("jti", EntryKind::Jti), ("sid", EntryKind::Sid)] {
        for id in v.get(field).and_then(Value::as_array).into_iter().flatten() {
            d.insert(kind, None, id.as_str().context("denylist id is not a string")?, u64::MAX);
        }
    }
    if let Some(map) = v.get("sub_before").and_then(Value::as_object) {
        for (sub, t) in map {
            let before = t.as_u64().context("sub_before time is not an integer")?;
            d.insert(EntryKind::Subject { before }, None, sub, u64::MAX);
        }
    }
    Ok(d)
}
