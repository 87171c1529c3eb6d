//! What the front doors and the admin listener ask of the gate besides decisions: the
//! approvals to list, show and answer, callback replay keys to claim, refused callbacks to
//! record, and the audit log to read. Each says what the caller needs, so nothing outside the
//! gate holds the approvals store, the policy engine or the audit writer.

use std::sync::Arc;
use std::time::Duration;

use super::Gate;
use super::approval::{
    AnswerInput, AnswerRejected, ApprovalError, ApprovalStatus, ApprovalView, CallbackRecord,
    Channel,
};
use super::policy::Bundle;
use crate::audit::{AuditError, AuditHealth, AuditReader};

impl Gate {
    /// Approvals, optionally only those in `status` (`GET /v1/approvals`).
    pub async fn list_approvals(&self, status: Option<ApprovalStatus>) -> Vec<ApprovalView> {
        self.approvals.list(status).await
    }

    /// One approval; `None` when there is no such approval.
    pub async fn approval(&self, id: &str) -> Result<Option<ApprovalView>, ApprovalError> {
        self.approvals.get(id).await
    }

    /// How many approvals wait for an answer (the metrics gauge).
    pub async fn pending_approvals(&self) -> usize {
        self.approvals.pending_count().await
    }

    /// One person's answer to approval `id`, from any channel; the approval rules decide
    /// whether it counts.
    pub async fn answer_approval(
        &self,
        id: &str,
        input: AnswerInput,
    ) -> Result<ApprovalView, AnswerRejected> {
        self.approvals.answer(id, input, None).await
    }

    /// [`Gate::answer_approval`] for a callback whose replay key was claimed: an answer that
    /// counts stores what the callback answered under that key in the same durable write.
    pub async fn answer_approval_callback(
        &self,
        id: &str,
        input: AnswerInput,
        callback: CallbackRecord,
    ) -> Result<ApprovalView, AnswerRejected> {
        self.approvals.answer(id, input, Some(callback)).await
    }

    /// Who answers with the admin token (`approval.local_operator`).
    pub fn local_operator(&self) -> &str {
        &self.approvals.settings().local_operator
    }

    /// The longest a caller is held waiting on an approval (`approval.max_wait_s`).
    pub fn approval_max_wait(&self) -> Duration {
        self.approvals.settings().max_wait
    }

    /// Record a callback refused before it could name a trustworthy answer.
    pub async fn record_refused_callback(
        &self,
        channel: Channel,
        approval_id: Option<&str>,
        why: &str,
    ) {
        self.approvals
            .record_refused_callback(channel, approval_id, why)
            .await
    }

    /// Claim a callback's replay key before applying it: `None` when this call claimed it,
    /// else what was stored for it. The receiving side decides how long keys are kept.
    pub async fn claim_callback(
        &self,
        key: &str,
        stored: Vec<u8>,
        keep: Duration,
    ) -> Result<Option<Vec<u8>>, ApprovalError> {
        self.approvals.claim_callback(key, stored, keep).await
    }

    /// Store what was answered for a claimed callback key.
    pub async fn remember_callback(
        &self,
        key: &str,
        stored: Vec<u8>,
        keep: Duration,
    ) -> Result<(), ApprovalError> {
        self.approvals.remember_callback(key, stored, keep).await
    }

    /// How many actions of `agent` hold a concurrency slot now.
    pub fn actions_running(&self, agent: &str) -> u32 {
        self.constraints.running(agent)
    }

    /// The serving policy bundle (revision, source, file count).
    pub fn policy_bundle(&self) -> Arc<Bundle> {
        self.policy.bundle()
    }

    /// Whether the audit log takes writes, its last error and its size.
    pub fn audit_health(&self) -> &Arc<AuditHealth> {
        self.audit.health()
    }

    /// The key that verifies the log's checkpoints, and the log's origin line.
    pub fn audit_identity(&self) -> (&str, &str) {
        (self.audit.verifier_key(), self.audit.origin())
    }

    /// A reader of the log as it is now (for entries, timelines and kept bodies).
    pub fn audit_reader(&self) -> Result<AuditReader, AuditError> {
        self.audit.reader()
    }

    /// A reader after a checkpoint was signed, so that an export is covered by a signature up
    /// to its last entry.
    pub async fn signed_audit_reader(&self) -> Result<AuditReader, AuditError> {
        self.audit.checkpoint_now().await?;
        self.audit.reader()
    }
}
