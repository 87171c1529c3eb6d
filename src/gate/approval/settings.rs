//! `[approval]`: how `require_approval` verdicts are held and who may answer them.

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigProblem, out_of_range};

/// How `require_approval` verdicts are held and answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// Expiry of an approval request when the verdict names none (seconds).
    pub timeout_s: u64,
    /// Longest `POST /v1/check?wait=` or `GET /v1/approvals/{id}/wait` holds before it
    /// answers `pending` (seconds).
    pub max_wait_s: u64,
    /// How long front doors that cannot long-poll (MCP gateway, egress proxy) hold a call.
    pub hold_s: u64,
    /// Once an approved action went through, an identical retry within this many seconds is
    /// the same approval (a reconnecting client is not asked again). The same window answers
    /// a retry of a denied or expired action with that denial.
    pub reuse_window_s: u64,
    /// Approver groups: `group:NAME` in a verdict's approvers means any id listed here.
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// The named identity the admin token's holder answers as from the CLI
    /// (`clawgate approvals approve ID` without `--as`). While no `groups` are configured
    /// (the embedded defaults) this local operator may answer every approval, since nobody
    /// else could; once groups exist it counts only where a verdict or a group names it.
    pub local_operator: String,
    /// Most approvals one agent (its authenticated identity, else its agent id) may have
    /// pending at once; past it a check that needs a new approval is denied
    /// (`approval_limit`).
    pub max_pending_per_agent: u64,
    /// Most approvals pending at once, all agents together.
    pub max_pending: u64,
    /// Most new approvals one agent may ask for in any 60 seconds (answered or not).
    pub new_per_agent_per_minute: u64,
}

/// The default [`ApprovalConfig::local_operator`].
pub const LOCAL_OPERATOR: &str = "local-operator";

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            timeout_s: 300,
            max_wait_s: 30,
            hold_s: 20,
            reuse_window_s: 60,
            groups: Default::default(),
            local_operator: LOCAL_OPERATOR.to_string(),
            max_pending_per_agent: 20,
            max_pending: 200,
            new_per_agent_per_minute: 10,
        }
    }
}

/// `[people.NAME]`: one person known by several ids (a Slack user id, an approver name, a chat
/// sender id). The approval rules treat the ids as one: the requester never approves their
/// own request under another id, and one person fills one place of a quorum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub ids: Vec<String>,
}

impl ApprovalConfig {
    /// The time limits and flood bounds out of their range.
    pub fn range_problems(&self) -> Vec<ConfigProblem> {
        let ranges = [
            ("approval.timeout_s", self.timeout_s, 1, 7 * 86_400, 300),
            ("approval.max_wait_s", self.max_wait_s, 0, 3_600, 30),
            ("approval.hold_s", self.hold_s, 0, 3_600, 20),
            (
                "approval.reuse_window_s",
                self.reuse_window_s,
                0,
                86_400,
                60,
            ),
            (
                "approval.max_pending_per_agent",
                self.max_pending_per_agent,
                1,
                10_000,
                20,
            ),
            ("approval.max_pending", self.max_pending, 1, 100_000, 200),
            (
                "approval.new_per_agent_per_minute",
                self.new_per_agent_per_minute,
                1,
                10_000,
                10,
            ),
        ];
        ranges
            .into_iter()
            .filter_map(|(key, value, min, max, default)| {
                out_of_range(key, value, min, max, default)
            })
            .collect()
    }

    /// The local operator and group members must be approver ids.
    pub fn name_problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let operator = self.local_operator.trim();
        if operator.is_empty()
            || operator != self.local_operator
            || operator.starts_with("group:")
            || operator.chars().any(char::is_whitespace)
        {
            problems.push(ConfigProblem::new(
                "approval.local_operator",
                format!(
                    "{:?} is not an approver id (one word, not group:NAME)",
                    self.local_operator
                ),
                "name the admin token's holder, e.g. local_operator = \"ops-alice\"",
            ));
        }
        for (name, members) in &self.groups {
            if name.is_empty() || members.iter().any(|m| m.trim().is_empty()) {
                problems.push(ConfigProblem::new(
                    format!("approval.groups.{name}"),
                    "group names and member ids must not be empty",
                    "list approver ids, e.g. sre = [\"U0123ABCD\"]",
                ));
            }
        }
        problems
    }
}

/// `[people.NAME]`: every person lists ids, and each id belongs to one person.
pub fn people_problems(people: &std::collections::BTreeMap<String, Person>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut owner = std::collections::BTreeMap::new();
    for (name, person) in people {
        let key = format!("people.{name}.ids");
        if person.ids.is_empty() || person.ids.iter().any(|i| i.trim().is_empty()) {
            problems.push(ConfigProblem::new(
                key.clone(),
                "must list ids, none of them empty",
                "list the person's ids on every channel, e.g. ids = [\"U0123ABCD\", \"ops-alice\"]",
            ));
        }
        for id in &person.ids {
            if let Some(other) = owner.insert(id.as_str(), name) {
                problems.push(ConfigProblem::new(
                    key.clone(),
                    format!("{id:?} is also listed for people.{other}"),
                    "list each id under one person",
                ));
            }
        }
    }
    problems
}
