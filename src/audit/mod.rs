//! Audit evidence: every decision, approval, result and policy load is one entry in a
//! SHA-256 hash chain stored in redb, whose hashes are also the leaves of an RFC 6962 Merkle
//! tree committed to by signed checkpoints. The byte format is in `docs/audit-format.md`.
//!
//! Audit knows nothing of policy: it records events and proves they were not changed.

mod apply;
pub(crate) mod chain;
pub mod checkpoint;
pub(crate) mod events;
pub mod export;
pub(crate) mod jcs;
pub mod journal;
pub mod merkle;
pub mod redact;
mod settings;
pub mod store;
pub mod verify;

pub use chain::{AuditEvent, AuditHealth, AuditLog, AuditOptions, Receipt};
pub use settings::{AuditConfig, RedactConfig};
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
    /// The file is held by another process: the running sidecar owns its log exclusively.
    #[error(
        "{0} is open in another process (a running sidecar holds its audit log exclusively); read it through the sidecar's admin listener with --url http://ADMIN_ADDR and the admin token, or stop the sidecar first"
    )]
    InUse(String),
}
