//! What the gate hands a front door that dispatches actions itself (MCP gateway, egress
//! proxy): `Allowed(Permit)` or `Refused(Decision)`. A front door cannot forward without a
//! permit, and the permit carries the whole allowed-action lifecycle: the decision id, the
//! constraint hold (the action counts as running until the permit is finished), the start
//! time, and recording the result when the dispatch ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::constraints::UpstreamLimits;
use super::{CheckRequest, Decision, Gate, Outcome, ResultReport};

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
        if decision.outcome != Outcome::Allow {
            return Ruling::Refused(decision);
        }
        Ruling::Allowed(Permit {
            gate: self.clone(),
            decision,
            run_id: req.agent.run_id.clone(),
            authenticated_as: req.agent.authenticated_as.clone(),
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

    /// Record a dispatch that got no answer (unreachable upstream, timeout, no tunnel).
    pub async fn fail(self, error: String) {
        let done = Dispatched {
            error: Some(error),
            ..Dispatched::default()
        };
        self.finish(done).await;
    }
}
