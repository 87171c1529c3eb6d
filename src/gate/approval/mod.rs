//! Human approval: `require_approval` verdicts become approval requests bound to the exact
//! action, held until enough allowed people answer, and released exactly to that action.
//!
//! The rules live here and nowhere else: only allowed approvers count, the requester never
//! approves their own action, a quorum needs that many distinct approvers, one deny denies,
//! expiry denies, and an approval applies only to a check with an identical binding
//! (canonical action hash, policy revision, agent). Every step is persisted in
//! `approvals.redb` and recorded in the audit log before it takes effect.

pub mod model;
mod settings;
pub(crate) mod store;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::audit::{AuditEvent, AuditLog, events};
use crate::gate::policy::{ApprovalSpec, Constraints, Risk};
use crate::metrics::Metrics;
pub use model::{
    Answer, ApprovalBinding, ApprovalRequest, ApprovalStatus, ApprovalView, Channel, Shown, Vote,
    now_ms, rfc3339,
};
pub use settings::{ApprovalConfig, Person, people_problems};
use store::ApprovalStore;

/// What approver channels hear from the approval rules (`src/approvers/` subscribes). Both
/// calls must return at once: they run while an answer or a check is being handled.
pub trait ApprovalListener: Send + Sync {
    /// A new approval waits for people.
    fn requested(&self, view: &ApprovalView);
    /// An approval was decided or expired; `reply_handles` are what channels left on it when
    /// people answered (opaque here).
    fn resolved(&self, view: &ApprovalView, reply_handles: &[String]);
}

/// Approvers used when a verdict names none: approval must never be open to anyone.
pub const FALLBACK_APPROVERS: &str = "group:clawgate-admins";

/// Resolved approvals stay in memory this long (for reuse windows and quick lookups);
/// older ones are read from the store on demand.
const KEEP_RESOLVED_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval storage error: {0}")]
    Storage(String),
    #[error("the audit log could not record the approval step: {0}")]
    Audit(String),
}

/// Why an answer was not counted. Each one is audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerRejected {
    #[error("no approval with id {0}")]
    NotFound(String),
    #[error("the approval is already {0}")]
    NotPending(&'static str),
    #[error("the approval expired before this answer")]
    Expired,
    #[error("{0} is not an allowed approver for this action")]
    NotAllowed(String),
    #[error(
        "{0} is not an allowed approver for this action, and no [approval.groups] are configured: answer as the local operator (`clawgate approvals approve ID`, without --as) or name real approvers in [approval.groups]"
    )]
    NotAllowedOnDefaults(String),
    #[error("{0} asked for this action and cannot approve it")]
    SelfApproval(String),
    #[error("{0} already answered this approval")]
    AlreadyAnswered(String),
    #[error(
        "an approval proved by the same credential ({0}) already counts toward this approval; a quorum needs approvers who each prove who they are (their own token, or a Slack click)"
    )]
    CredentialCounted(String),
    #[error("the answer names action {given}, but this approval is bound to {bound}")]
    BindingMismatch { given: String, bound: String },
    #[error("the approver id is empty")]
    NoApprover,
    #[error(transparent)]
    Failed(#[from] ApprovalError),
}

impl AnswerRejected {
    /// A stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            AnswerRejected::NotFound(_) => "approval_not_found",
            AnswerRejected::NotPending(_) => "approval_resolved",
            AnswerRejected::Expired => "approval_expired",
            AnswerRejected::NotAllowed(_) | AnswerRejected::NotAllowedOnDefaults(_) => {
                "approver_not_allowed"
            }
            AnswerRejected::SelfApproval(_) => "self_approval",
            AnswerRejected::AlreadyAnswered(_) => "already_answered",
            AnswerRejected::CredentialCounted(_) => "credential_already_counted",
            AnswerRejected::BindingMismatch { .. } => "binding_mismatch",
            AnswerRejected::NoApprover => "invalid_request",
            AnswerRejected::Failed(_) => "approval_unavailable",
        }
    }
}

/// One answer as it arrives from a channel.
#[derive(Debug, Clone)]
pub struct AnswerInput {
    pub approver: String,
    pub vote: Vote,
    pub channel: Channel,
    pub reason: Option<String>,
    /// If the caller names the action it approves, it must be the bound one.
    pub action_hash: Option<String>,
    /// What the channel the answer came from needs to reply to it later (Slack's
    /// `response_url`); kept on the approval, opaque here.
    pub reply_handle: Option<String>,
    /// What proved the answer (see [`Answer::credential`]). Approvals proved by one
    /// credential count once toward a quorum, whoever they name.
    pub credential: String,
}

