//! Moving journaled entries into redb: a thread (`clawgate-audit-redb`) takes what the writer
//! made durable in the journal and commits it to redb without syncing (`Durability::None`),
//! many commits' entries in one transaction when they queue up; now and then, and whenever the
//! writer needs the journal's space back, it commits durably and records in `meta` where in the
//! journal a restart must begin replaying (see `journal.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, WriteTransaction};

use super::AuditError;
use super::journal::Pointer;
use super::store::{BLOBS, CHECKPOINTS, ChainHead, ENTRIES, META, RUN_ENTRIES, RUN_IDS, store_err};

/// Run ids the applier remembers the first seq of, so that most entries of a run skip the
/// `run_ids` lookup; cleared when full (a miss only costs that lookup).
const RUN_CACHE: usize = 65_536;

/// A durable redb commit at least this often while entries arrive (and whenever half the
/// journal's ring holds records redb does not hold durably), so that a restart replays little,
/// redb's buffered pages go to the file, and the writer seldom waits for the ring's space.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// How long a failed apply waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// One entry for redb.
pub struct Row {
    pub seq: u64,
    pub value: Vec<u8>,
    pub run_id: Option<String>,
    pub blob: Option<(String, Vec<u8>)>,
}

/// One commit of the writer, for redb.
pub struct Item {
    pub rows: Vec<Row>,
    /// The chain head to store with these rows, when one is due.
    pub head: Option<ChainHead>,
    pub checkpoint: Option<(u64, String)>,
    /// Chain size after these rows.
    pub size: u64,
    /// Journal position after these rows' records.
    pub end_pos: u64,
    /// Commit durably before anything later: the rows are not in the journal (too large for
    /// it), or a checkpoint whose caller waits for it.
    pub durable: bool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Item>,
    /// Chain size after the last queued item.
    queued: u64,
    /// Chain size redb holds (readers in this process see it).
    applied: u64,
    applied_pos: u64,
    /// Chain size and journal position of redb's last durable commit.
    durable: u64,
    durable_pos: u64,
    /// A caller waits for a durable commit of everything applied.
    want_durable: bool,
    /// The last apply failed; appends fail until one succeeds.
    error: Option<AuditError>,
    stop: bool,
    /// Tests: leave queued items alone, as a crash right after the journal's sync would.
    frozen: bool,
}

/// Shared between the writer (which queues), readers (which wait) and the applier thread.
pub struct Applier {
    state: Mutex<State>,
    /// Wakes the applier thread.
    work: Condvar,
    /// Wakes those waiting for an apply or a durable commit.
    done: Condvar,
    /// Journal position up to which redb holds the records durably (the writer may reuse the
    /// ring before it).
    durable_pos: AtomicU64,
    /// The journal's ring size: past half of it not durable in redb, the applier commits
    /// durably, so that the writer rarely has to wait for the ring's space.
    ring: u64,
}

