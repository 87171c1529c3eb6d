//! The gate: every action, from every front door, is decided here.
//!
//! It knows nothing of HTTP, MCP or plugins: it takes an [`Action`] with who asked for it and
//! returns a [`Decision`]. Anything that goes wrong on the way is a deny with a reason.

pub mod approval;
// Public: the constraint layers are tower layers any dispatch service can be wrapped in.
pub mod constraints;
mod mode;
mod operations;
mod permit;
pub mod policy;
pub(crate) mod scope;

pub use mode::Mode;
pub use permit::{Dispatched, Permit, Ruling, Waited};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::action::{Action, AgentIdentity, Requester};
use crate::audit::{AuditError, AuditEvent, AuditLog, events};
use crate::facts::FactsContext;
use crate::metrics::Metrics;
use approval::{
    ApprovalBinding, ApprovalStatus, ApprovalView, Approvals, Clearance, NewApproval, Shown,
};
use constraints::{ConstraintHold, ConstraintState};
use policy::watch::{ReloadOutcome, ReloadTrigger};
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
    /// Serialized as `decision`: the field name on the wire and in the audit log.
    #[serde(rename = "decision")]
    pub outcome: Outcome,
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
    /// The approval this decision waits for or was allowed by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_status: Option<ApprovalStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_expires_at: Option<String>,
    /// Where a pending caller long-polls for the outcome (agent listener, relative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_url: Option<String>,
    /// Seq of the audit entry that records this decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<u64>,
    /// What an allowed action holds while it runs (its concurrency slot and upstream
    /// limits). A front door that dispatches the action keeps it until the dispatch ends.
    #[serde(skip)]
    pub hold: Option<Arc<ConstraintHold>>,
}

impl Decision {
    /// The time and size limits for dispatching this action upstream.
    pub fn upstream_limits(&self) -> constraints::UpstreamLimits {
        match (&self.hold, &self.constraints) {
            (Some(hold), _) => hold.upstream,
            (None, Some(c)) => constraints::UpstreamLimits {
                timeout: c.timeout_ms.map(Duration::from_millis),
                max_response_bytes: c.max_response_bytes,
            },
            (None, None) => constraints::UpstreamLimits::default(),
        }
    }
}

/// What the agent reports after a tool call ran (`POST /v1/results`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultReport {
    /// The `id` of the decision that let the call run.
    pub decision_id: String,
    pub ok: bool,
    pub duration_ms: u64,
    /// Hex SHA-256 of the tool result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_sha256: Option<String>,
    /// Size of the result in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// HTTP status of a response clawgate forwarded itself (MCP gateway, egress proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The identity that reported the result; set by clawgate, never read from the body.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub authenticated_as: Option<String>,
}

/// Reason added when the decision could not be recorded: nothing runs without evidence.
pub const AUDIT_UNAVAILABLE: &str = "the audit log could not record this decision, so it is denied";

pub struct Gate {
    policy: Arc<PolicyEngine>,
    mode: AtomicU8,
    environment: String,
    audit: Arc<AuditLog>,
    approvals: Arc<Approvals>,
    constraints: Arc<ConstraintState>,
    /// The sidecar's metrics: decisions, policy loads, approval bounds reached.
    metrics: Arc<Metrics>,
    /// Holds of actions allowed through `/v1/check`, which run inside OpenClaw: kept until
    /// their `/v1/results` report or [`CHECK_HOLD_LIMIT`] (or the verdict's `timeout_ms`).
    checks_running: Arc<Mutex<HashMap<String, Arc<ConstraintHold>>>>,
    /// What the facts stage assumes (home, workspace, clawgate's own files).
    facts: FactsContext,
    /// Identities with their own home directory.
    homes: HashMap<String, FactsContext>,
    /// Serializes mode changes and policy reloads, so that the audit log records them in the
    /// order they take effect.
    operations: tokio::sync::Mutex<()>,
}

/// A mode change that took effect, and the audit entry that recorded it first.
#[derive(Debug, Clone, Copy)]
pub struct ModeChange {
    pub previous: Mode,
    pub audit_seq: u64,
}