/// A claimed callback key (see [`Approvals::claim_callback`]) to remember in the same commit
/// as the answer the callback brought, with what the callback answered: one durable write
/// fewer per callback. Only an answer that counts stores it; the caller remembers the others.
pub struct CallbackRecord {
    pub key: String,
    /// What to store for the key, from the approval as the answer left it.
    pub stored: StoredAnswer,
}

/// Builds what a callback key stores from the approval its answer left.
pub type StoredAnswer = Box<dyn FnOnce(&ApprovalView) -> Vec<u8> + Send>;

/// What a new approval request carries besides its binding.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub decision_id: String,
    pub run_id: Option<String>,
    /// The redacted action, for people to read.
    pub action: Value,
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub spec: Option<ApprovalSpec>,
    /// The verdict's constraints, applied again when the approved action is released
    /// through `GET /v1/approvals/{id}/wait`.
    pub constraints: Option<Constraints>,
    /// What was redacted from `action`, and the programs it runs.
    pub shown: Shown,
}

/// What the gate should do with a `require_approval` verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Clearance {
    /// An approval for exactly this action is granted: let it through. `consumed` is the
    /// audit entry of its first use, for the caller to record with its decision.
    Approved {
        view: ApprovalView,
        consumed: Option<AuditEvent>,
    },
    /// A recent approval for exactly this action was denied or expired.
    Refused(ApprovalView),
    /// Waiting for people. `created` is false when an existing request was reused.
    Pending { view: ApprovalView, created: bool },
    /// A new approval would pass a bound: the action is denied, saying which.
    Limited(ApprovalLimit),
}

/// The bound a new approval would pass (issue 15, finding 6). Its text names the bound, its
/// config key and what to do; it starts with `approval_limit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalLimit {
    #[error(
        "approval_limit: agent {agent} already has {limit} approvals pending (approval.max_pending_per_agent); denied until some are answered or expire"
    )]
    PendingPerAgent { agent: String, limit: u64 },
    #[error(
        "approval_limit: {limit} approvals are pending in total (approval.max_pending); denied until some are answered or expire"
    )]
    PendingTotal { limit: u64 },
    #[error(
        "approval_limit: agent {agent} asked for {limit} new approvals in the last minute (approval.new_per_agent_per_minute); denied, retry later"
    )]
    RatePerAgent { agent: String, limit: u64 },
}

impl ApprovalLimit {
    /// The bound's name, for metrics.
    pub fn bound(&self) -> &'static str {
        match self {
            ApprovalLimit::PendingPerAgent { .. } => "max_pending_per_agent",
            ApprovalLimit::PendingTotal { .. } => "max_pending",
            ApprovalLimit::RatePerAgent { .. } => "new_per_agent_per_minute",
        }
    }
}

/// The outcome of waiting on an approval from the agent side.
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    /// Approved, and its use marked; the gate records the use with its decision and admits
    /// the call with the verdict's constraints before it may run.
    Allowed {
        view: ApprovalView,
        constraints: Option<Constraints>,
        /// The audit entry of the approval's first use, recorded with the release's decision.
        consumed: Option<Box<AuditEvent>>,
    },
    /// Denied, expired, or already used outside the reuse window.
    Refused {
        view: ApprovalView,
        reason: String,
    },
    Pending(ApprovalView),
}

/// Timing settings from `[approval]`.
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    pub default_timeout: Duration,
    pub max_wait: Duration,
    pub hold: Duration,
    pub reuse_window: Duration,
    pub groups: BTreeMap<String, Vec<String>>,
    /// Who the admin token answers as (`approval.local_operator`).
    pub local_operator: String,
    /// `approval.max_pending_per_agent`, `approval.max_pending`,
    /// `approval.new_per_agent_per_minute`.
    pub max_pending_per_agent: u64,
    pub max_pending: u64,
    pub new_per_agent_per_minute: u64,
    /// `[people.NAME]`: each listed id → the person's name.
    pub people: HashMap<String, String>,
}

impl ApprovalSettings {
    /// With `[people]`: ids that belong to one person.
    pub fn with_people(mut self, people: &BTreeMap<String, Person>) -> ApprovalSettings {
        for (name, person) in people {
            for id in &person.ids {
                self.people.insert(id.clone(), name.clone());
            }
        }
        self
    }

    /// Whether two ids are the same person: equal, or listed under one `[people.NAME]`.
    pub fn same_person(&self, a: &str, b: &str) -> bool {
        a == b
            || self
                .people
                .get(a)
                .is_some_and(|p| self.people.get(b) == Some(p))
    }
}

