//! The redb layout of the audit log, and read access for the CLI and the admin API.
//!
//! The sidecar holds the file exclusively while it runs (redb's default `ExclusiveWriter`
//! mode), so each durable commit is redb's one-phase checksummed commit (one `fdatasync`), and
//! commits that do not sync are allowed (the applier's, behind the journal). A mode that lets
//! other processes read beside the writer forces two-phase commits and refuses unsynced ones.
//! While the sidecar runs, `clawgate audit ...` reads through its admin listener (`--url`);
//! once it stops, straight from the file.

use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, MultimapTableDefinition, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::AuditError;
use super::merkle::Hash;

/// seq → 32-byte entry hash followed by the entry's RFC 8785 JSON.
pub const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// tree size → signed checkpoint note.
pub const CHECKPOINTS: TableDefinition<u64, &str> = TableDefinition::new("checkpoints");
/// `head` (the [`ChainHead`] as JSON) and `instance_id`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// hex SHA-256 → body, for result bodies small enough to keep.
pub const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// run id → seq of the run's first entry: the run's key in [`RUN_ENTRIES`].
pub const RUN_IDS: TableDefinition<&str, u64> = TableDefinition::new("run_ids");
/// (seq of the run's first entry, seq) → (), for timelines. Keyed by the run's first seq rather
/// than its id so that the runs active at any moment, which all started recently, sit together at
/// the end of the table: a commit rewrites a few tail pages instead of one page per run it
/// touches, as an index keyed by (often random) run ids does.
pub const RUN_ENTRIES: TableDefinition<(u64, u64), ()> = TableDefinition::new("run_entries");
/// The index before `run_ids`/`run_entries` (run id → seqs). Read only to migrate it, on open.
pub const LEGACY_RUNS: MultimapTableDefinition<&str, u64> = MultimapTableDefinition::new("runs");

/// The end of the chain, stored in the same transaction as the entries it describes, so a
/// restart continues the chain (and the Merkle tree) without re-reading the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Number of entries; the next entry's seq.
    pub size: u64,
    /// Hex hash of entry `size - 1` (64 zeros when empty).
    pub last_hash: String,
    /// Roots of the perfect subtrees of the Merkle tree, left to right.
    pub frontier: Vec<String>,
    /// Tree size of the latest checkpoint.
    pub checkpoint_size: u64,
}

pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Split a stored entry value into its recorded hash and its JSON bytes.
pub fn split_entry(value: &[u8]) -> Option<(Hash, &[u8])> {
    let (hash, json) = value.split_at_checked(32)?;
    Some((hash.try_into().ok()?, json))
}

fn legacy_run_seqs(txn: &ReadTransaction, run_id: &str) -> Result<Vec<u64>, AuditError> {
    let table = match txn.open_multimap_table(LEGACY_RUNS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(store_err(e)),
    };
    let mut out = Vec::new();
    for v in table.get(run_id).map_err(store_err)? {
        out.push(v.map_err(store_err)?.value());
    }
    Ok(out)
}

/// Why a database file could not be opened; a file another process holds says what to do.
pub fn open_err(path: &Path, e: redb::DatabaseError) -> AuditError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => AuditError::InUse(path.display().to_string()),
        e => AuditError::Storage(format!("cannot open {}: {e}", path.display())),
    }
}

pub fn store_err(e: impl std::fmt::Display) -> AuditError {
    AuditError::Storage(e.to_string())
}

enum Handle {
    /// Another process's log, opened read-only beside its writer.
    ReadOnly(ReadOnlyDatabase),
    /// This process's own log, shared with its writer thread.
    Shared(Arc<Database>),
}

/// Read-only view of an audit database.
pub struct AuditReader {
    db: Handle,
}

