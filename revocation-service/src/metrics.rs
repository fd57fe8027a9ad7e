//! Prometheus metrics, rendered by hand in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::event::EventKind;
use crate::server::ConnMetrics;

/// Upper bounds of the flush-latency histogram buckets, in seconds.
const FLUSH_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Counters and gauges the service keeps.
#[derive(Default)]
pub(crate) struct Metrics {
    events: [AtomicU64; 6],
    flush_buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    flush_count: AtomicU64,
    flush_sum_us: AtomicU64,
    group_commits: AtomicU64,
    pub(crate) replication_clients: AtomicU64,
    pub(crate) snapshots_served: AtomicU64,
    pub(crate) deltas_served: AtomicU64,
    pub(crate) overloaded: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) quota_exceeded: AtomicU64,
}

/// Values read from the state at scrape time.
pub(crate) struct Gauges<'a> {
    pub(crate) counts: (usize, usize, usize),
    pub(crate) head: u64,
    pub(crate) floor: u64,
    pub(crate) conn: &'a ConnMetrics,
    /// Per-key limits: events/s, burst, live entries.
    pub(crate) key_limits: (u64, u64, u64),
    /// Live entries per key id.
    pub(crate) live_per_key: Vec<(&'a str, u64)>,
}

impl Metrics {
    /// Counts one appended event.
    pub(crate) fn event(&self, kind: EventKind) {
        if let Some(c) = self.events.get(kind.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one group commit's flush.
    pub(crate) fn flush(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (b, c) in FLUSH_BUCKETS.iter().zip(&self.flush_buckets) {
            if secs <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.flush_count.fetch_add(1, Ordering::Relaxed);
        self.flush_sum_us.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.group_commits.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub(crate) fn render(&self, g: &Gauges<'_>) -> String {
        let mut o = String::with_capacity(2048);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(o, "# HELP tollgate_events_total Events appended to the log, by kind.");
        let _ = writeln!(o, "# TYPE tollgate_events_total counter");
        for k in EventKind::ALL {
            let v = self.events.get(k.index()).map_or(0, load);
            let _ = writeln!(o, "tollgate_events_total{{kind=\"{}\"}} {v}", k.as_str());
        }
        let _ = writeln!(o, "# HELP tollgate_denylist_entries Live denylist entries, by kind.");
        let _ = writeln!(o, "# TYPE tollgate_denylist_entries gauge");
        for (k, v) in [("jti", g.counts.0), ("sid", g.counts.1), ("sub", g.counts.2)] {
            let _ = writeln!(o, "tollgate_denylist_entries{{kind=\"{k}\"}} {v}");
        }
        let _ = writeln!(o, "# HELP tollgate_log_head_seq Sequence number of the last durable event.");
        let _ = writeln!(o, "# TYPE tollgate_log_head_seq gauge");
        let _ = writeln!(o, "tollgate_log_head_seq {}", g.head);
        let _ = writeln!(o, "# HELP tollgate_log_length Events held in the log (head minus retention floor).");
        let _ = writeln!(o, "# TYPE tollgate_log_length gauge");
        let _ = writeln!(o, "tollgate_log_length {}", g.head.saturating_sub(g.floor));
        let _ = writeln!(o, "# HELP tollgate_flush_seconds Latency of one group commit's flush to disk.");
        let _ = writeln!(o, "# TYPE tollgate_flush_seconds histogram");
        for (b, c) in FLUSH_BUCKETS.iter().zip(&self.flush_buckets) {
            let _ = writeln!(o, "tollgate_flush_seconds_bucket{{le=\"{b}\"}} {}", load(c));
        }
        let count = load(&self.flush_count);
        let _ = writeln!(o, "tollgate_flush_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(o, "tollgate_flush_seconds_sum {}", load(&self.flush_sum_us) as f64 / 1e6);
        let _ = writeln!(o, "tollgate_flush_seconds_count {count}");
        for (name, help, kind, v) in [
            (
                "tollgate_replication_clients",
                "Replicas long-polling for a delta now.",
                "gauge",
                &self.replication_clients,
            ),
            ("tollgate_snapshots_served_total", "Signed snapshots served.", "counter", &self.snapshots_served),
            ("tollgate_deltas_served_total", "Signed deltas served.", "counter", &self.deltas_served),
            ("tollgate_overloaded_total", "Requests refused by the concurrency bound.", "counter", &self.overloaded),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", load(v));
        }
        let (rate, burst, quota) = g.key_limits;
        for (name, help, v) in [
            ("tollgate_key_events_per_second_limit", "Events a second one key may post, sustained.", rate),
            ("tollgate_key_burst_events_limit", "Events one key may post at once above the rate.", burst),
            ("tollgate_key_live_entries_limit", "Live denylist entries one key may have created.", quota),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(o, "# HELP tollgate_key_live_entries Live denylist entries, by the key that created them.");
        let _ = writeln!(o, "# TYPE tollgate_key_live_entries gauge");
        for (k, n) in &g.live_per_key {
            let _ = writeln!(o, "tollgate_key_live_entries{{key=\"{k}\"}} {n}");
        }
        let _ = writeln!(o, "# HELP tollgate_key_limited_total Requests refused by a per-key limit.");
        let _ = writeln!(o, "# TYPE tollgate_key_limited_total counter");
        let _ = writeln!(o, "tollgate_key_limited_total{{limit=\"rate\"}} {}", load(&self.rate_limited));
        let _ = writeln!(o, "tollgate_key_limited_total{{limit=\"quota\"}} {}", load(&self.quota_exceeded));
        let c = g.conn;
        for (name, help, kind, v) in [
            ("tollgate_connections_open", "Client connections open now.", "gauge", &c.open),
            (
                "tollgate_connections_max",
                "Cap on open connections (kept below the file limit).",
                "gauge",
                &c.max_connections,
            ),
            (
                "tollgate_connections_per_address_max",
                "Cap on open connections from one client address.",
                "gauge",
                &c.max_connections_per_ip,
            ),
            ("tollgate_accept_errors_total", "Failed accepts (e.g. out of descriptors).", "counter", &c.accept_errors),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", load(v));
        }
        let _ = writeln!(o, "# HELP tollgate_connections_refused_total Connections refused at once by a cap.");
        let _ = writeln!(o, "# TYPE tollgate_connections_refused_total counter");
        let _ = writeln!(o, "tollgate_connections_refused_total{{cap=\"global\"}} {}", load(&c.refused_global));
        let _ = writeln!(o, "tollgate_connections_refused_total{{cap=\"per_address\"}} {}", load(&c.refused_per_ip));
        let _ = writeln!(o, "# HELP tollgate_connection_timeouts_total Connections closed by a timeout.");
        let _ = writeln!(o, "# TYPE tollgate_connection_timeouts_total counter");
        let _ = writeln!(o, "tollgate_connection_timeouts_total{{timeout=\"header\"}} {}", load(&c.header_timeouts));
        let _ = writeln!(o, "tollgate_connection_timeouts_total{{timeout=\"idle\"}} {}", load(&c.idle_timeouts));
        o
    }
}