/// What a policy reload did; `audit_seq` is the entry that recorded it (none for an unchanged
/// bundle noticed by the file watcher or SIGHUP: nothing happened).
#[derive(Debug, Clone)]
pub struct PolicyReload {
    pub outcome: ReloadOutcome,
    pub audit_seq: Option<u64>,
}

/// Why an operation (mode change, policy reload) was not made.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("the change could not be recorded in the audit log, so it was not made: {0}")]
    Unrecorded(#[source] AuditError),
    #[error("the reload did not finish: {0}")]
    Interrupted(String),
}

/// How long an action allowed through `/v1/check` counts as running when no result is
/// reported and its verdict sets no `timeout_ms`.
pub const CHECK_HOLD_LIMIT: Duration = Duration::from_secs(300);

impl Gate {
    pub fn new(
        policy: Arc<PolicyEngine>,
        mode: Mode,
        environment: String,
        audit: Arc<AuditLog>,
        approvals: Arc<Approvals>,
        metrics: Arc<Metrics>,
    ) -> Gate {
        Gate {
            policy,
            mode: AtomicU8::new(mode as u8),
            environment,
            audit,
            approvals,
            constraints: ConstraintState::new(),
            metrics,
            checks_running: Arc::default(),
            facts: FactsContext::default(),
            homes: HashMap::new(),
            operations: tokio::sync::Mutex::new(()),
        }
    }

    /// Use `ctx` for the facts of every action, and each identity's own home for its actions.
    pub fn with_facts(mut self, ctx: FactsContext, homes: &[(String, String)]) -> Gate {
        self.homes = homes
            .iter()
            .map(|(identity, home)| (identity.clone(), ctx.with_home(home)))
            .collect();
        self.facts = ctx;
        self
    }

    /// The facts context for a request: its identity's, else the sidecar's.
    pub fn facts_context(&self, agent: &AgentIdentity) -> &FactsContext {
        agent
            .authenticated_as
            .as_ref()
            .and_then(|a| self.homes.get(a))
            .unwrap_or(&self.facts)
    }

    /// The serving policy revision.
    pub fn policy_revision(&self) -> String {
        self.policy.revision()
    }

    pub fn mode(&self) -> Mode {
        if self.mode.load(Ordering::Relaxed) == Mode::Shadow as u8 {
            Mode::Shadow
        } else {
            Mode::Enforce
        }
    }

    /// Switch the mode. Recorded first: a mode that loosens enforcement never takes effect
    /// unrecorded. `via` says who switched it (`admin_api`).
    pub async fn change_mode(&self, to: Mode, via: &str) -> Result<ModeChange, OperationError> {
        let _serial = self.operations.lock().await;
        let previous = self.mode();
        let receipt = self
            .audit
            .append(events::mode_changed(previous.as_str(), to.as_str(), via))
            .await
            .map_err(OperationError::Unrecorded)?;
        self.mode.store(to as u8, Ordering::Relaxed);
        tracing::warn!(
            from = previous.as_str(),
            to = to.as_str(),
            via,
            "mode changed"
        );
        Ok(ModeChange {
            previous,
            audit_seq: receipt.seq,
        })
    }