impl From<&ApprovalConfig> for ApprovalSettings {
    fn from(c: &ApprovalConfig) -> Self {
        ApprovalSettings {
            default_timeout: Duration::from_secs(c.timeout_s),
            max_wait: Duration::from_secs(c.max_wait_s),
            hold: Duration::from_secs(c.hold_s),
            reuse_window: Duration::from_secs(c.reuse_window_s),
            groups: c.groups.clone(),
            local_operator: c.local_operator.clone(),
            max_pending_per_agent: c.max_pending_per_agent,
            max_pending: c.max_pending,
            new_per_agent_per_minute: c.new_per_agent_per_minute,
            people: HashMap::new(),
        }
    }
}

struct Slot {
    req: ApprovalRequest,
    status: watch::Sender<ApprovalStatus>,
    /// Held across one step on this approval (its durable writes included): steps on one
    /// approval happen one at a time, steps on different approvals side by side.
    step: Arc<Mutex<()>>,
}

#[derive(Default)]
struct Book {
    by_id: HashMap<String, Slot>,
    /// Binding key → the latest approval for that binding.
    by_binding: HashMap<String, String>,
    /// Per agent: when it asked for each new approval in the last minute (oldest first).
    asked: HashMap<String, VecDeque<i64>>,
}

/// Approvals are bounded per agent: its authenticated identity, else the agent id it states.
fn agent_key(binding: &ApprovalBinding) -> &str {
    binding
        .authenticated_as
        .as_deref()
        .unwrap_or(&binding.agent_id)
}

const MINUTE_MS: i64 = 60_000;

impl Book {
    fn insert(&mut self, req: ApprovalRequest) {
        self.by_binding.insert(req.binding.key(), req.id.clone());
        let (status, _) = watch::channel(req.status);
        let step = Arc::new(Mutex::new(()));
        self.by_id
            .insert(req.id.clone(), Slot { req, status, step });
    }
}

pub struct Approvals {
    store: Arc<ApprovalStore>,
    audit: Arc<AuditLog>,
    listener: Arc<dyn ApprovalListener>,
    metrics: Arc<Metrics>,
    settings: ApprovalSettings,
    /// Set on shutdown: held requests answer with the current state instead of waiting.
    closing: watch::Sender<bool>,
    /// What is in memory. Held only to read or swap entries, never across a durable write.
    book: std::sync::Mutex<Book>,
    /// Creating approvals is one step at a time: the bounds and the binding index are checked
    /// and updated together. Answers do not take it.
    admitting: Mutex<()>,
}

/// One approval locked for a step (see [`Approvals::step`]), with its state as of the lock.
struct Step {
    _guard: OwnedMutexGuard<()>,
    req: ApprovalRequest,
}

impl Approvals {
    /// Open the store, load every approval, and expire those whose time ran out while the
    /// sidecar was down.
    pub async fn open(
        path: &std::path::Path,
        settings: ApprovalSettings,
        audit: Arc<AuditLog>,
        listener: Arc<dyn ApprovalListener>,
        metrics: Arc<Metrics>,
    ) -> Result<Approvals, ApprovalError> {
        let path = path.to_path_buf();
        let (store, all) = tokio::task::spawn_blocking(move || {
            let store = ApprovalStore::open(&path)?;
            let all = store.load_all()?;
            Ok::<_, ApprovalError>((Arc::new(store), all))
        })
        .await
        .map_err(|e| ApprovalError::Storage(e.to_string()))??;
        let now = now_ms();
        let mut book = Book::default();
        for req in all {
            if req.status == ApprovalStatus::Pending
                || req.resolved_ms.unwrap_or(0) + KEEP_RESOLVED_MS > now
            {
                book.insert(req);
            }
        }
        let approvals = Approvals {
            store,
            audit,
            listener,
            metrics,
            settings,
            closing: watch::channel(false).0,
            book: std::sync::Mutex::new(book),
            admitting: Mutex::new(()),
        };
        approvals.expire_due().await;
        Ok(approvals)
    }

    /// Release every held request with its current state (on shutdown).
    pub fn stop_holding(&self) {
        self.closing.send_replace(true);
    }

    pub fn settings(&self) -> &ApprovalSettings {
        &self.settings
    }

    /// Called by the gate for an enforced `require_approval` verdict, before [`Approvals::admit`]:
    /// what the approval bound to exactly this action says, if one does (pending, approved and
    /// usable: marked used, or recently refused). `None` when a new approval is needed.
    ///
    /// Takes only that approval's step lock, not the lock that creating approvals takes: the
    /// checks held on many approvals, released at once, go on side by side.
    pub async fn reuse(
        &self,
        binding: &ApprovalBinding,
    ) -> Result<Option<Clearance>, ApprovalError> {
        self.existing(&binding.key(), now_ms()).await
    }

