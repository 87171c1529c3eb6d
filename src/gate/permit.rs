//! What the gate hands a front door: `Allowed(Permit)` or `Refused(Decision)`. A front door
//! cannot forward without a permit, and the permit carries the whole allowed-action
//! lifecycle: the decision id, the constraint hold (the action counts as running until the
//! permit is finished), the start time, and recording the result when the dispatch ends.
//! `/v1/check` hands its permit to the agent, whose `/v1/results` report ends the hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::approval::{ApprovalError, ApprovalView, Release};
use super::constraints::UpstreamLimits;
use super::{CheckRequest, Decision, Gate, Outcome, ResultReport};
use crate::action::{Action, AgentIdentity};

/// The gate's answer to a front door that will dispatch the action itself.
#[derive(Debug)]
pub enum Ruling {
    /// Dispatch it, under this permit.
    Allowed(Permit),
    /// Do not: denied, or still waiting for an approval. The decision says which and why.
    Refused(Decision),
}

impl Ruling {
    pub fn decision(&self) -> &Decision {
        match self {
            Ruling::Allowed(permit) => &permit.decision,
            Ruling::Refused(decision) => decision,
        }
    }
}

/// What waiting on an approval came to (`GET /v1/approvals/{id}/wait`).
#[derive(Debug)]
pub enum Waited {
    /// Approved, then ruled as a check of the action is: scopes, the serving policy revision
    /// and the verdict's constraints applied, and the decision recorded.
    Ruled {
        view: ApprovalView,
        ruling: Box<Ruling>,
    },
    /// Denied, expired, or already used outside the reuse window.
    Refused { view: ApprovalView, reason: String },
    /// Nobody has answered yet.
    Pending(ApprovalView),
}

/// The right to dispatch one allowed action. Finish it with what the dispatch did
/// ([`Permit::finish`], [`Permit::fail`]); that records the result and releases the
/// action's constraint hold.
pub struct Permit {
    gate: Arc<Gate>,
    decision: Decision,
    run_id: Option<String>,
    authenticated_as: Option<String>,
    started: Instant,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("decision_id", &self.decision.id)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// What a dispatch did, as the front door measured it.
#[derive(Debug, Default)]
pub struct Dispatched {
    pub ok: bool,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub error: Option<String>,
    /// The body, when small enough to keep in the audit blob table.
    pub body: Option<Vec<u8>>,
}

impl Gate {
    /// Decide like [`Gate::decide_and_wait`]; an allowed action comes with its permit.
    pub async fn rule(self: &Arc<Self>, req: &CheckRequest, wait: Duration) -> Ruling {
        let decision = self.decide_and_wait(req, wait).await;
        self.ruling(decision, &req.agent)
    }

    /// Wait up to `timeout` for approval `id` and release the approved action to `caller`
    /// (whose identity the approval must be bound to; the handler checks that). A release
    /// passes the same admission as [`Gate::rule`] and leaves the same decision entry:
    /// allowed, it comes with its permit. `None` for an unknown approval.
    pub async fn wait_for_approval(
        self: &Arc<Self>,
        id: &str,
        timeout: Duration,
        caller: AgentIdentity,
    ) -> Result<Option<Waited>, ApprovalError> {
        let (view, constraints, consumed) =
            match self.approvals.wait_and_release(id, timeout).await? {
                None => return Ok(None),
                Some(Release::Pending(view)) => return Ok(Some(Waited::Pending(view))),
                Some(Release::Refused { view, reason }) => {
                    return Ok(Some(Waited::Refused { view, reason }));
                }
                Some(Release::Allowed {
                    view,
                    constraints,
                    consumed,
                }) => (view, constraints, consumed.map(|c| *c)),
            };
        // The action as the approval keeps it (redacted): what the decision entry shows. Its
        // hash is the binding's, of the unredacted action that was judged.
        let action = match serde_json::from_value::<Action>(view.action.clone()) {
            Ok(a) => a,
            Err(e) => {
                let reason =
                    format!("the approved action could not be read back ({e}); it does not run");
                return Ok(Some(Waited::Refused { view, reason }));
            }
        };
        let req = CheckRequest {
            action,
            agent: AgentIdentity {
                id: Some(view.agent_id.clone()),
                run_id: view.run_id.clone(),
                ..caller
            },
            requester: view.requester.clone(),
        };
        let started = Instant::now();
        let span = super::decide_span(&req);
        let decision = span.in_scope(|| self.approved_decision(&view, constraints, &req));
        // In its own allocation, so that the future waiting above stays small.
        let decision = Box::pin(self.conclude(&req, decision, consumed, started, span)).await;
        Ok(Some(Waited::Ruled {
            ruling: Box::new(self.ruling(decision, &req.agent)),
            view,
        }))
    }

    /// A permit for an allowed decision; anything else is refused.
    fn ruling(self: &Arc<Self>, decision: Decision, agent: &AgentIdentity) -> Ruling {
        if decision.outcome != Outcome::Allow {
            return Ruling::Refused(decision);
        }
        Ruling::Allowed(Permit {
            gate: self.clone(),
            decision,
            run_id: agent.run_id.clone(),
            authenticated_as: agent.authenticated_as.clone(),
            started: Instant::now(),
        })
    }
}

impl Permit {
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The verdict's time and size limits for the dispatch.
    pub fn upstream_limits(&self) -> UpstreamLimits {
        self.decision.upstream_limits()
    }

    /// Record what the dispatch did. The hold is released first: the action stopped running.
    pub async fn finish(self, done: Dispatched) {
        let Permit {
            gate,
            decision,
            run_id,
            authenticated_as,
            started,
        } = self;
        drop(decision.hold);
        let report = ResultReport {
            decision_id: decision.id,
            ok: done.ok,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            result_sha256: done.sha256,
            size: done.size,
            error: done.error,
            run_id,
            tool_call_id: None,
            status: done.status,
            authenticated_as,
        };
        if let Err(e) = gate.record_result_with_body(&report, done.body).await {
            tracing::error!(action_id = %report.decision_id, error = %e, "could not record the dispatch result");
        }
    }

    /// Hand the action to the agent to run itself (`/v1/check`): its hold is kept until the
    /// agent reports the result (`/v1/results`) or its time is up. The decision is the answer.
    pub fn run_elsewhere(self) -> Decision {
        self.gate.hold_until_result(&self.decision);
        self.decision
    }

    /// Record a dispatch that got no answer (unreachable upstream, timeout, no tunnel).
    pub async fn fail(self, error: String) {
        let done = Dispatched {
            error: Some(error),
            ..Dispatched::default()
        };
        self.finish(done).await;
    }
}
