//! Approvals persist in their own redb file (`<data_dir>/approvals.redb`), so pending
//! approvals and their answers survive a restart, and callback ids already seen stay seen.
//! Every write is a durable commit before the caller goes on.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::ApprovalError;
use super::model::ApprovalRequest;

/// approval id → the [`ApprovalRequest`] as JSON.
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
/// callback key (`webhook:<id>`, `slack:<signature>`) → unix ms seen, then the stored answer.
const SEEN: TableDefinition<&str, (i64, &[u8])> = TableDefinition::new("seen_callbacks");

fn storage(e: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Storage(e.to_string())
}

#[derive(Clone)]
pub struct ApprovalStore {
    db: Arc<Database>,
}

impl ApprovalStore {
    pub fn open(path: &Path) -> Result<ApprovalStore, ApprovalError> {
        let db = Database::create(path)
            .map_err(|e| storage(format!("cannot open {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(storage)?;
        tx.open_table(APPROVALS).map_err(storage)?;
        tx.open_table(SEEN).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(ApprovalStore { db: Arc::new(db) })
    }

    /// Every stored approval, oldest first (ids are UUIDv7, so key order is time order).
    pub fn load_all(&self) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(APPROVALS).map_err(storage)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(storage)? {
            let (id, json) = row.map_err(storage)?;
            let req: ApprovalRequest = serde_json::from_slice(json.value()).map_err(|e| {
                ApprovalError::Storage(format!("approval {} is unreadable: {e}", id.value()))
            })?;
            out.push(req);
        }
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, ApprovalError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(APPROVALS).map_err(storage)?;
        match table.get(id).map_err(storage)? {
            Some(json) => serde_json::from_slice(json.value())
                .map(Some)
                .map_err(|e| ApprovalError::Storage(format!("approval {id} is unreadable: {e}"))),
            None => Ok(None),
        }
    }

    /// Write one approval durably.
    pub fn put(&self, req: &ApprovalRequest) -> Result<(), ApprovalError> {
        let json = serde_json::to_vec(req).map_err(storage)?;
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut table = tx.open_table(APPROVALS).map_err(storage)?;
            table
                .insert(req.id.as_str(), json.as_slice())
                .map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    /// Claim a callback key: in one write transaction (redb has one writer at a time),
    /// remember it with `stored` unless it is already there. `None` when this call claimed it,
    /// else what was stored for it. Keys older than `forget_before_ms` are forgotten first
    /// (their timestamps are past the signature window, so they are refused as stale anyway).
    pub fn claim(
        &self,
        key: &str,
        at_ms: i64,
        stored: &[u8],
        forget_before_ms: i64,
    ) -> Result<Option<Vec<u8>>, ApprovalError> {
        let tx = self.db.begin_write().map_err(storage)?;
        let existing = {
            let mut table = tx.open_table(SEEN).map_err(storage)?;
            table
                .retain(|_, (at, _)| at >= forget_before_ms)
                .map_err(storage)?;
            let existing = table
                .get(key)
                .map_err(storage)?
                .map(|v| v.value().1.to_vec());
            if existing.is_none() {
                table.insert(key, (at_ms, stored)).map_err(storage)?;
            }
            existing
        };
        tx.commit().map_err(storage)?;
        Ok(existing)
    }

    /// Remember a callback key durably (replacing what was stored for it), and forget keys
    /// older than `forget_before_ms`.
    pub fn remember(
        &self,
        key: &str,
        at_ms: i64,
        stored: &[u8],
        forget_before_ms: i64,
    ) -> Result<(), ApprovalError> {
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut table = tx.open_table(SEEN).map_err(storage)?;
            table
                .retain(|_, (at, _)| at >= forget_before_ms)
                .map_err(storage)?;
            table.insert(key, (at_ms, stored)).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }
}
