//! Appending to the audit log: a writer thread commits many callers' entries in one durable
//! journal write (group commit: one `pwrite` and one `fdatasync` of `audit.journal`); a caller
//! that finds itself the only append under way commits its own entries instead, on its own
//! thread, the same way (no hand-off to the writer and back). Either way one commit runs at a
//! time, under the writer's lock. A caller's `append` returns only once its entry is on disk, so
//! the action it records may run; if the write fails, the caller gets the error and nothing is
//! silently dropped. redb receives the entries afterwards (`apply.rs`); every open replays the
//! journal's entries that redb lacks (`journal.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{
    Database, MultimapTableHandle, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    WriteTransaction,
};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::AuditError;
use super::apply::{Applier, Item, Row, write_extras, write_pointer, write_rows};
use super::checkpoint::{Checkpoint, NoteSigner};
use super::jcs;
use super::journal::{Journal, JournalFile, Pointer, RecordRef, encode, journal_path, replay};
use super::merkle::{Hash, MerkleAccumulator, leaf_hash};
use super::redact::{Redactor, integers_only};
use super::store::{
    AuditReader, BLOBS, CHECKPOINTS, ChainHead, ENTRIES, LEGACY_RUNS, META, RUN_ENTRIES, RUN_IDS,
    ZERO_HASH, open_err, split_entry, store_err,
};
use crate::metrics::Metrics;

/// Fields the log itself sets on every entry.
const RESERVED: &[&str] = &["seq", "prev", "ts", "kind", "redacted"];

/// How long the writer may hold a batch open for appends that are under way but not yet queued
/// (see [`Writer::run`]).
const LINGER: Duration = Duration::from_micros(300);

/// The chain head (`meta`/`head`) is stored with every checkpoint and at least once per this many
/// entries, not with every commit: a commit that writes it dirties one more table. Entries
/// committed after the stored head (at most this many plus one batch) are read back on open.
const HEAD_EVERY: u64 = 1024;

/// redb's page cache for the log (its default is 1 GiB). Every page a commit writes stays in
/// that cache until it is full, so with the default a running sidecar grew by what it wrote,
/// each new page a fresh, zero-filled allocation (a page fault); bounded, evicted pages make
/// room for new ones. Appends touch only the right edge of each table's tree, and export and
/// verification read the log in order once, so a small cache loses nothing measurable: 8 MiB
/// rather than 32 kept 10,000 held requests 10 MiB smaller, at the same `/v1/check` rate
/// (benches/README.md, "held memory, third round").
const PAGE_CACHE_BYTES: usize = 8 << 20;

/// One event to record. Its fields become the entry's top-level fields beside `seq`, `prev`,
/// `ts` and `kind`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub kind: String,
    pub fields: Map<String, Value>,
    /// Indexes the entry under this run for `clawgate audit timeline`.
    pub run_id: Option<String>,
    /// A body to keep in the content-addressed blob table, under its hex SHA-256.
    pub blob: Option<(String, Vec<u8>)>,
}

impl AuditEvent {
    pub fn new(kind: &str, fields: Value) -> AuditEvent {
        let fields = match fields {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        AuditEvent {
            kind: kind.to_string(),
            fields,
            run_id: None,
            blob: None,
        }
    }

    pub fn with_run(mut self, run_id: Option<&str>) -> AuditEvent {
        self.run_id = run_id.filter(|r| !r.is_empty()).map(str::to_string);
        self
    }
}

/// Where an entry landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The redb file (`<data_dir>/audit.redb`).
    pub path: PathBuf,
    /// The ed25519 checkpoint signing key (`<data_dir>/audit-signing.key`), created if absent.
    pub key_path: PathBuf,
    /// Sign a checkpoint once this many entries were added since the last one.
    pub checkpoint_every: u64,
    /// Sign a checkpoint at least this often while entries keep arriving.
    pub checkpoint_interval: Duration,
    /// Most entries committed in one write transaction.
    pub max_batch: usize,
    /// Ring size of the journal (`audit.journal` beside the redb file), when it is created.
    pub journal_bytes: u64,
    /// Where the log records its own append latency and batch sizes (only these: other rooms
    /// get the sidecar's metrics from the composition root, not from the log).
    pub metrics: Arc<Metrics>,
}

/// What readiness and metrics need to know about the log.
#[derive(Debug, Default)]
pub struct AuditHealth {
    failed: AtomicBool,
    last_error: Mutex<Option<String>>,
    size: AtomicU64,
    batches: AtomicU64,
}