    /// Re-read the policy bundle from where it was loaded. The outcome is recorded first and
    /// only then does a new bundle serve; a bundle that does not compile is rejected and the
    /// serving one stays.
    pub async fn reload_policy(
        &self,
        trigger: ReloadTrigger,
    ) -> Result<PolicyReload, OperationError> {
        let _serial = self.operations.lock().await;
        let policy = self.policy.clone();
        let prepared = tokio::task::spawn_blocking(move || policy.prepare_reload())
            .await
            .map_err(|e| OperationError::Interrupted(e.to_string()))?;
        let serving = self.policy.revision();
        let trigger_name = trigger.as_str();
        let (outcome, bundle) = match prepared {
            Ok(Some(bundle)) => (
                ReloadOutcome::Swapped {
                    revision: bundle.revision.clone(),
                },
                Some(bundle),
            ),
            Ok(None) => (ReloadOutcome::Unchanged, None),
            Err(e) => {
                tracing::error!(trigger = trigger_name, error = %e, serving = %serving,
                    "policy bundle rejected; the previous bundle keeps serving");
                let error = e.to_string();
                (ReloadOutcome::Rejected { error, serving }, None)
            }
        };
        let event = match &outcome {
            ReloadOutcome::Unchanged if !matches!(trigger, ReloadTrigger::Admin) => {
                tracing::debug!(trigger = trigger_name, "policy bundle unchanged");
                self.metrics.policy_load(outcome.as_str());
                return Ok(PolicyReload {
                    outcome,
                    audit_seq: None,
                });
            }
            ReloadOutcome::Unchanged => {
                let serving = self.policy.revision();
                events::policy_reload("unchanged", trigger_name, &serving, None)
            }
            ReloadOutcome::Swapped { revision } => {
                events::policy_reload("reloaded", trigger_name, revision, None)
            }
            ReloadOutcome::Rejected { error, serving } => {
                events::policy_reload("rejected", trigger_name, serving, Some(error))
            }
        };
        let receipt = self
            .audit
            .append(event)
            .await
            .map_err(OperationError::Unrecorded)?;
        if let Some(bundle) = bundle {
            self.policy.install(bundle);
            tracing::info!(trigger = trigger_name, revision = %self.policy.revision(),
                "policy bundle reloaded");
        }
        self.metrics.policy_load(outcome.as_str());
        Ok(PolicyReload {
            outcome,
            audit_seq: Some(receipt.seq),
        })
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The policy input document for a request (see ARCHITECTURE.md).
    pub fn policy_input(&self, req: &CheckRequest, now: chrono::DateTime<chrono::Utc>) -> Value {
        let mut input = self.policy_input_but_action(req, now);
        if let Value::Object(map) = &mut input {
            map.insert("action".into(), to_value(&req.action));
        }
        input
    }

    /// [`Gate::policy_input`] without `action`: the decision cache keys on the action's hash,
    /// and the policy engine adds the action itself when it evaluates (not on a cache hit).
    fn policy_input_but_action(
        &self,
        req: &CheckRequest,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Value {
        let mut input = Map::new();
        let mut agent = to_value(&req.agent);
        if let (Some(scopes), Value::Object(a)) = (&req.agent.scopes, &mut agent) {
            a.insert("scopes".into(), to_value(scopes.as_ref()));
        }
        input.insert("agent".into(), agent);
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

    /// Decide one action and record the decision durably before answering. If the record
    /// cannot be written, the action is denied.
    pub async fn decide(&self, req: &CheckRequest) -> Decision {
        let started = std::time::Instant::now();
        let span = decide_span(req);
        let decision = self.judge(req).instrument(span.clone()).await;
        self.conclude(req, decision, None, started, span).await
    }

    /// The end of every decision, evaluated ([`Gate::decide`]) or released through its
    /// approval ([`Gate::wait_for_approval`]): approval, admission (constraints), the durable
    /// audit entry, metrics.
    async fn conclude(
        &self,
        req: &CheckRequest,
        decision: Decision,
        consumed: Option<AuditEvent>,
        started: std::time::Instant,
        span: tracing::Span,
    ) -> Decision {
        span.record("action_id", decision.id.as_str());
        let decision = self
            .record_decision(req, decision, consumed)
            .instrument(span.clone())
            .await;
        span.record("decision", decision.outcome.as_str());
        self.metrics.decision(
            req.action.kind.as_str(),
            decision.outcome.as_str(),
            decision.effect.as_str(),
            decision.risk.as_str(),
            started.elapsed(),
        );
        decision
    }

    /// The decision for an action an approval released (`GET /v1/approvals/{id}/wait`),
    /// before [`Gate::conclude`] admits and records it. Policy is not asked again: the approval
    /// is bound to the action and revision it judged. What a check of the same action would
    /// still refuse is refused here too: an action outside the caller's scopes, or a policy
    /// revision other than the serving one.
    fn approved_decision(
        &self,
        view: &ApprovalView,
        constraints: Option<Constraints>,
        req: &CheckRequest,
    ) -> Decision {
        let serving = self.policy.revision();
        let refusal = self.scope_refusal(req).or_else(|| {
            (view.policy_revision != serving).then(|| {
                format!(
                    "the policy changed since approval {} was asked for (revision {}, now {serving}); retry the call so that the serving policy decides it",
                    view.id, view.policy_revision
                )
            })
        });
        let verdict = match refusal {
            Some(reason) => Verdict {
                effect: Effect::Deny,
                risk: Risk::High,
                reasons: vec![reason],
                approval: None,
                constraints: None,
            },
            None => Verdict {
                effect: Effect::RequireApproval,
                risk: view.risk,
                reasons: view.reasons.clone(),
                approval: None,
                constraints,
            },
        };
        let approved = verdict.effect == Effect::RequireApproval;
        let mut d = self.apply_mode(verdict, serving, view.action_hash.clone());
        if approved {
            d.shadow = None;
            approve(&mut d, view);
        } else {
            d.approval_id = Some(view.id.clone());
            d.approval_status = Some(view.status);
        }
        d
    }

    /// Ask for approval if needed, then record the decision durably (or deny it).
    /// `consumed`: the first use of the approval that released this action, recorded in the
    /// same commit as the decision (a release is one durable write).
    async fn record_decision(
        &self,
        req: &CheckRequest,
        mut decision: Decision,
        mut consumed: Option<AuditEvent>,
    ) -> Decision {
        if decision.outcome == Outcome::Pending {
            consumed = self.ask_for_approval(req, &mut decision).await;
        }
        if decision.outcome == Outcome::Allow {
            self.admit(req, &mut decision).await;
        }
        let mut events: Vec<AuditEvent> = consumed.into_iter().collect();
        events.push(decision_event(req, &decision, &self.environment));
        match self.audit.append_all(events).await {
            Ok(receipts) => decision.audit_seq = receipts.last().map(|r| r.seq),
            Err(e) => {
                tracing::error!(action_id = %decision.id, error = %e, "decision not recorded; denying");
                decision.outcome = Outcome::Deny;
                decision.shadow = None;
                decision.hold = None;
                decision.reasons.push(format!("{AUDIT_UNAVAILABLE}: {e}"));
            }
        }
        decision
    }

    /// Like [`Gate::decide`], but a pending decision is held up to `wait` for its approval to
    /// resolve; then the action is decided again, so the answer is the resolved one.
    ///
    /// Each decision runs in its own allocation, freed when it is made: a held request keeps
    /// only the pending decision and its subscription to the approval while it waits, not the
    /// state of a whole decision (kilobytes per held request otherwise).
    pub async fn decide_and_wait(&self, req: &CheckRequest, wait: std::time::Duration) -> Decision {
        let decision = Box::pin(self.decide(req)).await;
        let Some(id) = decision.approval_id.as_deref() else {
            return decision;
        };
        if decision.outcome != Outcome::Pending || wait.is_zero() {
            return decision;
        }
        match self.approvals.wait(id, wait).await {
            Some(status) if status.is_final() => Box::pin(self.decide(req)).await,
            _ => decision,
        }
    }

    /// Run an allowed action through the constraint layers: a breach denies it (in shadow
    /// mode: records that it would have been denied), otherwise it gets its hold.
    async fn admit(&self, req: &CheckRequest, d: &mut Decision) {
        let Some(constraints) = d.constraints.clone() else {
            return;
        };
        let agent = req
            .agent
            .authenticated_as
            .clone()
            .or_else(|| req.agent.id.clone())
            .unwrap_or_else(|| "unknown".into());
        match self
            .constraints
            .admit(agent, constraints, chrono::Utc::now())
            .await
        {
            Ok(hold) => d.hold = Some(Arc::new(hold)),
            Err(breach) => {
                d.reasons.push(format!("constraint: {breach}"));
                if d.mode == Mode::Shadow {
                    d.shadow = Some(ShadowOutcome::WouldDeny);
                } else {
                    d.outcome = Outcome::Deny;
                    d.effect = Effect::Deny;
                }
            }
        }
    }

    /// Keep the hold of an action allowed through `/v1/check` until its `/v1/results`
    /// report arrives or its time is up (the verdict's `timeout_ms`, else
    /// [`CHECK_HOLD_LIMIT`]), since the action itself runs inside OpenClaw.
    pub fn hold_until_result(&self, d: &Decision) {
        let Some(hold) = d.hold.clone().filter(|h| h.holds_slot()) else {
            return;
        };
        let limit = hold.upstream.timeout.unwrap_or(CHECK_HOLD_LIMIT);
        let running = self.checks_running.clone();
        let id = d.id.clone();
        running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), hold);
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    /// What approvers are told besides the redacted arguments: the redacted paths (relative
    /// to the action) and the programs its shell commands run, from the facts stage.
    async fn shown(&self, req: &CheckRequest, redacted: Vec<String>) -> Shown {
        let facts = self
            .policy
            .facts_off_thread(&req.action, self.facts_context(&req.agent))
            .await;
        let mut programs: Vec<String> = Vec::new();
        for c in &facts.commands {
            if !c.name.is_empty() && !programs.contains(&c.name) {
                programs.push(c.name.clone());
            }
        }
        Shown {
            redacted: redacted
                .into_iter()
                .map(|p| p.strip_prefix("action.").map(str::to_string).unwrap_or(p))
                .collect(),
            programs,
            programs_incomplete: facts.truncated,
        }
    }

    /// Bind a `require_approval` verdict to an approval: an approved one lets the action
    /// through, a recently denied or expired one refuses it, otherwise it stays pending.
    /// Returns the `consumed` entry when an approval for this exact action let it through.
    async fn ask_for_approval(&self, req: &CheckRequest, d: &mut Decision) -> Option<AuditEvent> {
        let binding = ApprovalBinding {
            action_hash: d.action_hash.clone(),
            policy_revision: d.policy_revision.clone(),
            agent_id: req.agent.id.clone().unwrap_or_default(),
            authenticated_as: req.agent.authenticated_as.clone(),
            requester: req.requester.clone(),
        };
        // An approval for exactly this action answers without what a new one needs (the
        // redacted action and its facts): the checks held on an approval, released together,
        // each come back here.
        let cleared = match self.approvals.reuse(&binding).await {
            Ok(Some(clearance)) => Ok(clearance),
            Ok(None) => {
                // People read the action; secrets are redacted as they are for the audit log.
                let mut shown = serde_json::json!({ "action": to_value(&req.action) });
                let redacted = self.audit.redactor().redact(&mut shown);
                let new = NewApproval {
                    decision_id: d.id.clone(),
                    run_id: req.agent.run_id.clone(),
                    action: shown["action"].take(),
                    risk: d.risk,
                    reasons: d.reasons.clone(),
                    spec: d.approval.clone(),
                    constraints: d.constraints.clone(),
                    shown: self.shown(req, redacted).await,
                };
                self.approvals.admit(binding, new).await
            }
            Err(e) => Err(e),
        };
        match cleared {
            Ok(Clearance::Approved { view, consumed }) => {
                approve(d, &view);
                return consumed;
            }
            Ok(Clearance::Refused(view)) => {
                d.outcome = Outcome::Deny;
                d.reasons.push(approval::refusal_reason(&view));
                d.approval_status = Some(view.status);
                d.approval_id = Some(view.id);
            }
            Ok(Clearance::Limited(limit)) => {
                tracing::warn!(action_id = %d.id, bound = limit.bound(), "approval flood bound reached; denying");
                self.metrics.approval_limited(limit.bound());
                d.outcome = Outcome::Deny;
                d.reasons.push(limit.to_string());
            }
            Ok(Clearance::Pending { view, .. }) => {
                d.reasons.push(format!(
                    "waiting for approval {} by {} (quorum {}, expires {}); retry the same call once approved",
                    view.id,
                    view.approvers.join(", "),
                    view.quorum,
                    view.expires_at
                ));
                d.wait_url = Some(format!("/v1/approvals/{}/wait", view.id));
                d.approval_expires_at = Some(view.expires_at);
                d.approval_status = Some(view.status);
                d.approval_id = Some(view.id);
            }
            Err(e) => {
                tracing::error!(action_id = %d.id, error = %e, "approval could not be requested; denying");
                d.outcome = Outcome::Deny;
                d.reasons
                    .push(format!("approval could not be requested ({e}); denied"));
            }
        }
        None
    }

    /// Whether an MCP tool should be listed to the model: false when policy denies it
    /// whatever the arguments (evaluated without arguments; nothing is recorded).
    pub fn tool_visible(&self, server: &str, tool: &str, agent: &AgentIdentity) -> bool {
        let request = CheckRequest {
            action: Action::mcp(server, tool, None),
            agent: agent.clone(),
            requester: None,
        };
        self.evaluate(&request).outcome != Outcome::Deny
    }

    /// Policy and mode only, without recording: what [`Gate::decide`] would answer. Evaluates
    /// on this thread.
    pub fn evaluate(&self, req: &CheckRequest) -> Decision {
        match self.ask_policy(req) {
            Asked::Answered(decision) => *decision,
            Asked::Evaluate(input, action_hash) => {
                let ctx = self.facts_context(&req.agent);
                let (verdict, revision) =
                    self.policy
                        .evaluate_action(input, &req.action, ctx, &action_hash);
                self.apply_verdict(verdict, revision, action_hash)
            }
        }
    }

    /// [`Gate::evaluate`] with the evaluation on the policy threads, off the async I/O workers.
    async fn judge(&self, req: &CheckRequest) -> Decision {
        match self.ask_policy(req) {
            Asked::Answered(decision) => *decision,
            Asked::Evaluate(input, action_hash) => {
                let ctx = self.facts_context(&req.agent);
                let (verdict, revision) = self
                    .policy
                    .decide_action(input, &req.action, ctx, &action_hash)
                    .await;
                self.apply_verdict(verdict, revision, action_hash)
            }
        }
    }

    /// What comes before policy: the scope check, then the input policy judges.
    fn ask_policy(&self, req: &CheckRequest) -> Asked {
        let action_hash = req.action.canonical_hash();
        if let Some(reason) = self.scope_refusal(req) {
            let verdict = Verdict {
                effect: Effect::Deny,
                risk: Risk::High,
                reasons: vec![reason],
                approval: None,
                constraints: None,
            };
            let decision = self.apply_mode(verdict, self.policy.revision(), action_hash);
            return Asked::Answered(Box::new(decision));
        }
        Asked::Evaluate(
            self.policy_input_but_action(req, chrono::Utc::now()),
            action_hash,
        )
    }

    /// A verdict, or the failure that denies, under the current mode.
    fn apply_verdict(
        &self,
        verdict: Result<Verdict, policy::EvalFailure>,
        revision: String,
        action_hash: String,
    ) -> Decision {
        let verdict = verdict.unwrap_or_else(|failure| Verdict {
            effect: Effect::Deny,
            risk: Risk::High,
            reasons: vec![failure.to_string()],
            approval: None,
            constraints: None,
        });
        self.apply_mode(verdict, revision, action_hash)
    }

    /// Why the action is outside the caller's identity scopes, if it is.
    fn scope_refusal(&self, req: &CheckRequest) -> Option<String> {
        scope::out_of_scope(
            req.agent.authenticated_as.as_deref(),
            req.agent.scopes.as_deref()?,
            &req.action,
            &self.environment,
            || self.policy.bundle(),
        )
    }

    /// Record what happened when an allowed action ran.
    pub async fn record_result(
        &self,
        report: &ResultReport,
    ) -> Result<u64, crate::audit::AuditError> {
        self.record_result_with_body(report, None).await
    }

    /// Record a result and keep its body (up to `audit.blob_max_bytes`) in the blob table
    /// under its SHA-256, for `clawgate audit blob`.
    pub async fn record_result_with_body(
        &self,
        report: &ResultReport,
        body: Option<Vec<u8>>,
    ) -> Result<u64, crate::audit::AuditError> {
        let mut event = events::result(to_value(report), report.run_id.as_deref());
        if let (Some(hash), Some(body)) = (&report.result_sha256, body) {
            event.blob = Some((hash.clone(), body));
        }
        let seq = self.audit.append(event).await.map(|r| r.seq);
        self.checks_running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&report.decision_id);
        seq
    }

    fn apply_mode(
        &self,
        verdict: Verdict,
        policy_revision: String,
        action_hash: String,
    ) -> Decision {
        let mode = self.mode();
        let reasons = verdict.reasons;
        let (outcome, shadow) = match (mode, verdict.effect) {
            (_, Effect::Allow) => (Outcome::Allow, None),
            (Mode::Shadow, Effect::Deny) => (Outcome::Allow, Some(ShadowOutcome::WouldDeny)),
            (Mode::Shadow, Effect::RequireApproval) => {
                (Outcome::Allow, Some(ShadowOutcome::WouldRequireApproval))
            }
            (Mode::Enforce, Effect::Deny) => (Outcome::Deny, None),
            (Mode::Enforce, Effect::RequireApproval) => (Outcome::Pending, None),
        };
        Decision {
            id: uuid::Uuid::now_v7().to_string(),
            outcome,
            effect: verdict.effect,
            risk: verdict.risk,
            reasons,
            policy_revision,
            mode,
            shadow,
            action_hash,
            approval: verdict.approval,
            constraints: verdict.constraints,
            approval_id: None,
            approval_status: None,
            approval_expires_at: None,
            wait_url: None,
            audit_seq: None,
            hold: None,
        }
    }
}

/// [`Gate::ask_policy`]'s answer: decided without policy, or the input to evaluate (and the
/// action's hash).
enum Asked {
    Answered(Box<Decision>),
    Evaluate(Value, String),
}

/// The tracing span of one decision.
fn decide_span(req: &CheckRequest) -> tracing::Span {
    tracing::info_span!(
        "decide",
        action_id = tracing::field::Empty,
        run_id = req.agent.run_id.as_deref().unwrap_or(""),
        kind = req.action.kind.as_str(),
        decision = tracing::field::Empty
    )
}

/// An approval lets the action through: the decision says so and names it.
fn approve(d: &mut Decision, view: &ApprovalView) {
    d.outcome = Outcome::Allow;
    d.reasons.push(format!(
        "approved by {} (approval {})",
        view.decided_by.join(", "),
        view.id
    ));
    d.approval_status = Some(view.status);
    d.approval_id = Some(view.id.clone());
}

/// The audit entry for a decision: the action (redacted by the log), its unredacted hash,
/// who asked, and everything the policy said.
fn decision_event(req: &CheckRequest, d: &Decision, environment: &str) -> AuditEvent {
    let mut fields = Map::new();
    fields.insert("decision_id".into(), Value::String(d.id.clone()));
    fields.insert("decision".into(), to_value(&d.outcome));
    fields.insert("effect".into(), to_value(&d.effect));
    fields.insert("risk".into(), to_value(&d.risk));
    fields.insert("reasons".into(), to_value(&d.reasons));
    fields.insert(
        "policy_revision".into(),
        Value::String(d.policy_revision.clone()),
    );
    fields.insert("mode".into(), to_value(&d.mode));
    if let Some(shadow) = &d.shadow {
        fields.insert("shadow".into(), to_value(shadow));
    }
    fields.insert("environment".into(), Value::String(environment.to_string()));
    fields.insert("action".into(), to_value(&req.action));
    fields.insert("action_hash".into(), Value::String(d.action_hash.clone()));
    fields.insert("agent".into(), to_value(&req.agent));
    if let Some(r) = &req.requester {
        fields.insert("requester".into(), to_value(r));
    }
    if let Some(a) = &d.approval {
        fields.insert("approval".into(), to_value(a));
    }
    if let Some(id) = &d.approval_id {
        fields.insert("approval_id".into(), Value::String(id.clone()));
    }
    if let Some(c) = &d.constraints {
        fields.insert("constraints".into(), to_value(c));
    }
    events::decision(fields, req.agent.run_id.as_deref())
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Plain data structs always serialize.
    serde_json::to_value(v).unwrap_or(Value::Null)
}
