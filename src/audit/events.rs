//! Every kind of audit entry clawgate writes, and one constructor per event, so that the
//! entries' shapes are defined in one place (`docs/audit-format.md` documents them).
//!
//! The constructors take plain values: audit knows nothing of policy, modes or approvals, the
//! callers say what happened in their own words.

use serde_json::{Map, Value, json};

use super::AuditEvent;

/// The entry kinds.
pub mod kind {
    pub const DECISION: &str = "decision";
    pub const RESULT: &str = "result";
    pub const APPROVAL: &str = "approval";
    pub const POLICY: &str = "policy";
    pub const MODE: &str = "mode";
    pub const LIFECYCLE: &str = "lifecycle";
    pub const KEY: &str = "key";
    pub const ACCESS: &str = "access";
}

/// The sidecar started: its version, mode and environment.
pub fn startup(mode: &str, environment: &str) -> AuditEvent {
    AuditEvent::new(
        kind::LIFECYCLE,
        json!({"event": "startup", "version": env!("CARGO_PKG_VERSION"),
            "mode": mode, "environment": environment}),
    )
}

/// The sidecar stopped accepting and drained.
pub fn shutdown() -> AuditEvent {
    AuditEvent::new(
        kind::LIFECYCLE,
        json!({"event": "shutdown", "version": env!("CARGO_PKG_VERSION")}),
    )
}

/// The signing key was created or loaded when the log opened.
pub fn key(event: &str, verifier_key: &str) -> AuditEvent {
    AuditEvent::new(
        kind::KEY,
        json!({"event": event, "verifier_key": verifier_key}),
    )
}

/// The bundle the sidecar starts with (`source`: its directory, or `embedded`).
pub fn policy_loaded(revision: &str, source: &str) -> AuditEvent {
    AuditEvent::new(
        kind::POLICY,
        json!({"event": "loaded", "revision": revision, "source": source}),
    )
}

/// The bundle the sidecar was to start with did not load; it does not start.
pub fn policy_rejected_at_start(source: &str, error: &str) -> AuditEvent {
    AuditEvent::new(
        kind::POLICY,
        json!({"event": "rejected", "source": source, "error": error}),
    )
}

/// A reload attempt. `event` is `reloaded`, `unchanged` or `rejected`; `revision` is the one
/// serving after it; `error` says why a bundle was rejected.
pub fn policy_reload(
    event: &str,
    trigger: &str,
    revision: &str,
    error: Option<&str>,
) -> AuditEvent {
    let mut fields = json!({"event": event, "trigger": trigger});
    if let Some(error) = error {
        fields["error"] = json!(error);
    }
    fields["revision"] = json!(revision);
    AuditEvent::new(kind::POLICY, fields)
}

/// The mode was switched (`via`: who switched it, e.g. `admin_api`).
pub fn mode_changed(from: &str, to: &str, via: &str) -> AuditEvent {
    AuditEvent::new(
        kind::MODE,
        json!({"event": "changed", "from": from, "to": to, "via": via}),
    )
}

/// One decision, with the fields the gate records for it.
pub fn decision(fields: Map<String, Value>, run_id: Option<&str>) -> AuditEvent {
    AuditEvent::new(kind::DECISION, Value::Object(fields)).with_run(run_id)
}

/// What a dispatched action did (the agent's or a front door's report).
pub fn result(report: Value, run_id: Option<&str>) -> AuditEvent {
    AuditEvent::new(kind::RESULT, report).with_run(run_id)
}

/// One approval event (`fields["event"]`: requested, answered, resolved, expired, notified…).
pub fn approval(fields: Value, run_id: Option<&str>) -> AuditEvent {
    AuditEvent::new(kind::APPROVAL, fields).with_run(run_id)
}

/// Requests refused before they proved who sent them, counted over one window instead of
/// recorded one by one (a stranger's flood must not grow the log): how many, by reason, by
/// endpoint, and by peer address (the first [`ANONYMOUS_PEERS_KEPT`] addresses; the rest are
/// counted in `other_peers`).
pub fn anonymous_refusals(window: AnonymousWindow<'_>) -> AuditEvent {
    let mut fields = json!({"event": "anonymous_refused",
        "window_start": window.start, "window_end": window.end, "count": window.count,
        "reasons": window.reasons, "endpoints": window.endpoints, "peers": window.peers});
    if window.other_peers > 0 {
        fields["other_peers"] = json!(window.other_peers);
    }
    AuditEvent::new(kind::ACCESS, fields)
}

/// How many peer addresses an [`anonymous_refusals`] entry names.
pub const ANONYMOUS_PEERS_KEPT: usize = 16;

/// What one window of anonymous refusals counted (RFC 3339 times, counts by name).
pub struct AnonymousWindow<'a> {
    pub start: &'a str,
    pub end: &'a str,
    pub count: u64,
    pub reasons: &'a std::collections::BTreeMap<&'static str, u64>,
    pub endpoints: &'a std::collections::BTreeMap<&'static str, u64>,
    pub peers: &'a std::collections::BTreeMap<String, u64>,
    pub other_peers: u64,
}