impl AuditHealth {
    pub fn writable(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
    /// Entries in the chain.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }
    /// Write transactions committed since start.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    fn record(&self, result: Result<u64, &AuditError>) {
        match result {
            Ok(size) => {
                self.size.store(size, Ordering::Relaxed);
                self.batches.fetch_add(1, Ordering::Relaxed);
                self.failed.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.store(true, Ordering::Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
            }
        }
    }
}

/// An event after the caller's task has redacted and canonicalized it, so the single writer
/// thread only copies bytes and hashes them.
struct Prepared {
    /// Every member of the entry but `prev`, `seq` and `ts`, each written `,"name":value`, in
    /// RFC 8785 order (top-level names are ASCII, so that is byte order).
    body: Vec<u8>,
    /// Where in `body` the `prev`, `seq` and `ts` members go.
    slots: [usize; 3],
    run_id: Option<String>,
    blob: Option<(String, Vec<u8>)>,
}

enum Msg {
    Append(Prepared, oneshot::Sender<Result<Receipt, AuditError>>),
    /// Entries that go into one commit together, in order (never split over two).
    AppendAll(Vec<(Prepared, oneshot::Sender<Result<Receipt, AuditError>>)>),
    /// Sign a checkpoint now if the tree grew.
    Checkpoint(oneshot::Sender<Result<(), AuditError>>),
    /// Sign a checkpoint now (if the tree grew) and stop.
    Close(oneshot::Sender<()>),
}

/// Handle to the audit log. Cheap to share; the writer thread stops on [`AuditLog::close`].
pub struct AuditLog {
    tx: flume::Sender<Msg>,
    /// The writer's state, shared by the writer thread and callers that commit their own
    /// entries (see [`AuditLog::commit_inline`]); one commit at a time.
    writer_state: Arc<Mutex<Writer>>,
    /// `append` calls under way (preparing, queued or waiting for their commit).
    in_flight: Arc<AtomicUsize>,
    /// Of those, the ones committing on their own thread (never more than one).
    inline: Arc<AtomicUsize>,
    /// Shared with the writer thread; dropped on close so the file is released.
    db: Mutex<Option<Arc<Database>>>,
    /// Moves journaled entries into redb; readers wait for it.
    applier: Arc<Applier>,
    applier_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    health: Arc<AuditHealth>,
    metrics: Arc<Metrics>,
    redactor: Arc<Redactor>,
    verifier_key: String,
    origin: String,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditLog {
    /// Open (or create) the log, load (or create) the signing key, and start the writer.
    /// Records a `key` event saying whether the key was created or loaded.
    pub async fn open(opts: AuditOptions, redactor: Redactor) -> Result<AuditLog, AuditError> {
        let (db, head, instance_id, journal) = open_db(&opts.path, opts.journal_bytes)?;
        let origin = format!("clawgate/{instance_id}");
        let key_existed = opts.key_path.exists();
        let signer = NoteSigner::load_or_create(&opts.key_path, &origin)
            .map_err(|e| AuditError::Key(e.to_string()))?;
        let verifier_key = signer.verifier_key();
        let health = Arc::new(AuditHealth::default());
        health.size.store(head.size, Ordering::Relaxed);
        let (tx, rx) = flume::bounded(65_536);
        let db = Arc::new(db);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let inline = Arc::new(AtomicUsize::new(0));
        let metrics = opts.metrics.clone();
        let applier = Applier::new(head.size, journal.pos(), journal.cap());
        let applier_thread = {
            let (applier, db) = (applier.clone(), db.clone());
            std::thread::Builder::new()
                .name("clawgate-audit-redb".into())
                .spawn(move || applier.run(db))
                .map_err(|e| {
                    AuditError::Storage(format!("cannot start the audit redb applier: {e}"))
                })?
        };
        let writer = Writer::new(
            db.clone(),
            head,
            signer,
            origin.clone(),
            opts,
            health.clone(),
            journal,
            applier.clone(),
        )?;
        let writer_state = Arc::new(Mutex::new(writer));
        let thread = WriterThread {
            state: writer_state.clone(),
            in_flight: in_flight.clone(),
            inline: inline.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("clawgate-audit".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| AuditError::Storage(format!("cannot start the audit writer: {e}")))?;
        let log = AuditLog {
            tx,
            writer_state,
            in_flight,
            inline,
            db: Mutex::new(Some(db)),
            applier,
            applier_thread: Mutex::new(Some(applier_thread)),
            health,
            metrics,
            redactor: Arc::new(redactor),
            verifier_key: verifier_key.clone(),
            origin,
            writer: Mutex::new(Some(handle)),
        };
        let event = if key_existed { "loaded" } else { "created" };
        log.append(super::events::key(event, &verifier_key)).await?;
        Ok(log)
    }

    pub fn health(&self) -> &Arc<AuditHealth> {
        &self.health
    }

    /// The checkpoint verifier key (`clawgate audit pubkey`).
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// `clawgate/<instance id>`: the origin line of every checkpoint.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Read access to this log while it is being written, holding every entry appended before
    /// the call (it waits, usually well under a millisecond, for the applier to move the
    /// journal's latest entries into redb); `Closed` after [`AuditLog::close`].
    pub fn reader(&self) -> Result<AuditReader, AuditError> {
        let db = self.db.lock().ok().and_then(|db| db.clone());
        let db = db.ok_or(AuditError::Closed)?;
        self.applier.wait_applied()?;
        Ok(AuditReader::shared(db))
    }

    /// Tests: from now on nothing reaches redb, as if the process died right after each
    /// journal sync; appends still return once journaled.
    #[doc(hidden)]
    pub fn freeze_redb_for_tests(&self) {
        self.applier.freeze();
    }

    /// Sign a checkpoint over everything written so far (if the tree grew) and wait for it,
    /// so that an export taken now is covered to its last entry.
    pub async fn checkpoint_now(&self) -> Result<(), AuditError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send_async(Msg::Checkpoint(reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Record an event; returns once it is durable on disk.
    pub async fn append(&self, event: AuditEvent) -> Result<Receipt, AuditError> {
        let started = Instant::now();
        let result = self.append_inner(event).await;
        self.metrics.audit_append(started.elapsed());
        result
    }

    async fn append_inner(&self, event: AuditEvent) -> Result<Receipt, AuditError> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let prepared = prepare(&self.redactor, event)?;
        let prepared = match self.commit_inline(vec![prepared]) {
            Ok(result) => {
                return result.and_then(|mut receipts| receipts.pop().ok_or(AuditError::Closed));
            }
            Err(mut group) => match group.pop() {
                Some(p) => p,
                None => return Err(AuditError::Closed),
            },
        };
        let (reply, wait) = oneshot::channel();
        self.tx
            .send_async(Msg::Append(prepared, reply))
            .await
            .map_err(|_| self.closed())?;
        wait.await.map_err(|_| self.closed())?
    }

    /// Record several events in one commit, in this order; returns once all are durable. They
    /// stand or fall together: one step of a workflow (an answer and the resolution it caused)
    /// is never half recorded, and costs one durable write.
    pub async fn append_all(&self, events: Vec<AuditEvent>) -> Result<Vec<Receipt>, AuditError> {
        let started = Instant::now();
        let result = self.append_all_inner(events).await;
        self.metrics.audit_append(started.elapsed());
        result
    }

    async fn append_all_inner(&self, events: Vec<AuditEvent>) -> Result<Vec<Receipt>, AuditError> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let mut prepared = Vec::with_capacity(events.len());
        for event in events {
            prepared.push(prepare(&self.redactor, event)?);
        }
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = match self.commit_inline(prepared) {
            Ok(result) => return result,
            Err(group) => group,
        };
        let mut group = Vec::with_capacity(prepared.len());
        let mut waits = Vec::with_capacity(prepared.len());
        for p in prepared {
            let (reply, wait) = oneshot::channel();
            group.push((p, reply));
            waits.push(wait);
        }
        self.tx
            .send_async(Msg::AppendAll(group))
            .await
            .map_err(|_| self.closed())?;
        let mut receipts = Vec::with_capacity(waits.len());
        for wait in waits {
            receipts.push(wait.await.map_err(|_| self.closed())??);
        }
        Ok(receipts)
    }

    /// Commit a group on the caller's thread when it is the only append under way and the
    /// writer is idle, so that a lone caller (one check at a time) does not wake the writer
    /// thread and wait to be woken by it: two thread hand-offs per entry on top of the commit.
    /// The commit is the same one the writer makes (one write transaction, durable before this
    /// returns); the tokio worker hands its other tasks to another thread meanwhile
    /// (`block_in_place`). Gives the group back when the writer thread should take it: other
    /// appends under way (they group-commit), a commit in progress, or a runtime that cannot
    /// block in place (current-thread).
    fn commit_inline(
        &self,
        group: Vec<Prepared>,
    ) -> Result<Result<Vec<Receipt>, AuditError>, Vec<Prepared>> {
        if self.in_flight.load(Ordering::Relaxed) != 1 || !self.tx.is_empty() {
            return Err(group);
        }
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if !multi_thread {
            return Err(group);
        }
        // A poisoned lock (a panic during a commit) also goes to the writer thread, which
        // stops on it: appends then fail as on a closed log.
        let Ok(mut writer) = self.writer_state.try_lock() else {
            return Err(group);
        };
        if writer.db.is_none() {
            return Ok(Err(self.closed()));
        }
        let _inline = InFlight::enter(&self.inline);
        Ok(tokio::task::block_in_place(|| {
            writer.commit(&group.iter().collect::<Vec<_>>())
        }))
    }

    fn closed(&self) -> AuditError {
        self.health.record(Err(&AuditError::Closed));
        AuditError::Closed
    }

    /// Sign a final checkpoint and stop the writer. Later appends fail with `Closed`.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send_async(Msg::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        // The writer stopped the applier on close; it ends after its last durable commit.
        self.applier.stop();
        let handle = self.applier_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        if let Ok(mut db) = self.db.lock() {
            db.take();
        }
        self.health.record(Err(&AuditError::Closed));
    }
}

/// Counts an `append` as under way until it returns or is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Redact and canonicalize an event on the caller's task.
fn prepare(redactor: &Redactor, event: AuditEvent) -> Result<Prepared, AuditError> {
    if let Some(key) = event
        .fields
        .keys()
        .find(|k| RESERVED.contains(&k.as_str()) || !valid_field_name(k))
    {
        return Err(AuditError::Field(key.clone()));
    }
    if !valid_field_name(&event.kind) {
        return Err(AuditError::Field(event.kind));
    }
    // The whole event is redacted in one walk. That equals redacting each field on its own: every
    // rule path starts at a top-level name, and `Map` iterates in sorted key order, so the sorted
    // list of changed paths is the per-field lists one after another.
    let mut fields = Value::Object(event.fields);
    let redacted = redactor.redact(&mut fields);
    integers_only(&mut fields);
    let fields = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let redacted = (!redacted.is_empty())
        .then(|| Value::Array(redacted.into_iter().map(Value::String).collect()));

    enum Member<'a> {
        Value(&'a Value),
        Kind,
        Slot(usize),
    }
    let mut members: Vec<(&str, Member)> = Vec::with_capacity(fields.len() + 5);
    members.extend(fields.iter().map(|(k, v)| (k.as_str(), Member::Value(v))));
    if let Some(r) = &redacted {
        members.push(("redacted", Member::Value(r)));
    }
    members.push(("kind", Member::Kind));
    members.push(("prev", Member::Slot(0)));
    members.push(("seq", Member::Slot(1)));
    members.push(("ts", Member::Slot(2)));
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));

