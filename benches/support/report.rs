//! Reporting: latency histograms, merged per run, and number formatting.

use std::time::Duration;

use hdrhistogram::Histogram;

pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

pub fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant figures.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

pub fn fmt_ns(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

pub fn fmt_rate(r: f64) -> String {
    let n = r.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// Latencies of one run and what went wrong, mergeable across workers.
#[allow(dead_code)]
pub struct Latencies {
    pub histogram: Histogram<u64>,
    /// Timed requests (started in the measured window).
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

#[allow(dead_code)]
impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            histogram: new_histogram(),
            requests: 0,
            errors: 0,
            first_error: None,
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.requests += 1;
        let _ = self.histogram.record(nanos(d));
    }

    pub fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.histogram.add(&other.histogram).expect("same bounds");
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}