    /// Create (and announce) a new approval for `binding`, unless one bound to exactly this
    /// action now says otherwise (see [`Approvals::reuse`]; looked at again here, since another
    /// check may have created it meanwhile).
    pub async fn admit(
        &self,
        binding: ApprovalBinding,
        new: NewApproval,
    ) -> Result<Clearance, ApprovalError> {
        let key = binding.key();
        let now = now_ms();
        let _admitting = self.admitting.lock().await;
        if let Some(clearance) = self.existing(&key, now).await? {
            return Ok(clearance);
        }
        if let Some(limit) = self.limit(&mut self.book(), &binding, now) {
            return Ok(Clearance::Limited(limit));
        }
        let agent = agent_key(&binding).to_string();
        let req = self.new_request(binding, new, now);
        let view = req.view();
        let requested = json!({"event": "requested", "approval_id": req.id,
            "decision_id": req.decision_id, "action_hash": req.binding.action_hash,
            "policy_revision": req.binding.policy_revision, "agent_id": req.binding.agent_id,
            "approvers": req.approvers, "quorum": req.quorum, "expires_at": view.expires_at});
        self.write(&req, vec![requested]).await?;
        {
            let mut book = self.book();
            book.insert(req);
            book.asked.entry(agent).or_default().push_back(now);
        }
        self.listener.requested(&view);
        Ok(Clearance::Pending {
            view,
            created: true,
        })
    }

    /// What the latest approval for binding `key` says about a new check of its action;
    /// `None` when it says nothing (there is none, or it is no longer usable).
    async fn existing(&self, key: &str, now: i64) -> Result<Option<Clearance>, ApprovalError> {
        let reuse = self.settings.reuse_window.as_millis() as i64;
        let Some(id) = self.book().by_binding.get(key).cloned() else {
            return Ok(None);
        };
        let Some(step) = self.step(&id).await else {
            return Ok(None);
        };
        let req = self.expire_if_due(step.req.clone(), now).await?;
        Ok(match req.status {
            ApprovalStatus::Pending => Some(Clearance::Pending {
                view: req.view(),
                created: false,
            }),
            ApprovalStatus::Approved if usable(&req, now, reuse) => {
                let (view, consumed) = self.use_approval(req, now).await?;
                Some(Clearance::Approved { view, consumed })
            }
            ApprovalStatus::Denied | ApprovalStatus::Expired
                if req.resolved_ms.unwrap_or(0) + reuse >= now =>
            {
                Some(Clearance::Refused(req.view()))
            }
            _ => None,
        })
    }

    /// The bound a new approval for `binding` would pass, if any: the agent's pending
    /// approvals, all pending approvals, the agent's new approvals in the last minute.
    fn limit(&self, book: &mut Book, binding: &ApprovalBinding, now: i64) -> Option<ApprovalLimit> {
        let s = &self.settings;
        let agent = agent_key(binding);
        let (mut mine, mut all) = (0u64, 0u64);
        for slot in book.by_id.values() {
            if slot.req.status == ApprovalStatus::Pending {
                all += 1;
                if agent_key(&slot.req.binding) == agent {
                    mine += 1;
                }
            }
        }
        if mine >= s.max_pending_per_agent {
            return Some(ApprovalLimit::PendingPerAgent {
                agent: agent.to_string(),
                limit: s.max_pending_per_agent,
            });
        }
        if all >= s.max_pending {
            return Some(ApprovalLimit::PendingTotal {
                limit: s.max_pending,
            });
        }
        // Forget what is older than a minute, for every agent, so the map stays small.
        book.asked.retain(|_, times| {
            while times.front().is_some_and(|t| *t + MINUTE_MS <= now) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let recent = book.asked.get(agent).map_or(0, VecDeque::len) as u64;
        if recent >= s.new_per_agent_per_minute {
            return Some(ApprovalLimit::RatePerAgent {
                agent: agent.to_string(),
                limit: s.new_per_agent_per_minute,
            });
        }
        None
    }

    fn new_request(&self, binding: ApprovalBinding, new: NewApproval, now: i64) -> ApprovalRequest {
        let spec = new.spec.unwrap_or(ApprovalSpec {
            approvers: Vec::new(),
            quorum: 1,
            timeout_s: None,
        });
        let approvers = if spec.approvers.is_empty() {
            vec![FALLBACK_APPROVERS.to_string()]
        } else {
            spec.approvers
        };
        let timeout_ms = spec
            .timeout_s
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(self.settings.default_timeout.as_millis() as u64)
            .min(i64::MAX as u64 / 2) as i64;
        ApprovalRequest {
            id: uuid::Uuid::now_v7().to_string(),
            decision_id: new.decision_id,
            binding,
            run_id: new.run_id,
            action: new.action,
            risk: new.risk,
            reasons: new.reasons,
            approvers,
            quorum: spec.quorum.max(1),
            created_ms: now,
            expires_ms: now.saturating_add(timeout_ms),
            status: ApprovalStatus::Pending,
            answers: Vec::new(),
            resolved_ms: None,
            first_used_ms: None,
            reply_handles: Vec::new(),
            constraints: new.constraints,
            shown: new.shown,
        }
    }

    /// Mark the first use of an approved approval (persisted), and hand back its `consumed`
    /// audit entry: the caller records it in one commit with the decision the use leads to,
    /// and denies if that commit fails (the use then lets nothing run). The caller holds the
    /// approval's step lock.
    async fn use_approval(
        &self,
        req: ApprovalRequest,
        now: i64,
    ) -> Result<(ApprovalView, Option<AuditEvent>), ApprovalError> {
        if req.first_used_ms.is_some() {
            return Ok((req.view(), None));
        }
        let mut next = req;
        next.first_used_ms = Some(now);
        let consumed = events::approval(
            json!({"event": "consumed", "approval_id": next.id,
                "action_hash": next.binding.action_hash}),
            next.run_id.as_deref(),
        );
        self.persist(&next).await?;
        let view = next.view();
        self.settle(next, None);
        Ok((view, Some(consumed)))
    }

    /// Wait until the approval is no longer pending or `timeout` passes; `None` for an
    /// unknown id.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Option<ApprovalStatus> {
        let mut rx = self.book().by_id.get(id)?.status.subscribe();
        let mut closing = self.closing.subscribe();
        let settled = async {
            loop {
                let status = *rx.borrow_and_update();
                if status.is_final() {
                    return status;
                }
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() {
                        return ApprovalStatus::Pending;
                    },
                    // Shutting down: answer now (pending) rather than hold the drain; the
                    // approval itself is kept and can be waited for after the restart.
                    _ = closing.wait_for(|c| *c) => return *rx.borrow(),
                }
            }
        };
        match tokio::time::timeout(timeout, settled).await {
            Ok(status) => Some(status),
            Err(_) => Some(*rx.borrow()),
        }
    }