    let mut body = Vec::with_capacity(1024);
    let mut slots = [0; 3];
    for (name, member) in members {
        match member {
            Member::Slot(i) => slots[i] = body.len(),
            Member::Kind => {
                body.extend_from_slice(b",\"kind\":");
                jcs::write_str(&event.kind, &mut body);
            }
            Member::Value(v) => {
                body.extend_from_slice(b",\"");
                body.extend_from_slice(name.as_bytes());
                body.extend_from_slice(b"\":");
                jcs::write_value(v, &mut body)
                    .map_err(|e| AuditError::Field(format!("{name}: {e}")))?;
            }
        }
    }
    Ok(Prepared {
        body,
        slots,
        run_id: event.run_id,
        blob: event.blob,
    })
}

fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Open the database as its exclusive writer, creating the tables and instance id on first use,
/// replay the journal's entries that redb does not hold yet, check that the stored head
/// matches the last entry, and open the journal (created on first use) for writing.
///
/// Exclusive (redb's default mode) so that a durable redb commit is one-phase, and so that
/// commits that do not sync (the applier's) are allowed at all. After a crash redb opens at
/// its last durable commit; everything acknowledged since is in the journal, from the position
/// that commit recorded (`meta`/`journal`), and is applied here, in the opening transaction,
/// before anything reads the log.
fn open_db(
    path: &Path,
    journal_bytes: u64,
) -> Result<(Database, ChainHead, String, Journal), AuditError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(store_err)?;
    }
    let db = redb::Builder::new()
        .set_cache_size(PAGE_CACHE_BYTES)
        .create(path)
        .map_err(|e| open_err(path, e))?;
    let txn = db.begin_write().map_err(store_err)?;
    let (instance_id, pointer) = {
        let mut meta = txn.open_table(META).map_err(store_err)?;
        let instance_id = match meta.get("instance_id").map_err(store_err)? {
            Some(v) => String::from_utf8_lossy(v.value()).into_owned(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        meta.insert("instance_id", instance_id.as_bytes())
            .map_err(store_err)?;
        (instance_id, read_pointer(&meta)?)
    };
    let jpath = journal_path(path);
    let replayed = recover(&txn, &jpath, &instance_id, pointer)?;
    let (head, instance_id) = {
        let mut meta = txn.open_table(META).map_err(store_err)?;
        let entries = txn.open_table(ENTRIES).map_err(store_err)?;
        txn.open_table(CHECKPOINTS).map_err(store_err)?;
        txn.open_table(BLOBS).map_err(store_err)?;
        txn.open_table(RUN_IDS).map_err(store_err)?;
        txn.open_table(RUN_ENTRIES).map_err(store_err)?;
        let stored: ChainHead = match meta.get("head").map_err(store_err)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(store_err)?,
            None => ChainHead {
                last_hash: ZERO_HASH.into(),
                ..ChainHead::default()
            },
        };
        let head = catch_up(&entries, stored).map_err(|why| {
            AuditError::Corrupt(format!(
                "{}: {why}; run `clawgate audit verify --db {}`",
                path.display(),
                path.display()
            ))
        })?;
        meta.insert(
            "head",
            serde_json::to_vec(&head).map_err(store_err)?.as_slice(),
        )
        .map_err(store_err)?;
        (head, instance_id)
    };
    migrate_legacy_runs(&txn)?;
    let journal = Journal::open(&jpath, journal_bytes, &instance_id, replayed)?;
    write_pointer(
        &txn,
        &Pointer {
            pos: journal.pos(),
            seq: head.size,
            clean: false,
        },
    )?;
    txn.commit().map_err(store_err)?;
    Ok((db, head, instance_id, journal))
}