impl AuditReader {
    pub fn open(path: &Path) -> Result<AuditReader, AuditError> {
        if !path.exists() {
            return Err(AuditError::Storage(format!(
                "{} does not exist",
                path.display()
            )));
        }
        // Entries a crash left only in the journal go into the file first.
        super::chain::recover_offline(path)?;
        let db = redb::Builder::new()
            .open_read_only(path)
            .map_err(|e| open_err(path, e))?;
        Ok(AuditReader {
            db: Handle::ReadOnly(db),
        })
    }

    pub fn shared(db: Arc<Database>) -> AuditReader {
        AuditReader {
            db: Handle::Shared(db),
        }
    }

    fn begin_read(&self) -> Result<ReadTransaction, AuditError> {
        match &self.db {
            Handle::ReadOnly(d) => d.begin_read(),
            Handle::Shared(d) => d.begin_read(),
        }
        .map_err(store_err)
    }

    pub fn head(&self) -> Result<ChainHead, AuditError> {
        let txn = self.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(ChainHead::default()),
            Err(e) => return Err(store_err(e)),
        };
        match meta.get("head").map_err(store_err)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(store_err),
            None => Ok(ChainHead::default()),
        }
    }

    /// Visit entries with `from <= seq < to` in order, as (key, recorded hash, JSON bytes).
    /// The visitor returns `false` to stop.
    pub fn for_each_entry(
        &self,
        from: u64,
        to: Option<u64>,
        mut visit: impl FnMut(u64, Option<Hash>, &[u8]) -> Result<bool, AuditError>,
    ) -> Result<(), AuditError> {
        let txn = self.begin_read()?;
        let table = match txn.open_table(ENTRIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(store_err(e)),
        };
        let range = match to {
            Some(to) => table.range(from..to),
            None => table.range(from..),
        }
        .map_err(store_err)?;
        for item in range {
            let (k, v) = item.map_err(store_err)?;
            let value = v.value();
            let keep_going = match split_entry(value) {
                Some((hash, json)) => visit(k.value(), Some(hash), json)?,
                None => visit(k.value(), None, value)?,
            };
            if !keep_going {
                break;
            }
        }
        Ok(())
    }

    /// Every checkpoint as (tree size, signed note), by size.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>, AuditError> {
        let txn = self.begin_read()?;
        let table = match txn.open_table(CHECKPOINTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(store_err(e)),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(store_err)? {
            let (k, v) = item.map_err(store_err)?;
            out.push((k.value(), v.value().to_string()));
        }
        Ok(out)
    }

    /// Seqs of one run's entries, in order.
    pub fn run_seqs(&self, run_id: &str) -> Result<Vec<u64>, AuditError> {
        let txn = self.begin_read()?;
        let ids = match txn.open_table(RUN_IDS) {
            Ok(t) => t,
            // A file no writer has opened since the index changed: read the old index.
            Err(redb::TableError::TableDoesNotExist(_)) => return legacy_run_seqs(&txn, run_id),
            Err(e) => return Err(store_err(e)),
        };
        let Some(first) = ids.get(run_id).map_err(store_err)?.map(|v| v.value()) else {
            return Ok(Vec::new());
        };
        let entries = txn.open_table(RUN_ENTRIES).map_err(store_err)?;
        let mut out = Vec::new();
        for item in entries
            .range((first, 0)..=(first, u64::MAX))
            .map_err(store_err)?
        {
            out.push(item.map_err(store_err)?.0.value().1);
        }
        Ok(out)
    }

    /// One entry's JSON by seq.
    pub fn entry(&self, seq: u64) -> Result<Option<serde_json::Value>, AuditError> {
        let txn = self.begin_read()?;
        let table = match txn.open_table(ENTRIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        let Some(v) = table.get(seq).map_err(store_err)? else {
            return Ok(None);
        };
        let json = split_entry(v.value()).map(|(_, j)| j).unwrap_or(v.value());
        serde_json::from_slice(json).map(Some).map_err(store_err)
    }

    pub fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>, AuditError> {
        let txn = self.begin_read()?;
        let table = match txn.open_table(BLOBS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        Ok(table
            .get(hash)
            .map_err(store_err)?
            .map(|v| v.value().to_vec()))
    }
}
