//! Prometheus metrics: every series clawgate exports, registered once in one [`Metrics`] and
//! served as OpenMetrics text on the admin listener's `/metrics`.
//!
//! The composition root (`app.rs`) makes one `Metrics` at start and hands the same handle to
//! each room that records: the gate, approvals, the notifier, the admin listener's refusals
//! and `/metrics`, and the audit log for its own append latency and batch sizes
//! ([`crate::audit::AuditOptions::metrics`]). Recording is atomics only (label families take a
//! read lock once the series exists).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// `tool`, `mcp`, `http`, `connect`.
    kind: &'static str,
    /// What the caller was answered: `allow`, `deny`, `pending`.
    decision: &'static str,
    /// What policy asked for; differs from `decision` in shadow mode (`would_deny`).
    effect: &'static str,
    risk: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    /// Which admin endpoint refused (`slack_interactions`, `approval_decision`, ...).
    endpoint: &'static str,
    /// Why: `missing_signature`, `bad_signature`, `stale`, `replayed`, `admin_token`, ...
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BoundLabel {
    bound: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Latencies: 50 µs .. ~1.6 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Approval resolution: 1 s .. ~16 h.
fn resolution_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 3.0, 11))
}

/// Audit batch sizes: 1 .. 4096 entries.
fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric clawgate exports.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: HistogramFamily<KindLabel>,
    approvals_pending: Gauge,
    approval_resolution_seconds: HistogramFamily<StatusLabel>,
    audit_append_seconds: Histogram,
    audit_batch_entries: Histogram,
    audit_chain_entries: Gauge,
    notification_failures: Family<ChannelLabel, Counter>,
    policy_loads: Family<OutcomeLabel, Counter>,
    anonymous_refusals: Family<RefusalLabels, Counter>,
    approvals_limited: Family<BoundLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            decisions: Family::default(),
            decision_seconds: Family::new_with_constructor(latency_histogram),
            approvals_pending: Gauge::default(),
            approval_resolution_seconds: Family::new_with_constructor(resolution_histogram),
            audit_append_seconds: latency_histogram(),
            audit_batch_entries: batch_histogram(),
            audit_chain_entries: Gauge::default(),
            notification_failures: Family::default(),
            policy_loads: Family::default(),
            anonymous_refusals: Family::default(),
            approvals_limited: Family::default(),
        };
        let mut registry = Registry::with_prefix("clawgate");
        registry.register(
            "decisions",
            "Decisions by action kind, answered decision, policy effect and risk",
            m.decisions.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time to decide one action (policy, approval lookup, durable audit record)",
            m.decision_seconds.clone(),
        );
        registry.register(
            "approvals_pending",
            "Approvals waiting for an answer",
            m.approvals_pending.clone(),
        );
        registry.register(
            "approval_resolution_seconds",
            "Time from an approval's request to its resolution, by final status",
            m.approval_resolution_seconds.clone(),
        );
        registry.register(
            "audit_append_duration_seconds",
            "Time for one audit append to become durable, as its caller sees it",
            m.audit_append_seconds.clone(),
        );
        registry.register(
            "audit_batch_entries",
            "Entries committed per audit write transaction",
            m.audit_batch_entries.clone(),
        );
        registry.register(
            "audit_chain_entries",
            "Entries in the audit hash chain",
            m.audit_chain_entries.clone(),
        );
        registry.register(
            "notification_failures",
            "Approval notifications given up on, by channel",
            m.notification_failures.clone(),
        );
        registry.register(
            "policy_loads",
            "Policy bundle loads and reloads by outcome (loaded, reloaded, rejected)",
            m.policy_loads.clone(),
        );
        registry.register(
            "anonymous_refusals",
            "Admin requests refused before they proved who sent them, by endpoint and reason \
             (audited as one entry per window, not one each)",
            m.anonymous_refusals.clone(),
        );
        registry.register(
            "approvals_limited",
            "Actions denied because a new approval would pass a bound, by bound",
            m.approvals_limited.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One decision answered, and how long it took.
    pub fn decision(
        &self,
        kind: &'static str,
        decision: &'static str,
        effect: &'static str,
        risk: &'static str,
        took: Duration,
    ) {
        self.decisions
            .get_or_create(&DecisionLabels {
                kind,
                decision,
                effect,
                risk,
            })
            .inc();
        self.decision_seconds
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
    }

    /// An approval left `pending` for `status` after `took`.
    pub fn approval_resolved(&self, status: &'static str, took: Duration) {
        self.approval_resolution_seconds
            .get_or_create(&StatusLabel { status })
            .observe(took.as_secs_f64());
    }

    pub fn audit_append(&self, took: Duration) {
        self.audit_append_seconds.observe(took.as_secs_f64());
    }

    pub fn audit_batch(&self, entries: usize) {
        self.audit_batch_entries.observe(entries as f64);
    }

    pub fn notification_failed(&self, channel: &'static str) {
        self.notification_failures
            .get_or_create(&ChannelLabel { channel })
            .inc();
    }

    /// `loaded` (at start), `reloaded`, `unchanged` or `rejected`.
    pub fn policy_load(&self, outcome: &'static str) {
        self.policy_loads
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// One admin request refused before it proved who sent it.
    pub fn anonymous_refusal(&self, endpoint: &'static str, reason: &'static str) {
        self.anonymous_refusals
            .get_or_create(&RefusalLabels { endpoint, reason })
            .inc();
    }

    /// An action denied because a new approval would pass `bound`.
    pub fn approval_limited(&self, bound: &'static str) {
        self.approvals_limited
            .get_or_create(&BoundLabel { bound })
            .inc();
    }

    /// The text exposition, with the gauges read at scrape time set first.
    pub fn encode(&self, approvals_pending: usize, audit_chain_entries: u64) -> String {
        self.approvals_pending
            .set(i64::try_from(approvals_pending).unwrap_or(i64::MAX));
        self.audit_chain_entries
            .set(i64::try_from(audit_chain_entries).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exported_with_its_labels() {
        let m = Metrics::new();
        m.decision("tool", "deny", "deny", "high", Duration::from_millis(2));
        m.policy_load("loaded");
        m.audit_batch(3);
        let text = m.encode(2, 42);
        assert!(
            text.contains(
                r#"clawgate_decisions_total{kind="tool",decision="deny",effect="deny",risk="high"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("clawgate_approvals_pending 2"), "{text}");
        assert!(text.contains("clawgate_audit_chain_entries 42"), "{text}");
        assert!(
            text.contains(r#"clawgate_policy_loads_total{outcome="loaded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("clawgate_audit_batch_entries_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
