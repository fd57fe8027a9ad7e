//! Interleaved timing, for ratios that hold on shared cores, and for places criterion
//! does not run (wasm32 under Node): several cases timed in alternation, one batch of
//! each per round, so a load that drifts over seconds weighs on all of them alike.
//!
//! Batches are timed by the thread's time on a CPU where the platform tells it
//! (`CLOCK_THREAD_CPUTIME_ID` on Unix), so that time the core spent on other processes
//! is not counted; elsewhere (wasm32 under Node) by the wall clock.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// A clock for batches: this thread's time on a CPU when the platform reports it,
/// else wall time.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// `CLOCK_THREAD_CPUTIME_ID`, nanoseconds.
    OnCpu,
    /// `Instant`, nanoseconds since the clock was made.
    Wall(Instant),
}

impl Clock {
    /// The best clock available here.
    pub fn best() -> Clock {
        if on_cpu_ns().is_some() {
            Clock::OnCpu
        } else {
            Clock::Wall(Instant::now())
        }
    }

    /// Now, nanoseconds.
    pub fn now(&self) -> u64 {
        match self {
            Clock::OnCpu => on_cpu_ns().unwrap_or(0),
            Clock::Wall(start) => start.elapsed().as_nanos() as u64,
        }
    }

    /// What it measures, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Clock::OnCpu => "time on a CPU",
            Clock::Wall(_) => "wall time",
        }
    }
}

/// This thread's time on a CPU so far, nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
#[cfg(unix)]
pub fn on_cpu_ns() -> Option<u64> {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (r == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

/// No thread CPU clock here: the callers fall back to wall time.
#[cfg(not(unix))]
pub fn on_cpu_ns() -> Option<u64> {
    None
}

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
/// Batches are sized to about `batch` each and timed by [`Clock::best`].
pub fn measure_interleaved(budget: Duration, batch: Duration, cases: &mut [Case<'_>]) -> Vec<Interleaved> {
    let n = cases.len();
    let clock = Clock::best();
    // Size each case's batch, warming it up on the way.
    let mut per_batch = vec![1u64; n];
    for (c, (_, f)) in cases.iter_mut().enumerate() {
        loop {
            let t = clock.now();
            for _ in 0..per_batch[c] {
                black_box(f());
            }
            if clock.now() - t >= batch.as_nanos() as u64 {
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
            let t = clock.now();
            for _ in 0..per_batch[c] {
                black_box(f());
            }
            samples[c].push((clock.now() - t) as f64 / per_batch[c] as f64);
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

/// Whether this is a real measuring run: criterion's own rules (`--bench` given by
/// `cargo bench`; not a `--test`, `--list` or `--profile-time` run). The interleaved
/// pass runs only then.
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list") && !has("--profile-time")
}

/// Whether `BENCH_QUICK` asks for the shorter settings.
pub fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The criterion configuration every bench binary uses: shorter than criterion's
/// defaults (3 s + 5 s) so the whole suite fits in about ten minutes on two cores,
/// shorter still under `BENCH_QUICK`; command-line options still override.
pub fn criterion() -> criterion::Criterion {
    let c =
        criterion::Criterion::default().warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(4));
    let c = if quick() {
        c.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(20)
    } else {
        c
    };
    c.configure_from_args()
}