    /// The agent side of `GET /v1/approvals/{id}/wait`: wait, then release an approved
    /// action once (or again within the reuse window).
    pub async fn wait_and_release(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<Release>, ApprovalError> {
        if self.wait(id, timeout).await.is_none() {
            return Ok(None);
        }
        // Released in its own allocation: the waiting future stays small.
        Box::pin(self.release(id)).await
    }

    /// An approval no longer waited for, released once if approved and still usable.
    async fn release(&self, id: &str) -> Result<Option<Release>, ApprovalError> {
        let now = now_ms();
        let reuse = self.settings.reuse_window.as_millis() as i64;
        let Some(step) = self.step(id).await else {
            return Ok(None);
        };
        let req = self.expire_if_due(step.req.clone(), now).await?;
        let view = req.view();
        Ok(Some(match req.status {
            ApprovalStatus::Pending => Release::Pending(view),
            ApprovalStatus::Approved if usable(&req, now, reuse) => {
                let constraints = req.constraints.clone();
                let (view, consumed) = self.use_approval(req, now).await?;
                Release::Allowed {
                    view,
                    constraints,
                    consumed: consumed.map(Box::new),
                }
            }
            _ => Release::Refused {
                reason: refusal_reason(&view),
                view,
            },
        }))
    }

    /// One person's answer, from any channel. Rejections are audited and change nothing.
    /// Answers to one approval are taken one at a time; answers to different approvals go on
    /// side by side (their audit entries share group commits).
    pub async fn answer(
        &self,
        id: &str,
        input: AnswerInput,
        callback: Option<CallbackRecord>,
    ) -> Result<ApprovalView, AnswerRejected> {
        let now = now_ms();
        let in_memory = self.book().by_id.contains_key(id);
        if !in_memory {
            // Possibly an old, resolved approval no longer kept in memory.
            match self.load(id).await? {
                Some(req) => {
                    let mut book = self.book();
                    if !book.by_id.contains_key(id) {
                        book.insert(req);
                    }
                }
                None => {
                    return Err(self
                        .reject(id, &input, AnswerRejected::NotFound(id.into()))
                        .await);
                }
            }
        }
        let step = self
            .step(id)
            .await
            .ok_or(ApprovalError::Storage(format!("approval {id} vanished")))?;
        let req = self.expire_if_due(step.req.clone(), now).await?;
        let mut next = req.clone();
        if let Some(url) = &input.reply_handle
            && !next.reply_handles.contains(url)
            && next.reply_handles.len() < 16
        {
            next.reply_handles.push(url.clone());
        }
        if let Err(rejected) = self.check_answer(&next, &input) {
            // Keep the reply handle even from a rejected click, to update the message later.
            if next.reply_handles != req.reply_handles && self.persist(&next).await.is_ok() {
                self.settle(next, None);
            }
            drop(step);
            return Err(self.reject(id, &input, rejected).await);
        }
        next.answers.push(Answer {
            approver: input.approver.clone(),
            vote: input.vote,
            channel: input.channel,
            at: rfc3339(now),
            reason: input.reason.clone(),
            credential: Some(input.credential.clone()),
        });
        let resolved = match input.vote {
            Vote::Deny => Some(ApprovalStatus::Denied),
            Vote::Approve if next.approved_by().len() as u32 >= next.quorum => {
                Some(ApprovalStatus::Approved)
            }
            Vote::Approve => None,
        };
        let mut steps = vec![json!({"event": "answer", "approval_id": id,
            "approver": input.approver, "vote": input.vote, "channel": input.channel,
            "credential": input.credential, "reason": input.reason,
            "approvals": next.approved_by().len(), "quorum": next.quorum})];
        if let Some(status) = resolved {
            next.status = status;
            next.resolved_ms = Some(now);
            steps.push(
                json!({"event": "resolved", "approval_id": id, "status": status,
                "decided_by": next.decided_by(), "action_hash": next.binding.action_hash}),
            );
        }
        let view = next.view();
        let seen = callback.map(|c| (c.key, now_ms(), (c.stored)(&view)));
        self.write_with(&next, steps, seen).await?;
        let urls = next.reply_handles.clone();
        if resolved.is_some() {
            self.observe_resolution(&next);
        }
        self.settle(next, resolved);
        drop(step);
        if resolved.is_some() {
            self.listener.resolved(&view, &urls);
        }
        Ok(view)
    }

    fn check_answer(
        &self,
        req: &ApprovalRequest,
        input: &AnswerInput,
    ) -> Result<(), AnswerRejected> {
        let who = input.approver.trim();
        if who.is_empty() {
            return Err(AnswerRejected::NoApprover);
        }
        match req.status {
            ApprovalStatus::Pending => {}
            ApprovalStatus::Expired => return Err(AnswerRejected::Expired),
            s => return Err(AnswerRejected::NotPending(s.as_str())),
        }
        if let Some(given) = &input.action_hash
            && !given.eq_ignore_ascii_case(&req.binding.action_hash)
        {
            return Err(AnswerRejected::BindingMismatch {
                given: given.clone(),
                bound: req.binding.action_hash.clone(),
            });
        }
        let s = &self.settings;
        let is_requester = req
            .binding
            .requester
            .as_ref()
            .and_then(|r| r.sender_id.as_deref())
            .is_some_and(|r| s.same_person(r, who));
        if is_requester || s.same_person(&req.binding.agent_id, who) {
            return Err(AnswerRejected::SelfApproval(who.to_string()));
        }
        if !self.is_allowed(who, &req.approvers) && !self.local_operator_answers(who, input.channel)
        {
            return Err(
                if self.settings.groups.is_empty() && input.channel == Channel::Cli {
                    AnswerRejected::NotAllowedOnDefaults(who.to_string())
                } else {
                    AnswerRejected::NotAllowed(who.to_string())
                },
            );
        }
        if let Some(earlier) = req.answers.iter().find(|a| s.same_person(&a.approver, who)) {
            return Err(AnswerRejected::AlreadyAnswered(match s.people.get(who) {
                Some(person) if earlier.approver != who => {
                    format!("{who} ({person}, who answered as {})", earlier.approver)
                }
                _ => who.to_string(),
            }));
        }
        // One credential (a webhook receiver's shared secret, say) cannot fill a quorum by
        // naming several approvers. A deny is always heard: one deny denies.
        if input.vote == Vote::Approve
            && req.answers.iter().any(|a| {
                a.vote == Vote::Approve && a.credential.as_deref() == Some(&input.credential)
            })
        {
            return Err(AnswerRejected::CredentialCounted(input.credential.clone()));
        }
        Ok(())
    }

    /// Whether `who` is one of `approvers`, directly or through a configured group.
    pub fn is_allowed(&self, who: &str, approvers: &[String]) -> bool {
        approvers.iter().any(|a| match a.strip_prefix("group:") {
            Some(group) => self
                .settings
                .groups
                .get(group)
                .is_some_and(|members| members.iter().any(|m| m == who)),
            None => a == who,
        })
    }

    /// Whether `who` is the local operator answering with the admin token while no
    /// `[approval.groups]` are configured: then it stands in for every approver.
    fn local_operator_answers(&self, who: &str, channel: Channel) -> bool {
        channel == Channel::Cli
            && self.settings.groups.is_empty()
            && who == self.settings.local_operator
    }

    /// Audit a rejected answer and hand the rejection back.
    async fn reject(&self, id: &str, input: &AnswerInput, why: AnswerRejected) -> AnswerRejected {
        tracing::warn!(approval_id = id, approver = %input.approver, channel = input.channel.as_str(),
            reason = %why, "approval answer rejected");
        let event = events::approval(
            json!({"event": "answer_rejected", "approval_id": id, "approver": input.approver,
                "vote": input.vote, "channel": input.channel, "credential": input.credential,
                "why": why.to_string(), "code": why.code()}),
            None,
        );
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(approval_id = id, error = %e, "could not record a rejected answer");
        }
        why
    }