/// Where replay begins, as the last durable redb commit recorded it.
fn read_pointer(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<Pointer>, AuditError> {
    match meta.get("journal").map_err(store_err)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| AuditError::Corrupt(format!("meta/journal: {e}"))),
        None => Ok(None),
    }
}

/// The hash redb records for entry `seq`, if it holds that entry.
fn recorded_hash(
    entries: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<Option<Hash>, AuditError> {
    Ok(entries
        .get(seq)
        .map_err(store_err)?
        .and_then(|v| split_entry(v.value()).map(|(h, _)| h)))
}

/// The number of entries redb holds (one past the last seq).
fn next_seq(entries: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, AuditError> {
    Ok(entries
        .last()
        .map_err(store_err)?
        .map_or(0, |(k, _)| k.value() + 1))
}

/// Apply the journal's whole commits beyond redb's entries to `txn` (entries, run index, blobs,
/// checkpoints). Returns the journal position where writing continues. A journal that is
/// missing although redb says entries may be in it, that belongs to another log, or that
/// contradicts redb is refused. A journal never written (zeros) that names another log is the
/// trace of a first open that did not complete, and is replaced.
fn recover(
    txn: &WriteTransaction,
    jpath: &Path,
    instance_id: &str,
    pointer: Option<Pointer>,
) -> Result<u64, AuditError> {
    let Some(file) = JournalFile::read(jpath)? else {
        if let Some(p) = pointer.filter(|p| !p.clean) {
            return Err(AuditError::Corrupt(format!(
                "{} is missing, and the audit log was not closed cleanly: the entries acknowledged after its \
                 first {} may be lost; restore the journal, or move the log away to start a new one",
                jpath.display(),
                p.seq
            )));
        }
        return Ok(0);
    };
    if file.instance_id != instance_id {
        if pointer.is_none() && file.ring.iter().all(|b| *b == 0) {
            std::fs::remove_file(jpath).map_err(store_err)?;
            return Ok(0);
        }
        file.check_instance(jpath, instance_id)?;
    }
    let Some(pointer) = pointer else {
        return Ok(0);
    };
    let replayed = {
        let entries = txn.open_table(ENTRIES).map_err(store_err)?;
        let next = next_seq(&entries)?;
        replay(jpath, &file.ring, pointer, next, |seq| {
            recorded_hash(&entries, seq)
        })?
    };
    if !replayed.records.is_empty() {
        tracing::info!(
            entries = replayed.records.len(),
            from = replayed.records[0].seq,
            "audit log: entries replayed from the journal"
        );
    }
    for record in replayed.records {
        let row = Row {
            seq: record.seq,
            value: record.value,
            run_id: record.run_id,
            blob: record.blob,
        };
        write_rows(txn, std::slice::from_ref(&row), |_| None)?;
        write_extras(txn, None, record.checkpoint.as_ref())?;
    }
    Ok(replayed.end)
}

/// For readers of a stopped sidecar's file (`--db`): move the journal's entries that redb does
/// not hold yet into it, durably, before anything reads it. Nothing is written when there are
/// none. A file that cannot be opened for writing is read as it is if the journal adds nothing
/// to it, and refused otherwise.
pub fn recover_offline(path: &Path) -> Result<(), AuditError> {
    let jpath = journal_path(path);
    if !jpath.exists() {
        return Ok(());
    }
    let db = match redb::Builder::new()
        .set_cache_size(PAGE_CACHE_BYTES)
        .open(path)
    {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(AuditError::InUse(path.display().to_string()));
        }
        Err(e) => return check_nothing_to_replay(path, &jpath, e),
    };
    let txn = db.begin_write().map_err(store_err)?;
    let (instance_id, pointer) = {
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(e) => return Err(store_err(e)),
        };
        let id = meta
            .get("instance_id")
            .map_err(store_err)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        (id, read_pointer(&meta)?)
    };
    let (Some(instance_id), Some(p)) = (instance_id, pointer) else {
        return Ok(());
    };
    let next_before = {
        let entries = txn.open_table(ENTRIES).map_err(store_err)?;
        next_seq(&entries)?
    };
    let end = recover(&txn, &jpath, &instance_id, Some(p))?;
    let next = {
        let entries = txn.open_table(ENTRIES).map_err(store_err)?;
        next_seq(&entries)?
    };
    if next == next_before {
        txn.abort().map_err(store_err)?;
        return Ok(());
    }
    write_pointer(
        &txn,
        &Pointer {
            pos: end,
            seq: next,
            clean: p.clean,
        },
    )?;
    txn.commit().map_err(store_err)?;
    Ok(())
}

