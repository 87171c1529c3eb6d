//! Approvals persist in their own redb file (`<data_dir>/approvals.redb`), so pending
//! approvals and their answers survive a restart, and callback ids already seen stay seen.
//! Every write is durable before the caller goes on.
//!
//! Writes go through one writer thread that puts every write queued at that moment into one
//! transaction (a group commit: one `fdatasync` for all of them), in the order they came. Each
//! caller is answered once the commit that holds its write is durable; if that commit fails,
//! every write in it fails. A thousand callbacks at once were a thousand-odd serialized commits
//! (three per callback, plus one per released approval).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::ApprovalError;
use super::model::ApprovalRequest;

/// approval id → the [`ApprovalRequest`] as JSON.
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
/// callback key (`webhook:<id>`, `slack:<signature>`) → unix ms seen, then the stored answer.
const SEEN: TableDefinition<&str, (i64, &[u8])> = TableDefinition::new("seen_callbacks");

/// redb's page cache for the file (its default is 1 GiB, and every page a commit writes stays
/// in it until full). Every approval is in memory anyway (`Book`); the file is read in full
/// once, at start, and after that only for approvals older than a day.
const PAGE_CACHE_BYTES: usize = 4 << 20;

/// Most writes in one commit.
const MAX_BATCH: usize = 512;
/// Callback keys past their window are swept out at most this often; until then a claim treats
/// such a key as absent, so the sweep's timing changes nothing a caller sees.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

fn storage(e: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Storage(e.to_string())
}

/// One write for the writer thread.
enum Op {
    /// An approval, and with it a callback key and what it answered (the callback that
    /// brought the answer), both or neither.
    Put {
        id: String,
        json: Vec<u8>,
        seen: Option<(String, i64, Vec<u8>)>,
    },
    /// A callback key and what to store for it: insert-if-absent (`claim`, answered with
    /// what was stored for the key, if anything), or replace.
    Seen {
        key: String,
        at_ms: i64,
        stored: Vec<u8>,
        forget_before_ms: i64,
        claim: bool,
    },
}

type Done = oneshot::Sender<Result<Option<Vec<u8>>, ApprovalError>>;