    /// Audit a callback refused before it could name a trustworthy answer (bad signature,
    /// stale timestamp, replay).
    pub async fn record_refused_callback(
        &self,
        channel: Channel,
        approval_id: Option<&str>,
        why: &str,
    ) {
        let event = events::approval(
            json!({"event": "callback_rejected", "channel": channel, "approval_id": approval_id, "why": why}),
            None,
        );
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "could not record a refused callback");
        }
    }

    /// Expire every pending approval whose time is up. Returns how many expired.
    pub async fn expire_due(&self) -> usize {
        let now = now_ms();
        let due: Vec<String> = self
            .book()
            .by_id
            .values()
            .filter(|s| s.req.status == ApprovalStatus::Pending && s.req.expires_ms <= now)
            .map(|s| s.req.id.clone())
            .collect();
        let mut n = 0;
        for id in due {
            let Some(step) = self.step(&id).await else {
                continue;
            };
            let was_pending = step.req.status == ApprovalStatus::Pending;
            match self.expire_if_due(step.req.clone(), now).await {
                Ok(req) if was_pending && req.status == ApprovalStatus::Expired => n += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(approval_id = %id, error = %e, "could not expire approval")
                }
            }
        }
        // Forget old resolved approvals (they stay in the store for `show`).
        let before = now - KEEP_RESOLVED_MS;
        let mut book = self.book();
        let old: Vec<String> = book
            .by_id
            .values()
            .filter(|s| s.req.resolved_ms.is_some_and(|r| r < before))
            .map(|s| s.req.id.clone())
            .collect();
        for id in old {
            if let Some(slot) = book.by_id.remove(&id) {
                let key = slot.req.binding.key();
                if book.by_binding.get(&key) == Some(&id) {
                    book.by_binding.remove(&key);
                }
            }
        }
        n
    }

    /// Expire the approval if it is pending and its time is up (recorded, persisted and
    /// announced); the approval as it now stands. The caller holds its step lock.
    async fn expire_if_due(
        &self,
        req: ApprovalRequest,
        now: i64,
    ) -> Result<ApprovalRequest, ApprovalError> {
        if req.status != ApprovalStatus::Pending || req.expires_ms > now {
            return Ok(req);
        }
        let mut next = req;
        next.status = ApprovalStatus::Expired;
        next.resolved_ms = Some(now);
        let expired = json!({"event": "expired", "approval_id": next.id,
            "expires_at": rfc3339(next.expires_ms), "approvals": next.approved_by().len(),
            "quorum": next.quorum});
        self.write(&next, vec![expired]).await?;
        self.observe_resolution(&next);
        self.settle(next.clone(), Some(ApprovalStatus::Expired));
        self.listener.resolved(&next.view(), &next.reply_handles);
        Ok(next)
    }

    /// The in-memory book, for a read or a swap (never held across an await).
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lock one approval for a step and read it as it stands under the lock; `None` when it
    /// is not in memory.
    async fn step(&self, id: &str) -> Option<Step> {
        let lock = self.book().by_id.get(id)?.step.clone();
        let guard = lock.lock_owned().await;
        let req = self.book().by_id.get(id)?.req.clone();
        Some(Step { _guard: guard, req })
    }

    /// A step's outcome, once durable, becomes what memory holds (and wakes waiters when it
    /// resolved the approval).
    fn settle(&self, next: ApprovalRequest, resolved: Option<ApprovalStatus>) {
        let mut book = self.book();
        if let Some(slot) = book.by_id.get_mut(&next.id) {
            slot.req = next;
            if let Some(status) = resolved {
                slot.status.send_replace(status);
            }
        }
    }

    /// One step made durable: its audit entries in one commit, then the approval's new state.
    /// Audit first, so nothing takes effect that the log does not show.
    async fn write(&self, next: &ApprovalRequest, steps: Vec<Value>) -> Result<(), ApprovalError> {
        self.write_with(next, steps, None).await
    }

    /// [`Approvals::write`], remembering a callback key (key, unix ms, what is stored) with
    /// the approval's new state.
    async fn write_with(
        &self,
        next: &ApprovalRequest,
        steps: Vec<Value>,
        seen: Option<(String, i64, Vec<u8>)>,
    ) -> Result<(), ApprovalError> {
        let events: Vec<AuditEvent> = steps
            .into_iter()
            .map(|fields| events::approval(fields, next.run_id.as_deref()))
            .collect();
        self.audit
            .append_all(events)
            .await
            .map_err(|e| ApprovalError::Audit(e.to_string()))?;
        self.store.put(next, seen).await
    }

    fn observe_resolution(&self, req: &ApprovalRequest) {
        let took = req.resolved_ms.unwrap_or(req.created_ms) - req.created_ms;
        let took = Duration::from_millis(u64::try_from(took).unwrap_or(0));
        self.metrics.approval_resolved(req.status.as_str(), took);
    }

    /// Expire overdue approvals every `period` until `stop` fires.
    pub fn spawn_expiry(
        self: &Arc<Self>,
        period: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => { me.expire_due().await; }
                    _ = stop.changed() => break,
                }
            }
        })
    }

    pub async fn get(&self, id: &str) -> Result<Option<ApprovalView>, ApprovalError> {
        if let Some(slot) = self.book().by_id.get(id) {
            return Ok(Some(slot.req.view()));
        }
        Ok(self.load(id).await?.map(|r| r.view()))
    }

    /// Approvals in memory (pending ones and those resolved in the last day), newest first.
    pub async fn list(&self, status: Option<ApprovalStatus>) -> Vec<ApprovalView> {
        let mut out: Vec<ApprovalView> = self
            .book()
            .by_id
            .values()
            .filter(|s| status.is_none_or(|st| s.req.status == st))
            .map(|s| s.req.view())
            .collect();
        out.sort_by(|a, b| b.id.cmp(&a.id));
        out
    }

    pub async fn pending_count(&self) -> usize {
        self.book()
            .by_id
            .values()
            .filter(|s| s.req.status == ApprovalStatus::Pending)
            .count()
    }

    /// Callback replay protection, before the callback is applied: remember `key` durably
    /// with `stored` unless it is already known (insert-if-absent, applied one write at a time,
    /// so of concurrent copies of one delivery exactly one claims it). `None` when this call claimed
    /// it; else what was stored for it. Keys older than `keep` are forgotten.
    pub async fn claim_callback(
        &self,
        key: &str,
        stored: Vec<u8>,
        keep: Duration,
    ) -> Result<Option<Vec<u8>>, ApprovalError> {
        let now = now_ms();
        let forget = now - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX / 2);
        self.store.claim(key, now, stored, forget).await
    }

    /// Remember a callback key (durably) with what was answered for it; keys older than
    /// `keep` are forgotten (the receiving side knows how long a replay stays possible).
    pub async fn remember_callback(
        &self,
        key: &str,
        stored: Vec<u8>,
        keep: Duration,
    ) -> Result<(), ApprovalError> {
        let now = now_ms();
        let forget = now - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX / 2);
        self.store.remember(key, now, stored, forget).await
    }

    async fn persist(&self, req: &ApprovalRequest) -> Result<(), ApprovalError> {
        self.store.put(req, None).await
    }

    async fn load(&self, id: &str) -> Result<Option<ApprovalRequest>, ApprovalError> {
        let store = self.store.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || store.get(&id))
            .await
            .map_err(|e| ApprovalError::Storage(e.to_string()))?
    }
}