/// The file cannot be opened for writing (`why`): fine if the journal holds nothing beyond it.
fn check_nothing_to_replay(
    path: &Path,
    jpath: &Path,
    why: redb::DatabaseError,
) -> Result<(), AuditError> {
    let cannot = |e: &dyn std::fmt::Display| {
        AuditError::Storage(format!(
            "cannot open {} for writing ({why}), and {e}",
            path.display()
        ))
    };
    let db = redb::Builder::new()
        .open_read_only(path)
        .map_err(|e| open_err(path, e))?;
    let txn = db.begin_read().map_err(store_err)?;
    let meta = txn.open_table(META).map_err(store_err)?;
    let Some(pointer) = read_pointer(&meta)? else {
        return Ok(());
    };
    let Some(file) = JournalFile::read(jpath)? else {
        return Ok(());
    };
    let entries = txn.open_table(ENTRIES).map_err(store_err)?;
    let next = next_seq(&entries)?;
    let replayed = replay(jpath, &file.ring, pointer, next, |seq| {
        recorded_hash(&entries, seq)
    })?;
    if replayed.records.is_empty() {
        return Ok(());
    }
    Err(cannot(&format!(
        "its journal {} holds {} entries the file does not (from seq {}): open it once with write access \
         (e.g. `clawgate audit verify --db` as the user the sidecar runs as) to move them in",
        jpath.display(),
        replayed.records.len(),
        next
    )))
}

