//! What an approval is: the request bound to one exact action, the answers people gave, and
//! the public view that notifications, the API and the CLI show.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::action::Requester;
use crate::gate::policy::{Constraints, Risk};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    pub fn is_final(self) -> bool {
        self != ApprovalStatus::Pending
    }
}

/// One approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    Approve,
    Deny,
}

impl Vote {
    pub fn as_str(self) -> &'static str {
        match self {
            Vote::Approve => "approve",
            Vote::Deny => "deny",
        }
    }
}

/// How an answer reached clawgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Slack interactivity (Block Kit button), verified by the Slack signing secret.
    Slack,
    /// A generic callback signed the Standard Webhooks way.
    Webhook,
    /// An operator with the admin token (`clawgate approvals approve|deny`).
    Cli,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Webhook => "webhook",
            Channel::Cli => "cli",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub approver: String,
    pub vote: Vote,
    pub channel: Channel,
    /// RFC 3339 UTC.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What proved the answer: `slack:<user id>` (Slack's signature), `approver:<NAME>` (the
    /// approver's own token), `admin` (the admin token, as the local operator) or `webhook`
    /// (the shared webhook secret, whoever it names). Answers stored before it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What an approval is bound to. An approval applies only to a check whose binding is equal:
/// the same canonical action, under the same policy revision, from the same agent, asked by
/// the same requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalBinding {
    /// SHA-256 of the RFC 8785 canonical (unredacted) action.
    pub action_hash: String,
    pub policy_revision: String,
    pub agent_id: String,
    /// The transport credential the agent authenticated with, when identities are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_as: Option<String>,
    /// The person (or channel) whose message made the agent act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
}

impl ApprovalBinding {
    /// A single key for the binding (hex SHA-256 of its canonical JSON).
    pub fn key(&self) -> String {
        let bytes = serde_json_canonicalizer::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }
}

/// An approval as stored: everything needed to decide, show and re-notify it after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: String,
    /// The decision that asked for this approval.
    pub decision_id: String,
    pub binding: ApprovalBinding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The action with secrets redacted, for people to read. The binding holds the hash of
    /// the unredacted action.
    pub action: Value,
    pub risk: Risk,
    pub reasons: Vec<String>,
    /// Approver ids and `group:NAME` entries, as the verdict named them.
    pub approvers: Vec<String>,
    pub quorum: u32,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub expires_ms: i64,
    pub status: ApprovalStatus,
    #[serde(default)]
    pub answers: Vec<Answer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ms: Option<i64>,
    /// When the approved action was first let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_used_ms: Option<i64>,
    /// Reply handles left by the channels answers came from (Slack's `response_url`s), opaque
    /// here; handed back to the channels when the approval resolves. Stored under its
    /// original name so approvals persisted before keep theirs.
    #[serde(
        default,
        rename = "slack_response_urls",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reply_handles: Vec<String>,
    /// The verdict's constraints (rate, concurrency, time window, upstream limits), applied
    /// again each time the approved action is released. Approvals stored before this field
    /// existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    #[serde(default, flatten)]
    pub shown: Shown,
}

/// What approvers are told about the action besides its redacted arguments (issue 15,
/// finding 9): which values were redacted, and which programs a shell command runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    /// Dotted paths (from the action, e.g. `params.token`) of the values redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
    /// The programs the action's shell commands run, nested ones included (`sh -c`,
    /// `$(...)`, wrappers), each once, in the order the parse met them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// The parse stopped at a limit: more programs may run than are listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub programs_incomplete: bool,
}

impl ApprovalRequest {
    /// Distinct approvers whose approval counted.
    pub fn approved_by(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in &self.answers {
            if a.vote == Vote::Approve && !out.contains(&a.approver) {
                out.push(a.approver.clone());
            }
        }
        out
    }

    /// Who decided the outcome: the approvers for an approval, the denier for a denial.
    pub fn decided_by(&self) -> Vec<String> {
        match self.status {
            ApprovalStatus::Approved => self.approved_by(),
            ApprovalStatus::Denied => self
                .answers
                .iter()
                .filter(|a| a.vote == Vote::Deny)
                .map(|a| a.approver.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn view(&self) -> ApprovalView {
        ApprovalView {
            id: self.id.clone(),
            status: self.status,
            decision_id: self.decision_id.clone(),
            action: self.action.clone(),
            action_hash: self.binding.action_hash.clone(),
            policy_revision: self.binding.policy_revision.clone(),
            agent_id: self.binding.agent_id.clone(),
            authenticated_as: self.binding.authenticated_as.clone(),
            requester: self.binding.requester.clone(),
            run_id: self.run_id.clone(),
            risk: self.risk,
            reasons: self.reasons.clone(),
            approvers: self.approvers.clone(),
            quorum: self.quorum,
            created_at: rfc3339(self.created_ms),
            expires_at: rfc3339(self.expires_ms),
            resolved_at: self.resolved_ms.map(rfc3339),
            answers: self.answers.clone(),
            decided_by: self.decided_by(),
            shown: self.shown.clone(),
        }
    }
}

/// The public view of an approval: what notifications, `GET /v1/approvals/{id}` and
/// `clawgate approvals show` present. Never holds unredacted arguments or secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub id: String,
    pub status: ApprovalStatus,
    pub decision_id: String,
    pub action: Value,
    pub action_hash: String,
    pub policy_revision: String,
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub approvers: Vec<String>,
    pub quorum: u32,
    pub created_at: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    pub answers: Vec<Answer>,
    pub decided_by: Vec<String>,
    #[serde(default, flatten)]
    pub shown: Shown,
}

impl ApprovalView {
    /// A short name for what is asked: the tool, MCP tool or destination.
    pub fn subject(&self) -> String {
        action_subject(&self.action)
    }
}

/// A short name for an action (as stored in an approval): the tool, MCP tool or destination.
pub fn action_subject(a: &Value) -> String {
    let s = |k: &str| a.get(k).and_then(Value::as_str);
    match s("kind") {
        Some("mcp") => format!(
            "MCP {}/{}",
            s("server").unwrap_or("?"),
            s("tool").unwrap_or("?")
        ),
        Some("http") => {
            let h = &a["http"];
            format!(
                "{} {}://{}{}",
                h["method"].as_str().unwrap_or("?"),
                h["scheme"].as_str().unwrap_or("?"),
                h["host"].as_str().unwrap_or("?"),
                h["path"].as_str().unwrap_or("")
            )
        }
        Some("connect") => format!(
            "CONNECT {}:{}",
            a["dest"]["host"].as_str().unwrap_or("?"),
            a["dest"]["port"].as_u64().unwrap_or(0)
        ),
        _ => format!("tool {}", s("tool").unwrap_or("?")),
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