/// Whether an approved request may let its action through now: the first use until the
/// approval's expiry (or the reuse window after approval, if later), further uses within
/// the reuse window after the first.
fn usable(req: &ApprovalRequest, now: i64, reuse_ms: i64) -> bool {
    match req.first_used_ms {
        None => {
            let resolved = req.resolved_ms.unwrap_or(req.created_ms);
            now <= req.expires_ms.max(resolved.saturating_add(reuse_ms))
        }
        Some(first) => now <= first.saturating_add(reuse_ms),
    }
}

/// Why a resolved approval does not let its action through, in words for the agent.
pub fn refusal_reason(view: &ApprovalView) -> String {
    let id = &view.id;
    match view.status {
        ApprovalStatus::Denied => {
            let why = view
                .answers
                .iter()
                .rev()
                .find(|a| a.vote == Vote::Deny)
                .and_then(|a| a.reason.as_deref())
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            format!(
                "approval {id} was denied by {}{why}",
                view.decided_by.join(", ")
            )
        }
        ApprovalStatus::Expired => {
            format!(
                "approval {id} expired at {} before enough approvers answered",
                view.expires_at
            )
        }
        ApprovalStatus::Approved => {
            format!("approval {id} was already used; ask again to get a new approval")
        }
        ApprovalStatus::Pending => format!("approval {id} is still pending"),
    }
}
