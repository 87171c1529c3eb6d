//! Approver channels: how people hear about approvals and answer them. The gate's approval
//! rules emit events ([`crate::gate::approval::ApprovalListener`]); the channels here subscribe.
//! Nothing in the gate speaks HTTP, Slack or webhooks; everything here does.
//!
//! - `slack.rs`: Block Kit messages, Slack request signatures, interaction payloads
//! - `webhook.rs`: Standard Webhooks, outgoing events and signed incoming callbacks
//! - `delivery.rs`: sending both, with retries, backoff and an audit entry per outcome
//! - `signature.rs`: what both signature schemes share (HMAC, the replay window)
//!
//! The admin listener (`src/admin/approvals.rs`) receives the answers.

pub(crate) mod delivery;
mod settings;
pub(crate) mod signature;
pub mod slack;
pub mod webhook;

pub use delivery::{Notifier, NotifyError};
pub use settings::{NotifyConfig, SlackConfig, WebhookConfig};
pub use signature::SignatureError;

#[cfg(test)]
mod fixtures {
    use serde_json::json;

    use crate::action::Requester;
    use crate::gate::approval::{ApprovalStatus, ApprovalView};
    use crate::gate::policy::Risk;

    /// A pending approval of a dangerous exec, as channels show it.
    pub(crate) fn view() -> ApprovalView {
        ApprovalView {
            id: "01970000-0000-7000-8000-000000000001".into(),
            status: ApprovalStatus::Pending,
            decision_id: "d-1".into(),
            action: json!({"kind": "tool", "tool": "exec",
                           "params": {"command": "rm -rf /tmp/x", "token": "[REDACTED:github_token]"}}),
            action_hash: "ab".repeat(32),
            policy_revision: "0123456789abcdef0123".into(),
            agent_id: "main".into(),
            authenticated_as: None,
            requester: Some(Requester {
                channel: Some("slack".into()),
                sender_id: Some("U0REQ".into()),
                sender_is_owner: Some(false),
            }),
            run_id: Some("run-1".into()),
            risk: Risk::High,
            reasons: vec!["exec is dangerous".into(), "touches <files> & more".into()],
            approvers: vec!["group:sre".into(), "U0APPROVER".into()],
            quorum: 1,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: "2026-01-01T00:05:00.000Z".into(),
            resolved_at: None,
            answers: vec![],
            decided_by: vec![],
            shown: Default::default(),
        }
    }
}
