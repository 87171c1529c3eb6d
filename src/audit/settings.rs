//! `[audit]`: checkpoints, group commit, kept bodies and redaction.

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigProblem, out_of_range};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Sign a checkpoint after this many new entries.
    pub checkpoint_every: u64,
    /// Sign a checkpoint at least this often (seconds) while entries arrive.
    pub checkpoint_interval_s: u64,
    /// Most entries committed in one write transaction (group commit).
    pub max_batch: usize,
    /// Size of the journal's ring in KiB (`audit.journal`, written once when it is created).
    pub journal_kib: u64,
    /// Result bodies up to this size are kept in the blob table (0 keeps none).
    pub blob_max_bytes: usize,
    pub redact: RedactConfig,
}

/// Secrets removed before storage, on top of the built-in header names and token shapes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Extra key names whose values are always redacted (case-insensitive).
    pub keys: Vec<String>,
    /// Dotted JSON paths within an entry, `*` matching any key or index
    /// (e.g. `action.params.password`).
    pub paths: Vec<String>,
    /// Extra token shapes: name = regex.
    pub patterns: std::collections::BTreeMap<String, String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            checkpoint_interval_s: 60,
            max_batch: 1024,
            journal_kib: 4096,
            blob_max_bytes: 64 * 1024,
            redact: RedactConfig::default(),
        }
    }
}

impl AuditConfig {
    /// Checks that types alone cannot express.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.checkpoint_every == 0 {
            problems.push(ConfigProblem::new(
                "audit.checkpoint_every",
                "must be at least 1",
                "use a positive entry count (default 1000)",
            ));
        }
        if self.checkpoint_interval_s == 0 {
            problems.push(ConfigProblem::new(
                "audit.checkpoint_interval_s",
                "must be at least 1",
                "use a positive number of seconds (default 60)",
            ));
        }
        problems.extend(out_of_range(
            "audit.max_batch",
            self.max_batch as u64,
            1,
            65_536,
            1024,
        ));
        problems.extend(out_of_range(
            "audit.journal_kib",
            self.journal_kib,
            64,
            1 << 20,
            4096,
        ));
        for (name, pattern) in &self.redact.patterns {
            if let Err(e) = regex::Regex::new(pattern) {
                problems.push(ConfigProblem::new(
                    format!("audit.redact.patterns.{name}"),
                    format!(
                        "not a valid regex: {}",
                        e.to_string().lines().last().unwrap_or("")
                    ),
                    "write a Rust regex (no look-around)",
                ));
            }
        }
        problems
    }
}