impl Applier {
    /// redb holds the chain up to `size` durably, and the journal is read up to `pos`.
    pub fn new(size: u64, pos: u64, ring: u64) -> Arc<Applier> {
        Arc::new(Applier {
            state: Mutex::new(State {
                queued: size,
                applied: size,
                applied_pos: pos,
                durable: size,
                durable_pos: pos,
                ..State::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durable_pos: AtomicU64::new(pos),
            ring,
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, AuditError> {
        self.state
            .lock()
            .map_err(|_| AuditError::Storage("the audit log's redb applier panicked".into()))
    }

    pub fn durable_pos(&self) -> u64 {
        self.durable_pos.load(Ordering::Acquire)
    }

    /// Why appends must fail now, if they must.
    pub fn error(&self) -> Option<AuditError> {
        match self.state.lock() {
            Ok(s) => s.error.clone(),
            Err(_) => Some(AuditError::Storage(
                "the audit log's redb applier panicked".into(),
            )),
        }
    }

    pub fn push(&self, item: Item) -> Result<(), AuditError> {
        let mut s = self.lock()?;
        if s.frozen {
            // A crash: the journal holds it, redb never will in this process.
            s.queued = item.size;
            return Ok(());
        }
        if s.stop {
            return Err(AuditError::Closed);
        }
        s.queued = item.size;
        s.queue.push_back(item);
        drop(s);
        self.work.notify_one();
        Ok(())
    }

    fn wait_until(&self, mut ready: impl FnMut(&State) -> bool) -> Result<(), AuditError> {
        let mut s = self.lock()?;
        loop {
            if ready(&s) {
                return Ok(());
            }
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            if s.frozen {
                return Err(AuditError::Closed);
            }
            if s.stop && s.queue.is_empty() && !s.want_durable {
                return Err(AuditError::Closed);
            }
            s = self
                .done
                .wait(s)
                .map_err(|_| AuditError::Storage("the audit log's redb applier panicked".into()))?;
        }
    }

    /// Wait until redb holds every entry queued so far (what in-process readers see).
    pub fn wait_applied(&self) -> Result<(), AuditError> {
        let target = self.lock()?.queued;
        self.wait_until(|s| s.applied >= target)
    }

    /// Wait until redb holds every entry queued so far durably, so the journal can be reused.
    pub fn wait_durable(&self) -> Result<(), AuditError> {
        let target = {
            let mut s = self.lock()?;
            s.want_durable = true;
            s.queued
        };
        self.work.notify_one();
        self.wait_until(|s| s.durable >= target)
    }

    /// Tests: stop applying, as if the process died right after the journal's syncs.
    pub fn freeze(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.frozen = true;
        }
        self.work.notify_one();
        self.done.notify_all();
    }

    /// Apply what is queued, commit durably, and stop the thread.
    pub fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stop = true;
        }
        self.work.notify_one();
    }

    /// The applier thread's loop; returns once stopped (after a last durable commit).
    pub fn run(self: Arc<Self>, db: Arc<Database>) {
        let mut runs: HashMap<String, u64> = HashMap::new();
        let mut last_durable = Instant::now();
        loop {
            let Ok(mut s) = self.state.lock() else {
                return;
            };
            let mut last_failure: Option<Instant> = None;
            loop {
                if s.stop || s.frozen {
                    break;
                }
                if s.error.is_none() {
                    let timed = s.applied > s.durable && last_durable.elapsed() >= DURABLE_EVERY;
                    if !s.queue.is_empty() || s.want_durable || timed {
                        break;
                    }
                } else if last_failure.get_or_insert_with(Instant::now).elapsed() >= RETRY {
                    break;
                }
                s = match self.work.wait_timeout(s, RETRY.min(DURABLE_EVERY)) {
                    Ok((s, _)) => s,
                    Err(_) => return,
                };
            }
            if s.frozen {
                // A crash: nothing more reaches redb.
                s.queue.clear();
                s.want_durable = false;
                drop(s);
                self.done.notify_all();
                return;
            }
            // Take everything queued up to (and including) the first item that must be durable.
            let mut items = Vec::new();
            let mut durable = s.want_durable || s.stop;
            while let Some(item) = s.queue.pop_front() {
                let d = item.durable;
                items.push(item);
                if d {
                    durable = true;
                    break;
                }
            }
            if !durable
                && (last_durable.elapsed() >= DURABLE_EVERY
                    || items
                        .last()
                        .is_some_and(|i| i.end_pos - s.durable_pos > self.ring / 2))
            {
                durable = true;
            }
            let stopping = s.stop && s.queue.is_empty();
            let (size, pos) = match items.last() {
                Some(last) => (last.size, last.end_pos),
                None => (s.applied, s.applied_pos),
            };
            let pointer = durable.then_some(Pointer {
                pos,
                seq: size,
                clean: stopping,
            });
            drop(s);
            let result = commit(&db, &items, &runs, pointer.as_ref());
            let Ok(mut s) = self.state.lock() else {
                return;
            };
            match result {
                Ok(new_runs) => {
                    if runs.len() + new_runs.len() > RUN_CACHE {
                        runs.clear();
                    }
                    runs.extend(new_runs);
                    s.applied = size;
                    s.applied_pos = pos;
                    s.error = None;
                    if durable {
                        s.durable = size;
                        s.durable_pos = pos;
                        self.durable_pos.store(pos, Ordering::Release);
                        last_durable = Instant::now();
                        // Satisfied only once nothing is left in front of what they waited for.
                        if s.queue.is_empty() {
                            s.want_durable = false;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit log: moving journaled entries into redb failed; appends are refused until it succeeds");
                    s.error = Some(e);
                    for item in items.into_iter().rev() {
                        s.queue.push_front(item);
                    }
                    s.want_durable = false;
                }
            }
            let done = stopping && s.error.is_none();
            let stop_anyway = s.stop && s.error.is_some();
            drop(s);
            self.done.notify_all();
            if done || stop_anyway {
                return;
            }
        }
    }
}

/// One redb transaction holding `items` (none: only the pointer), durable when a pointer is
/// given. Returns the runs it started (run id, first seq), for the run cache.
fn commit(
    db: &Database,
    items: &[Item],
    runs: &HashMap<String, u64>,
    pointer: Option<&Pointer>,
) -> Result<Vec<(String, u64)>, AuditError> {
    let mut txn = db.begin_write().map_err(store_err)?;
    if pointer.is_none() {
        txn.set_durability(Durability::None).map_err(store_err)?;
    }
    let mut new_runs = Vec::new();
    for item in items {
        // A run started earlier in this transaction is not cached yet; `write_rows` then reads
        // it from `run_ids`, which sees this transaction's writes.
        let started = write_rows(&txn, &item.rows, |run| runs.get(run).copied())?;
        new_runs.extend(started);
        write_extras(&txn, item.head.as_ref(), item.checkpoint.as_ref())?;
    }
    if let Some(p) = pointer {
        write_pointer(&txn, p)?;
    }
    txn.commit().map_err(store_err)?;
    Ok(new_runs)
}

/// Store where replay begins (`meta`/`journal`).
pub fn write_pointer(txn: &WriteTransaction, p: &Pointer) -> Result<(), AuditError> {
    let mut meta = txn.open_table(META).map_err(store_err)?;
    let json = serde_json::to_vec(p).map_err(store_err)?;
    meta.insert("journal", json.as_slice()).map_err(store_err)?;
    Ok(())
}

/// The chain head and a checkpoint, when given.
pub fn write_extras(
    txn: &WriteTransaction,
    head: Option<&ChainHead>,
    checkpoint: Option<&(u64, String)>,
) -> Result<(), AuditError> {
    if let Some(head) = head {
        let mut meta = txn.open_table(META).map_err(store_err)?;
        let head_json = serde_json::to_vec(head).map_err(store_err)?;
        meta.insert("head", head_json.as_slice())
            .map_err(store_err)?;
    }
    if let Some((size, note)) = checkpoint {
        let mut cps = txn.open_table(CHECKPOINTS).map_err(store_err)?;
        cps.insert(*size, note.as_str()).map_err(store_err)?;
    }
    Ok(())
}

/// Entries, their run index rows and blobs. `known(run)` gives a run's first seq when it is
/// cached; otherwise the `run_ids` table is read (so it also sees runs started earlier in this
/// transaction). Returns the runs started here.
pub fn write_rows(
    txn: &WriteTransaction,
    rows: &[Row],
    known: impl Fn(&str) -> Option<u64>,
) -> Result<Vec<(String, u64)>, AuditError> {
    let mut new_runs = Vec::new();
    if rows.is_empty() {
        return Ok(new_runs);
    }
    // Only the tables this commit changes are opened: each one opened costs a lookup in redb's
    // table tree, and its root is compared again at commit.
    let mut entries = txn.open_table(ENTRIES).map_err(store_err)?;
    let mut run_ids = None;
    let mut run_entries = None;
    let mut blobs = None;
    for row in rows {
        entries
            .insert(row.seq, row.value.as_slice())
            .map_err(store_err)?;
        if let Some(run) = &row.run_id {
            let first = match known(run) {
                Some(first) => first,
                None => {
                    let ids = match &mut run_ids {
                        Some(t) => t,
                        None => run_ids.insert(txn.open_table(RUN_IDS).map_err(store_err)?),
                    };
                    let stored = ids.get(run.as_str()).map_err(store_err)?.map(|v| v.value());
                    match stored {
                        Some(first) => first,
                        None => {
                            ids.insert(run.as_str(), row.seq).map_err(store_err)?;
                            new_runs.push((run.clone(), row.seq));
                            row.seq
                        }
                    }
                }
            };
            let index = match &mut run_entries {
                Some(t) => t,
                None => run_entries.insert(txn.open_table(RUN_ENTRIES).map_err(store_err)?),
            };
            index.insert((first, row.seq), ()).map_err(store_err)?;
        }
        if let Some((hash, body)) = &row.blob {
            let blobs = match &mut blobs {
                Some(t) => t,
                None => blobs.insert(txn.open_table(BLOBS).map_err(store_err)?),
            };
            blobs
                .insert(hash.as_str(), body.as_slice())
                .map_err(store_err)?;
        }
    }
    Ok(new_runs)
}
