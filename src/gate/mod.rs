//! The gate: every action, from every front door, is decided here.
//!
//! It knows nothing of HTTP, MCP or plugins: it takes an [`Action`] with who asked for it and
//! returns a [`Decision`]. Anything that goes wrong on the way is a deny with a reason.

pub mod policy;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::action::{Action, AgentIdentity, Requester};
use crate::config::Mode;
use policy::{ApprovalSpec, Constraints, Effect, PolicyEngine, Risk, Verdict};

/// An action plus who wants it done.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub action: Action,
    pub agent: AgentIdentity,
    pub requester: Option<Requester>,
}

/// What the front door should do with the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
    /// Held for a person's approval.
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Pending => "pending",
        }
    }
}

/// In shadow mode, what enforcement would have done instead of allowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowOutcome {
    WouldDeny,
    WouldRequireApproval,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Unique, time-ordered decision id (UUIDv7).
    pub id: String,
    pub decision: Outcome,
    /// What policy asked for (or `deny` when policy could not answer).
    pub effect: Effect,
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub policy_revision: String,
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowOutcome>,
    /// SHA-256 of the RFC 8785 canonical action.
    pub action_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
}

/// Reason appended to `require_approval` verdicts while no approval workflow is wired in.
pub const NO_APPROVAL_WORKFLOW: &str =
    "approval required, but no approval workflow is configured in this clawgate; denied";

pub struct Gate {
    policy: Arc<PolicyEngine>,
    mode: AtomicU8,
    environment: String,
}

impl Gate {
    pub fn new(policy: Arc<PolicyEngine>, mode: Mode, environment: String) -> Gate {
        Gate {
            policy,
            mode: AtomicU8::new(mode as u8),
            environment,
        }
    }

    pub fn policy(&self) -> &Arc<PolicyEngine> {
        &self.policy
    }

    pub fn mode(&self) -> Mode {
        if self.mode.load(Ordering::Relaxed) == Mode::Shadow as u8 {
            Mode::Shadow
        } else {
            Mode::Enforce
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The policy input document for a request (see ARCHITECTURE.md).
    pub fn policy_input(&self, req: &CheckRequest, now: chrono::DateTime<chrono::Utc>) -> Value {
        let mut input = Map::new();
        input.insert("action".into(), to_value(&req.action));
        input.insert("agent".into(), to_value(&req.agent));
        if let Some(r) = &req.requester {
            input.insert("requester".into(), to_value(r));
        }
        input.insert(
            "environment".into(),
            Value::String(self.environment.clone()),
        );
        input.insert(
            "now".into(),
            Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        );
        Value::Object(input)
    }

    /// Decide one action.
    pub fn decide(&self, req: &CheckRequest) -> Decision {
        let input = self.policy_input(req, chrono::Utc::now());
        let action_hash = req.action.canonical_hash();
        let (verdict, revision) = self.policy.evaluate_cached(&input, &action_hash);
        let verdict = verdict.unwrap_or_else(|failure| Verdict {
            effect: Effect::Deny,
            risk: Risk::High,
            reasons: vec![failure.to_string()],
            approval: None,
            constraints: None,
        });
        self.apply_mode(verdict, revision, action_hash)
    }

    fn apply_mode(
        &self,
        verdict: Verdict,
        policy_revision: String,
        action_hash: String,
    ) -> Decision {
        let mode = self.mode();
        let mut reasons = verdict.reasons;
        let (decision, shadow) = match (mode, verdict.effect) {
            (_, Effect::Allow) => (Outcome::Allow, None),
            (Mode::Shadow, Effect::Deny) => (Outcome::Allow, Some(ShadowOutcome::WouldDeny)),
            (Mode::Shadow, Effect::RequireApproval) => {
                (Outcome::Allow, Some(ShadowOutcome::WouldRequireApproval))
            }
            (Mode::Enforce, Effect::Deny) => (Outcome::Deny, None),
            (Mode::Enforce, Effect::RequireApproval) => {
                reasons.push(NO_APPROVAL_WORKFLOW.to_string());
                (Outcome::Deny, None)
            }
        };
        Decision {
            id: uuid::Uuid::now_v7().to_string(),
            decision,
            effect: verdict.effect,
            risk: verdict.risk,
            reasons,
            policy_revision,
            mode,
            shadow,
            action_hash,
            approval: verdict.approval,
            constraints: verdict.constraints,
        }
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Plain data structs always serialize.
    serde_json::to_value(v).unwrap_or(Value::Null)
}
