//! Prometheus counters (`GET /metrics`, text format 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Labelled counters: a fixed list of label values, one counter each.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: &'static [&'static str],
    counts: Vec<AtomicU64>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, label: &'static str, values: &'static [&'static str]) -> Family {
        Family { name, help, label, values, counts: values.iter().map(|_| AtomicU64::new(0)).collect() }
    }

    /// Adds one to the counter labelled `value` (unknown values count as the last one).
    pub fn inc(&self, value: &str) {
        let i = self.values.iter().position(|v| *v == value).unwrap_or(self.values.len() - 1);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counter labelled `value`.
    pub fn get(&self, value: &str) -> u64 {
        self.values.iter().position(|v| *v == value).map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} counter", self.name, self.help, self.name);
        for (v, c) in self.values.iter().zip(&self.counts) {
            let _ = writeln!(out, "{}{{{}=\"{}\"}} {}", self.name, self.label, v, c.load(Ordering::Relaxed));
        }
    }
}

/// Every counter of the service.
#[derive(Debug)]
pub struct Metrics {
    /// Registrations by result.
    pub registrations: Family,
    /// Successful logins by method.
    pub logins: Family,
    /// Failed logins by kind.
    pub login_failures: Family,
    /// Refreshes by outcome.
    pub refreshes: Family,
    /// Reuse detections (a refresh token presented after its successor was issued).
    pub reuse_detections: Family,
    /// Requests refused by a rate limit, by bucket scope.
    pub rate_limited: Family,
    /// Logouts by kind.
    pub logouts: Family,
    /// Responses by status class.
    pub responses: Family,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            registrations: Family::new(
                "tollgate_auth_registrations_total",
                "Registrations by result.",
                "result",
                &["created", "duplicate", "invalid"],
            ),
            logins: Family::new(
                "tollgate_auth_logins_total",
                "Successful logins.",
                "method",
                &["password", "social", "other"],
            ),
            login_failures: Family::new(
                "tollgate_auth_login_failures_total",
                "Failed logins by kind.",
                "kind",
                &["invalid_credentials", "rate_limited", "invalid_request", "other"],
            ),
            refreshes: Family::new(
                "tollgate_auth_refreshes_total",
                "Refreshes by outcome.",
                "outcome",
                &[
                    "rotated",
                    "converged",
                    "reuse_detected",
                    "revoked",
                    "expired",
                    "invalid",
                    "rate_limited",
                    "unavailable",
                    "other",
                ],
            ),
            reuse_detections: Family::new(
                "tollgate_auth_reuse_detections_total",
                "Refresh-token reuse detected (the session was revoked).",
                "source",
                &["refresh", "other"],
            ),
            rate_limited: Family::new(
                "tollgate_auth_rate_limited_total",
                "Requests refused by a rate limit, by bucket.",
                "scope",
                &["account", "ip", "global"],
            ),
            logouts: Family::new(
                "tollgate_auth_logouts_total",
                "Logouts by kind.",
                "kind",
                &["session", "all_sessions", "role_change", "other"],
            ),
            responses: Family::new(
                "tollgate_auth_http_responses_total",
                "HTTP responses by status class.",
                "class",
                &["2xx", "3xx", "4xx", "5xx", "other"],
            ),
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in [
            &self.registrations,
            &self.logins,
            &self.login_failures,
            &self.refreshes,
            &self.reuse_detections,
            &self.rate_limited,
            &self.logouts,
            &self.responses,
        ] {
            f.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.logins.inc("password");
        m.rate_limited.inc("ip");
        m.rate_limited.inc("ip");
        let text = m.render();
        assert!(text.contains("tollgate_auth_logins_total{method=\"password\"} 1\n"), "{text}");
        assert!(text.contains("tollgate_auth_rate_limited_total{scope=\"ip\"} 2\n"));
        assert!(text.contains("# TYPE tollgate_auth_refreshes_total counter\n"));
        assert_eq!(m.rate_limited.get("ip"), 2);
    }
}
