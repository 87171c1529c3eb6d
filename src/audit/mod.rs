//! Audit evidence: every decision, approval, result and policy load is one entry in a
//! SHA-256 hash chain stored in redb, whose hashes are also the leaves of an RFC 6962 Merkle
//! tree committed to by signed checkpoints. The byte format is in `docs/audit-format.md`.
//!
//! Audit knows nothing of policy: it records events and proves they were not changed.

pub mod chain;
pub mod checkpoint;
pub mod events;
pub mod export;
pub mod jcs;
pub mod merkle;
pub mod redact;
pub mod store;
pub mod verify;

pub use chain::{AuditEvent, AuditHealth, AuditLog, AuditOptions, Receipt};
pub use store::AuditReader;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit storage error: {0}")]
    Storage(String),
    #[error("audit log is inconsistent: {0}")]
    Corrupt(String),
    #[error("audit signing key: {0}")]
    Key(String),
    #[error("audit field name {0:?} is reserved or not snake_case ASCII")]
    Field(String),
    #[error("the audit log is closed")]
    Closed,
}