/// The head of the chain as the entries make it: the stored head, which must name an entry
/// that is there with the hash it records, carried over the entries committed after it (a
/// head is stored every [`HEAD_EVERY`] entries and with each checkpoint, so after a crash it
/// may be behind the last commit). Each of those entries must sit at the next seq and
/// carry the hash of its bytes.
fn catch_up(
    entries: &impl ReadableTable<u64, &'static [u8]>,
    stored: ChainHead,
) -> Result<ChainHead, String> {
    if stored.size > 0 {
        let recorded = recorded_hash(entries, stored.size - 1)
            .map_err(|e| e.to_string())?
            .map(hex::encode);
        if recorded.as_deref() != Some(stored.last_hash.as_str()) {
            return Err(format!(
                "the chain head records {} entries ending in {}, but entry {} {}",
                stored.size,
                stored.last_hash,
                stored.size - 1,
                if recorded.is_some() {
                    "has another hash"
                } else {
                    "is missing"
                }
            ));
        }
    }
    let frontier = stored
        .frontier
        .iter()
        .map(|h| decode_hash(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut tree = MerkleAccumulator::from_frontier(stored.size, frontier)
        .map_err(|e| format!("stored Merkle frontier: {e}"))?;
    let mut last = None;
    for item in entries.range(stored.size..).map_err(|e| e.to_string())? {
        let (k, v) = item.map_err(|e| e.to_string())?;
        let seq = k.value();
        if seq != tree.size() {
            return Err(format!(
                "entry {} is missing after the chain head (the next one is {seq})",
                tree.size()
            ));
        }
        match split_entry(v.value()) {
            Some((hash, json)) if leaf_hash(json) == hash => {
                tree.push(hash);
                last = Some(hash);
            }
            _ => return Err(format!("entry {seq} does not match its recorded hash")),
        }
    }
    let Some(last) = last else {
        return Ok(stored);
    };
    Ok(ChainHead {
        size: tree.size(),
        last_hash: hex::encode(last),
        frontier: tree.frontier().iter().map(hex::encode).collect(),
        checkpoint_size: stored.checkpoint_size,
    })
}

/// Move a `runs` multimap index (run id → seqs), written before `run_ids`/`run_entries`
/// replaced it, into those tables, in the opening transaction.
fn migrate_legacy_runs(txn: &WriteTransaction) -> Result<(), AuditError> {
    let present = txn
        .list_multimap_tables()
        .map_err(store_err)?
        .any(|t| t.name() == LEGACY_RUNS.name());
    if !present {
        return Ok(());
    }
    {
        let legacy = txn.open_multimap_table(LEGACY_RUNS).map_err(store_err)?;
        let mut ids = txn.open_table(RUN_IDS).map_err(store_err)?;
        let mut entries = txn.open_table(RUN_ENTRIES).map_err(store_err)?;
        for item in legacy.iter().map_err(store_err)? {
            let (run, seqs) = item.map_err(store_err)?;
            // A multimap's values come in ascending order: the first is the run's first seq.
            let mut first = None;
            for seq in seqs {
                let seq = seq.map_err(store_err)?.value();
                let first = *first.get_or_insert(seq);
                entries.insert((first, seq), ()).map_err(store_err)?;
            }
            if let Some(first) = first {
                ids.insert(run.value(), first).map_err(store_err)?;
            }
        }
    }
    txn.delete_multimap_table(LEGACY_RUNS).map_err(store_err)?;
    Ok(())
}

struct Writer {
    /// `None` once the log is closed: commits fail with `Closed`.
    db: Option<Arc<Database>>,
    /// The chain as committed (size, last hash, checkpoint size; the frontier is `tree`'s).
    head: ChainHead,
    /// Size of the head last stored in `meta` (see [`HEAD_EVERY`]).
    stored_head: u64,
    prev: Hash,
    tree: MerkleAccumulator,
    signer: NoteSigner,
    origin: String,
    opts: AuditOptions,
    health: Arc<AuditHealth>,
    last_checkpoint_at: Instant,
    /// Where commits become durable.
    journal: Journal,
    /// Set by a journal write or sync that failed: what reached the file is then unknown, so
    /// nothing more is written to it until the log is opened again (appends fail: the gate
    /// denies).
    journal_failed: Option<AuditError>,
    /// Takes committed entries into redb.
    applier: Arc<Applier>,
    /// The records of the commit being written.
    buf: Vec<u8>,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    fn new(
        db: Arc<Database>,
        head: ChainHead,
        signer: NoteSigner,
        origin: String,
        opts: AuditOptions,
        health: Arc<AuditHealth>,
        journal: Journal,
        applier: Arc<Applier>,
    ) -> Result<Writer, AuditError> {
        let prev = decode_hash(&head.last_hash)?;
        let frontier = head
            .frontier
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Result<Vec<_>, _>>()?;
        let tree = MerkleAccumulator::from_frontier(head.size, frontier)
            .map_err(|e| AuditError::Corrupt(format!("stored Merkle frontier: {e}")))?;
        Ok(Writer {
            db: Some(db),
            stored_head: head.size,
            head,
            prev,
            tree,
            signer,
            origin,
            opts,
            health,
            last_checkpoint_at: Instant::now(),
            journal,
            journal_failed: None,
            applier,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// Commit a batch and answer each of its callers.
    fn commit_batch(
        &mut self,
        batch: Vec<(Prepared, oneshot::Sender<Result<Receipt, AuditError>>)>,
    ) {
        let result = self.commit(&batch.iter().map(|(p, _)| p).collect::<Vec<_>>());
        match result {
            Ok(receipts) => {
                for ((_, reply), receipt) in batch.into_iter().zip(receipts) {
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Sign a final checkpoint (if the tree grew), let the applier move everything into redb
    /// with a durable commit, and stop taking commits.
    fn close(&mut self) {
        if self.db.is_some() {
            self.final_checkpoint();
        }
        self.applier.stop();
        self.db = None;
    }

    /// One durable commit holding `batch`, in order; the chain moves on only if it is durable
    /// (or, for a batch too large for the journal, queued for redb).
    fn commit(&mut self, batch: &[&Prepared]) -> Result<Vec<Receipt>, AuditError> {
        if self.db.is_none() {
            return Err(AuditError::Closed);
        }
        if let Some(e) = self.journal_failed.clone().or_else(|| self.applier.error()) {
            self.health.record(Err(&e));
            return Err(e);
        }
        self.opts.metrics.audit_batch(batch.len());
        let ts = format!(
            "\"{}\"",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        let mut tree = self.tree.clone();
        let mut prev = self.prev;
        let mut size = self.head.size;
        let mut rows = Vec::with_capacity(batch.len());
        let mut receipts = Vec::with_capacity(batch.len());
        for p in batch {
            let (hash, value) = entry_value(p, size, &prev, ts.as_bytes());
            tree.push(hash);
            rows.push(Row {
                seq: size,
                value,
                run_id: p.run_id.clone(),
                blob: p.blob.clone(),
            });
            receipts.push(Receipt {
                seq: size,
                hash: hex::encode(hash),
            });
            prev = hash;
            size += 1;
        }
        let checkpoint_due = size - self.head.checkpoint_size >= self.opts.checkpoint_every;
        let head_due = checkpoint_due || size - self.stored_head >= HEAD_EVERY;
        let checkpoint_size = if checkpoint_due {
            size
        } else {
            self.head.checkpoint_size
        };
        let head = chain_head(&tree, &prev, checkpoint_size, head_due);
        let (advanced, result) = match checkpoint_due.then(|| self.sign(&tree)).transpose() {
            Ok(note) => self.persist(rows, head_due.then(|| head.clone()), note, size),
            Err(e) => (false, Err(e)),
        };
        self.health.record(result.as_ref().map(|_| size));
        if advanced {
            self.tree = tree;
            self.prev = prev;
            self.head = head;
            if head_due {
                self.stored_head = size;
            }
            if checkpoint_due {
                self.last_checkpoint_at = Instant::now();
            }
        }
        match result {
            Ok(()) => Ok(receipts),
            Err(e) => {
                tracing::error!(error = %e, entries = batch.len(), "audit write failed; the actions are denied");
                Err(e)
            }
        }
    }

    /// Make `rows` durable: one journal write and sync, then queued for redb. A batch larger
    /// than the journal goes to redb in a durable commit of its own instead. Returns whether
    /// the chain moved on (the rows are durable or queued for redb, so their seqs are taken)
    /// and whether they are durable.
    fn persist(
        &mut self,
        rows: Vec<Row>,
        head: Option<ChainHead>,
        note: Option<String>,
        size: u64,
    ) -> (bool, Result<(), AuditError>) {
        self.buf.clear();
        let n = rows.len();
        for (i, row) in rows.iter().enumerate() {
            let last = i + 1 == n;
            let record = RecordRef {
                seq: row.seq,
                end: last,
                value: &row.value,
                run_id: row.run_id.as_deref(),
                blob: row.blob.as_ref().map(|(h, b)| (h.as_str(), b.as_slice())),
                checkpoint: note.as_deref().filter(|_| last).map(|n| (size, n)),
            };
            if let Err(e) = encode(&record, &mut self.buf) {
                return (false, Err(e));
            }
        }
        let len = self.buf.len() as u64;
        let cap = self.journal.cap();
        let fits =
            |at: Option<u64>, durable_pos: u64| at.filter(|at| at + len <= durable_pos + cap);
        let mut at = fits(
            self.journal.place(self.buf.len()),
            self.applier.durable_pos(),
        );
        if at.is_none() {
            // The ring is full of records redb does not hold durably yet: have it commit.
            if let Err(e) = self.applier.wait_durable() {
                return (false, Err(e));
            }
            at = fits(
                self.journal.place(self.buf.len()),
                self.applier.durable_pos(),
            );
        }
        if let Some(at) = at
            && let Err(e) = self.journal.write(at, &self.buf)
        {
            tracing::error!(error = %e, "the audit journal failed; every append is refused until the sidecar restarts");
            self.journal_failed = Some(e.clone());
            return (false, Err(e));
        }
        let direct = at.is_none();
        let item = Item {
            rows,
            head,
            checkpoint: note.map(|n| (size, n)),
            size,
            end_pos: self.journal.pos(),
            durable: direct,
        };
        if let Err(e) = self.applier.push(item) {
            // Journaled rows are durable all the same (a restart replays them).
            return (!direct, if direct { Err(e) } else { Ok(()) });
        }
        if direct {
            return (true, self.applier.wait_durable());
        }
        (true, Ok(()))
    }

    fn sign(&self, tree: &MerkleAccumulator) -> Result<String, AuditError> {
        self.signer
            .sign(&Checkpoint {
                origin: self.origin.clone(),
                size: tree.size(),
                root: tree.root(),
            })
            .map_err(|e| AuditError::Key(e.to_string()))
    }

    /// A checkpoint over everything so far, if the tree grew since the last one, committed to
    /// redb durably with everything before it.
    fn timed_checkpoint(&mut self) -> Result<(), AuditError> {
        self.last_checkpoint_at = Instant::now();
        if self.head.size == self.head.checkpoint_size {
            return Ok(());
        }
        let result = self.sign(&self.tree).and_then(|note| {
            let head = chain_head(&self.tree, &self.prev, self.head.size, true);
            self.applier.push(Item {
                rows: Vec::new(),
                head: Some(head.clone()),
                checkpoint: Some((head.size, note)),
                size: head.size,
                end_pos: self.journal.pos(),
                durable: true,
            })?;
            self.applier.wait_durable()?;
            Ok(head)
        });
        match result {
            Ok(head) => {
                self.head = head;
                self.stored_head = self.head.size;
                Ok(())
            }
            Err(e) => {
                self.health.record(Err(&e));
                tracing::error!(error = %e, "audit checkpoint failed");
                Err(e)
            }
        }
    }

    fn final_checkpoint(&mut self) {
        let _ = self.timed_checkpoint();
        tracing::info!(
            size = self.head.size,
            "audit log closed with a final checkpoint"
        );
    }
}

/// The writer thread: takes queued appends, groups them into batches and commits each batch
/// under the writer's lock; signs timed checkpoints; closes the log.
struct WriterThread {
    state: Arc<Mutex<Writer>>,
    /// `append` calls under way, and how many of them commit on their own thread.
    in_flight: Arc<AtomicUsize>,
    inline: Arc<AtomicUsize>,
}

impl WriterThread {
    /// Runs `f` on the writer's state; `None` if a commit panicked while holding it.
    fn with<T>(&self, f: impl FnOnce(&mut Writer) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut w| f(&mut w))
    }

    fn run(self, rx: flume::Receiver<Msg>) {
        let Some((interval, max_batch)) =
            self.with(|w| (w.opts.checkpoint_interval, w.opts.max_batch))
        else {
            return;
        };
        loop {
            let Some(since) = self.with(|w| w.last_checkpoint_at.elapsed()) else {
                return;
            };
            let wait = interval.saturating_sub(since).max(Duration::from_millis(1));
            let first = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(flume::RecvTimeoutError::Timeout) => {
                    if self.with(|w| w.timed_checkpoint()).is_none() {
                        return;
                    }
                    continue;
                }
                Err(flume::RecvTimeoutError::Disconnected) => {
                    self.with(Writer::close);
                    return;
                }
            };
            let mut batch = Vec::new();
            let mut close = None;
            let mut checkpoint_waiters = Vec::new();
            let mut next = Some(first);
            // Appends under way that are not queued yet are mostly the callers the last commit
            // just answered, preparing their next entry. Taking only what is queued splits
            // steady load into two alternating half-size batches; waiting a little for the
            // rest makes fewer, larger commits. Never when this batch holds every append under
            // way that may still be queued (a lone caller pays nothing; one committing on its
            // own thread never comes here), and never longer than LINGER.
            let mut linger_until = None;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append(p, r) => batch.push((p, r)),
                    Msg::AppendAll(group) => batch.extend(group),
                    Msg::Checkpoint(r) => checkpoint_waiters.push(r),
                    Msg::Close(r) => close = Some(r),
                }
                if close.is_some() || batch.len() >= max_batch {
                    break;
                }
                next = rx.try_recv().ok();
                let queued_later = self
                    .in_flight
                    .load(Ordering::Relaxed)
                    .saturating_sub(self.inline.load(Ordering::Relaxed));
                if next.is_none() && !batch.is_empty() && queued_later > batch.len() {
                    let until = *linger_until.get_or_insert_with(|| Instant::now() + LINGER);
                    next = rx.recv_deadline(until).ok();
                }
            }
            let done = self.with(|w| {
                if !batch.is_empty() {
                    w.commit_batch(batch);
                }
                if !checkpoint_waiters.is_empty() {
                    let result = w.timed_checkpoint();
                    for waiter in checkpoint_waiters {
                        let _ = waiter.send(result.clone());
                    }
                }
                if w.last_checkpoint_at.elapsed() >= interval {
                    let _ = w.timed_checkpoint();
                }
                if close.is_some() {
                    w.close();
                }
            });
            if done.is_none() {
                return;
            }
            if let Some(reply) = close {
                let _ = reply.send(());
                // Anything still queued is refused rather than left waiting forever.
                drop(rx);
                return;
            }
        }
    }
}

/// The head of a chain of `tree.size()` entries ending in `prev`. Without `full`, only its size
/// and checkpoint size are filled in: the hex hash and frontier are made only when the head is
/// stored (see [`HEAD_EVERY`]).
fn chain_head(
    tree: &MerkleAccumulator,
    prev: &Hash,
    checkpoint_size: u64,
    full: bool,
) -> ChainHead {
    ChainHead {
        size: tree.size(),
        last_hash: if full {
            hex::encode(prev)
        } else {
            String::new()
        },
        frontier: if full {
            tree.frontier().iter().map(hex::encode).collect()
        } else {
            Vec::new()
        },
        checkpoint_size,
    }
}

/// The stored value of an entry: its 32-byte hash, then its RFC 8785 JSON, the prepared body
/// with `prev`, `seq` and `ts` (already a JSON string) in their slots.
fn entry_value(p: &Prepared, seq: u64, prev: &Hash, ts: &[u8]) -> (Hash, Vec<u8>) {
    let mut prev_hex = [0u8; 64];
    // Cannot fail: the buffer is exactly twice the hash's length.
    let _ = hex::encode_to_slice(prev, &mut prev_hex);
    let mut seq_buf = itoa::Buffer::new();
    let [at_prev, at_seq, at_ts] = p.slots;
    let body = &p.body;
    let mut out = Vec::with_capacity(32 + body.len() + ts.len() + 120);
    out.extend_from_slice(&[0; 32]);
    out.push(b'{');
    out.extend_from_slice(&body[..at_prev]);
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(&prev_hex);
    out.push(b'"');
    out.extend_from_slice(&body[at_prev..at_seq]);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(seq_buf.format(seq).as_bytes());
    out.extend_from_slice(&body[at_seq..at_ts]);
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(ts);
    out.extend_from_slice(&body[at_ts..]);
    out.push(b'}');
    // Every member was written with a leading comma; the first one must not have it.
    out.remove(33);
    let hash = leaf_hash(&out[32..]);
    out[..32].copy_from_slice(&hash);
    (hash, out)
}

fn decode_hash(s: &str) -> Result<Hash, AuditError> {
    let bytes = hex::decode(s).map_err(|e| AuditError::Corrupt(format!("hash {s:?}: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| AuditError::Corrupt(format!("hash {s:?} is not 32 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&[], &["meta.note".to_string()], &[]).unwrap()
    }

    /// The entry as the format describes it: the redacted event plus the log's own fields, as
    /// RFC 8785 JSON.
    fn reference(fields: Value, kind: &str, seq: u64, prev: &Hash, ts: &str) -> Vec<u8> {
        let mut entry = fields;
        let changed = redactor().redact(&mut entry);
        integers_only(&mut entry);
        entry["kind"] = kind.into();
        entry["prev"] = hex::encode(prev).into();
        entry["seq"] = seq.into();
        entry["ts"] = ts.into();
        if !changed.is_empty() {
            entry["redacted"] = changed.into();
        }
        serde_json_canonicalizer::to_vec(&entry).unwrap()
    }

    #[test]
    fn entry_values_are_the_hash_and_canonical_json_of_the_entry() {
        let ts = "2026-11-25T10:00:00.000Z";
        let prev = [7u8; 32];
        // Names before, between and after the log's own (`kind`, `prev`, `redacted`, `seq`,
        // `ts`), redaction by key, by path and by token shape, a float, no fields at all.
        let cases = [
            serde_json::json!({"action_hash": "ab", "zeta": {"a": 1}}),
            serde_json::json!({"action": {"params": {"password": "hunter2", "n": 1.5}}, "q": "x",
                               "meta": {"note": "secret", "other": 1}, "seq_no": 3, "u": null,
                               "token": "Bearer abcdefghijklmnop", "tz": [1e300]}),
            serde_json::json!({}),
            serde_json::json!({"a": [1, 2], "b": true}),
            serde_json::json!({"zz": "\u{1f}😀\u{e000}", "nested": {"\u{e000}": 1, "😀": 2}}),
        ];
        for (i, fields) in cases.into_iter().enumerate() {
            let seq = 41 + i as u64;
            let p = prepare(&redactor(), AuditEvent::new("decision", fields.clone())).unwrap();
            let (hash, value) = entry_value(&p, seq, &prev, format!("\"{ts}\"").as_bytes());
            let expected = reference(fields, "decision", seq, &prev, ts);
            assert_eq!(
                String::from_utf8_lossy(&value[32..]),
                String::from_utf8_lossy(&expected),
                "case {i}"
            );
            assert_eq!(hash, leaf_hash(&expected));
            assert_eq!(value[..32], hash);
        }
    }

    #[test]
    fn reserved_and_malformed_names_are_refused() {
        for bad in ["seq", "prev", "ts", "kind", "redacted", "Upper", "", "a-b"] {
            let event = AuditEvent::new("decision", serde_json::json!({ bad: 1 }));
            assert_eq!(
                prepare(&redactor(), event).err(),
                Some(AuditError::Field(bad.to_string()))
            );
        }
        let event = AuditEvent::new("Bad kind", serde_json::json!({"a": 1}));
        assert!(prepare(&redactor(), event).is_err());
    }

    #[test]
    fn a_legacy_runs_index_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut runs = txn.open_multimap_table(LEGACY_RUNS).unwrap();
                for (run, seq) in [("r-1", 4), ("r-2", 5), ("r-1", 2), ("r-1", 9)] {
                    runs.insert(run, seq).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let (db, _, _, _) = open_db(&path, super::super::journal::MIN_JOURNAL_BYTES).unwrap();
        let reader = AuditReader::shared(Arc::new(db));
        assert_eq!(reader.run_seqs("r-1").unwrap(), vec![2, 4, 9]);
        assert_eq!(reader.run_seqs("r-2").unwrap(), vec![5]);
        assert!(reader.run_seqs("r-3").unwrap().is_empty());
    }
}