pub struct ApprovalStore {
    db: Arc<Database>,
    writes: Option<flume::Sender<(Op, Done)>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl ApprovalStore {
    pub fn open(path: &Path) -> Result<ApprovalStore, ApprovalError> {
        let db = redb::Builder::new()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(path)
            .map_err(|e| storage(format!("cannot open {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(storage)?;
        tx.open_table(APPROVALS).map_err(storage)?;
        tx.open_table(SEEN).map_err(storage)?;
        tx.commit().map_err(storage)?;
        let db = Arc::new(db);
        let (writes, queue) = flume::unbounded();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("clawgate-approvals".into())
            .spawn(move || run_writer(&writer_db, &queue))
            .map_err(|e| storage(format!("cannot start the approvals writer: {e}")))?;
        Ok(ApprovalStore {
            db,
            writes: Some(writes),
            writer: Some(writer),
        })
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

    /// Write one approval durably; with `seen` (a callback key, unix ms, what to store for
    /// it), remember that callback key in the same commit.
    pub async fn put(
        &self,
        req: &ApprovalRequest,
        seen: Option<(String, i64, Vec<u8>)>,
    ) -> Result<(), ApprovalError> {
        let json = serde_json::to_vec(req).map_err(storage)?;
        let id = req.id.clone();
        self.write(Op::Put { id, json, seen }).await.map(drop)
    }

    /// Claim a callback key: remember it with `stored` unless it is already there (writes are
    /// applied one after another, so of concurrent claims of one key exactly one gets it).
    /// `None` when this call claimed it, else what was stored for it. A key seen before
    /// `forget_before_ms` counts as absent (its timestamp is past the signature window, so
    /// it is refused as stale anyway).
    pub async fn claim(
        &self,
        key: &str,
        at_ms: i64,
        stored: Vec<u8>,
        forget_before_ms: i64,
    ) -> Result<Option<Vec<u8>>, ApprovalError> {
        self.write(Op::Seen {
            key: key.to_string(),
            at_ms,
            stored,
            forget_before_ms,
            claim: true,
        })
        .await
    }

    /// Remember a callback key durably (replacing what was stored for it); keys older than
    /// `forget_before_ms` are forgotten.
    pub async fn remember(
        &self,
        key: &str,
        at_ms: i64,
        stored: Vec<u8>,
        forget_before_ms: i64,
    ) -> Result<(), ApprovalError> {
        self.write(Op::Seen {
            key: key.to_string(),
            at_ms,
            stored,
            forget_before_ms,
            claim: false,
        })
        .await
        .map(drop)
    }

    async fn write(&self, op: Op) -> Result<Option<Vec<u8>>, ApprovalError> {
        let closed = || ApprovalError::Storage("the approvals writer has stopped".into());
        let (done, answer) = oneshot::channel();
        self.writes
            .as_ref()
            .ok_or_else(closed)?
            .send((op, done))
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

impl Drop for ApprovalStore {
    /// The writer finishes what is queued and lets go of the file, so that it can be opened
    /// again (redb holds it exclusively) as soon as this returns.
    fn drop(&mut self) {
        drop(self.writes.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn run_writer(db: &Database, queue: &flume::Receiver<(Op, Done)>) {
    let mut swept: Option<Instant> = None;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let sweep = swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
        let (ops, waiters): (Vec<Op>, Vec<Done>) = batch.into_iter().unzip();
        match commit(db, &ops, sweep) {
            Ok(answers) => {
                if sweep {
                    swept = Some(Instant::now());
                }
                for (waiter, answer) in waiters.into_iter().zip(answers) {
                    let _ = waiter.send(Ok(answer));
                }
            }
            Err(e) => {
                for waiter in waiters {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Apply `ops` in order in one write transaction and commit it; one answer per op.
fn commit(db: &Database, ops: &[Op], sweep: bool) -> Result<Vec<Option<Vec<u8>>>, ApprovalError> {
    let tx = db.begin_write().map_err(storage)?;
    let mut answers = Vec::with_capacity(ops.len());
    {
        let mut approvals = tx.open_table(APPROVALS).map_err(storage)?;
        let mut seen = tx.open_table(SEEN).map_err(storage)?;
        if sweep {
            let forget = ops.iter().find_map(|op| match op {
                Op::Seen {
                    forget_before_ms, ..
                } => Some(*forget_before_ms),
                Op::Put { .. } => None,
            });
            if let Some(forget) = forget {
                seen.retain(|_, (at, _)| at >= forget).map_err(storage)?;
            }
        }
        for op in ops {
            answers.push(match op {
                Op::Put {
                    id,
                    json,
                    seen: also,
                } => {
                    approvals
                        .insert(id.as_str(), json.as_slice())
                        .map_err(storage)?;
                    if let Some((key, at_ms, stored)) = also {
                        seen.insert(key.as_str(), (*at_ms, stored.as_slice()))
                            .map_err(storage)?;
                    }
                    None
                }
                Op::Seen {
                    key,
                    at_ms,
                    stored,
                    forget_before_ms,
                    claim,
                } => {
                    // A claim finds what a key seen within the window stored; a replace
                    // overwrites whatever is there.
                    let existing = if *claim {
                        seen.get(key.as_str()).map_err(storage)?.and_then(|row| {
                            let (at, stored) = row.value();
                            (at >= *forget_before_ms).then(|| stored.to_vec())
                        })
                    } else {
                        None
                    };
                    if existing.is_none() {
                        seen.insert(key.as_str(), (*at_ms, stored.as_slice()))
                            .map_err(storage)?;
                    }
                    existing
                }
            });
        }
    }
    tx.commit().map_err(storage)?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_of_one_key_claim_it_once_and_expired_keys_count_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approvals.redb");
        let store = Arc::new(ApprovalStore::open(&path).unwrap());
        // Queued together, the claims share commits; exactly one finds the key free.
        let claims: Vec<_> = (0..32u8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.claim("webhook:a", 1_000, vec![i], 0).await })
            })
            .collect();
        let mut free = 0;
        for claim in claims {
            if claim.await.unwrap().unwrap().is_none() {
                free += 1;
            }
        }
        assert_eq!(free, 1);
        // Seen before the window the caller keeps: absent, and claimed anew.
        assert_eq!(
            store
                .claim("webhook:a", 5_000, vec![9], 2_000)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .claim("webhook:a", 5_001, vec![8], 2_000)
                .await
                .unwrap(),
            Some(vec![9])
        );
        // What is written survives closing and opening the file again.
        store
            .remember("webhook:b", 5_002, vec![7], 2_000)
            .await
            .unwrap();
        drop(store);
        let store = ApprovalStore::open(&path).unwrap();
        assert_eq!(
            store
                .claim("webhook:b", 5_003, vec![], 2_000)
                .await
                .unwrap(),
            Some(vec![7])
        );
    }
}
