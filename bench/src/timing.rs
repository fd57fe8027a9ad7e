//! Interleaved timing, for ratios that hold on shared cores, and for places criterion
//! does not run (wasm32 under Node): several cases timed in alternation, one batch of
//! each per round, so a load that drifts over seconds weighs on all of them alike.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// One case of an interleaved measurement, with its ratio to every other case.
#[derive(Debug, Clone)]
pub struct Interleaved {
    /// What was measured.
    pub name: String,
    /// Median over rounds of the time per iteration, in nanoseconds.
    pub median_ns: f64,
    /// Per other case: the median over rounds of `this / other` within the same round.
    pub ratios: Vec<(String, f64)>,
    /// Rounds timed.
    pub rounds: usize,
}

impl Interleaved {
    /// One JSON line (the form `report` reads), tagged with `group`.
    pub fn to_json(&self, group: &str) -> String {
        let ratios: serde_json::Map<String, serde_json::Value> =
            self.ratios.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
        serde_json::json!({
            "group": group,
            "name": self.name,
            "median_ns": self.median_ns,
            "ratios": ratios,
            "rounds": self.rounds,
        })
        .to_string()
    }
}

/// A case for [`measure_interleaved`]: a name and the work of one iteration.
pub type Case<'a> = (&'a str, Box<dyn FnMut() -> bool + 'a>);

/// Times several cases in alternation — one batch of each per round, for `budget` —
/// so that the machine's load, which drifts on shared cores, weighs on all of them
/// alike; ratios are taken within each round, then their median over rounds.
/// Batches are sized to about `batch` each.
pub fn measure_interleaved(budget: Duration, batch: Duration, cases: &mut [Case<'_>]) -> Vec<Interleaved> {
    let n = cases.len();
    // Size each case's batch, warming it up on the way.
    let mut per_batch = vec![1u64; n];
    for (c, (_, f)) in cases.iter_mut().enumerate() {
        loop {
            let t = Instant::now();
            for _ in 0..per_batch[c] {
                black_box(f());
            }
            if t.elapsed() >= batch {
                break;
            }
            per_batch[c] *= 2;
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    let end = Instant::now() + budget;
    let mut round = 0;
    while Instant::now() < end || round < 5 {
        for k in 0..n {
            let c = (k + round) % n;
            let f = &mut cases[c].1;
            let t = Instant::now();
            for _ in 0..per_batch[c] {
                black_box(f());
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
        .map(|c| Interleaved {
            name: cases[c].0.to_string(),
            median_ns: median(samples[c].clone()),
            ratios: (0..n)
                .filter(|&o| o != c)
                .map(|o| {
                    let r = samples[c].iter().zip(&samples[o]).map(|(a, b)| a / b).collect();
                    (cases[o].0.to_string(), median(r))
                })
                .collect(),
            rounds: round,
        })
        .collect()
}
