//! Appending to the audit log: one writer thread owns the redb file and commits many callers'
//! entries in one durable write transaction (group commit). A caller's `append` returns only
//! once its entry is on disk, so the action it records may run; if the write fails, the caller
//! gets the error and nothing is silently dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::AuditError;
use super::checkpoint::{Checkpoint, NoteSigner};
use super::merkle::{Hash, MerkleAccumulator, leaf_hash};
use super::redact::{Redactor, integers_only};
use super::store::{
    AuditReader, BLOBS, CHECKPOINTS, ChainHead, ENTRIES, META, RUNS, ZERO_HASH, split_entry,
    store_err,
};

/// Fields the log itself sets on every entry.
const RESERVED: &[&str] = &["seq", "prev", "ts", "kind", "redacted"];

/// One event to record. Its fields become the entry's top-level fields beside `seq`, `prev`,
/// `ts` and `kind`.
#[derive(Debug, Clone)]
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
/// thread only stitches bytes together and hashes them.
struct Prepared {
    /// Top-level key → RFC 8785 JSON of its value; keys are ASCII so byte order is JCS order.
    fields: BTreeMap<String, Vec<u8>>,
    kind: String,
    run_id: Option<String>,
    blob: Option<(String, Vec<u8>)>,
}

enum Msg {
    Append(Prepared, oneshot::Sender<Result<Receipt, AuditError>>),
    /// Sign a checkpoint now if the tree grew.
    Checkpoint(oneshot::Sender<Result<(), AuditError>>),
    /// Sign a checkpoint now (if the tree grew) and stop.
    Close(oneshot::Sender<()>),
}

/// Handle to the audit log. Cheap to share; the writer thread stops on [`AuditLog::close`].
pub struct AuditLog {
    tx: flume::Sender<Msg>,
    /// Shared with the writer thread; dropped on close so the file is released.
    db: Mutex<Option<Arc<Database>>>,
    health: Arc<AuditHealth>,
    redactor: Arc<Redactor>,
    verifier_key: String,
    origin: String,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditLog {
    /// Open (or create) the log, load (or create) the signing key, and start the writer.
    /// Records a `key` event saying whether the key was created or loaded.
    pub async fn open(opts: AuditOptions, redactor: Redactor) -> Result<AuditLog, AuditError> {
        let (db, head, instance_id) = open_db(&opts.path)?;
        let origin = format!("clawgate/{instance_id}");
        let key_existed = opts.key_path.exists();
        let signer = NoteSigner::load_or_create(&opts.key_path, &origin)
            .map_err(|e| AuditError::Key(e.to_string()))?;
        let verifier_key = signer.verifier_key();
        let health = Arc::new(AuditHealth::default());
        health.size.store(head.size, Ordering::Relaxed);
        let (tx, rx) = flume::bounded(65_536);
        let db = Arc::new(db);
        let writer = Writer::new(
            db.clone(),
            head,
            signer,
            origin.clone(),
            opts,
            health.clone(),
        )?;
        let handle = std::thread::Builder::new()
            .name("clawgate-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Storage(format!("cannot start the audit writer: {e}")))?;
        let log = AuditLog {
            tx,
            db: Mutex::new(Some(db)),
            health,
            redactor: Arc::new(redactor),
            verifier_key: verifier_key.clone(),
            origin,
            writer: Mutex::new(Some(handle)),
        };
        let event = if key_existed { "loaded" } else { "created" };
        log.append(AuditEvent::new(
            "key",
            serde_json::json!({"event": event, "verifier_key": verifier_key}),
        ))
        .await?;
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

    /// Read access to this log while it is being written; `Closed` after [`AuditLog::close`].
    pub fn reader(&self) -> Result<AuditReader, AuditError> {
        let db = self.db.lock().ok().and_then(|db| db.clone());
        db.map(AuditReader::shared).ok_or(AuditError::Closed)
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
        let prepared = self.prepare(event)?;
        let (reply, wait) = oneshot::channel();
        self.tx
            .send_async(Msg::Append(prepared, reply))
            .await
            .map_err(|_| self.closed())?;
        wait.await.map_err(|_| self.closed())?
    }

    fn closed(&self) -> AuditError {
        self.health.record(Err(&AuditError::Closed));
        AuditError::Closed
    }

    fn prepare(&self, event: AuditEvent) -> Result<Prepared, AuditError> {
        let mut fields = BTreeMap::new();
        let mut redacted = Vec::new();
        for (key, mut value) in event.fields {
            if RESERVED.contains(&key.as_str()) || !valid_field_name(&key) {
                return Err(AuditError::Field(key));
            }
            let mut wrapper = Value::Object(Map::from_iter([(key.clone(), value.take())]));
            redacted.extend(self.redactor.redact(&mut wrapper));
            let mut value = match wrapper {
                Value::Object(mut m) => m.remove(&key).unwrap_or(Value::Null),
                other => other,
            };
            integers_only(&mut value);
            let bytes = serde_json_canonicalizer::to_vec(&value)
                .map_err(|e| AuditError::Field(format!("{key}: {e}")))?;
            fields.insert(key, bytes);
        }
        if !redacted.is_empty() {
            let bytes = serde_json_canonicalizer::to_vec(&redacted)
                .map_err(|e| AuditError::Field(format!("redacted: {e}")))?;
            fields.insert("redacted".into(), bytes);
        }
        if !valid_field_name(&event.kind) {
            return Err(AuditError::Field(event.kind));
        }
        Ok(Prepared {
            fields,
            kind: event.kind,
            run_id: event.run_id,
            blob: event.blob,
        })
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
        if let Ok(mut db) = self.db.lock() {
            db.take();
        }
        self.health.record(Err(&AuditError::Closed));
    }
}

fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Open the database as the single writer, creating the tables and instance id on first use,
/// and check that the stored head matches the last entry.
fn open_db(path: &Path) -> Result<(Database, ChainHead, String), AuditError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(store_err)?;
    }
    let db = redb::Builder::new()
        .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .create(path)
        .map_err(|e| AuditError::Storage(format!("cannot open {}: {e}", path.display())))?;
    let txn = db.begin_write().map_err(store_err)?;
    let (head, instance_id) = {
        let mut meta = txn.open_table(META).map_err(store_err)?;
        let entries = txn.open_table(ENTRIES).map_err(store_err)?;
        txn.open_table(CHECKPOINTS).map_err(store_err)?;
        txn.open_table(BLOBS).map_err(store_err)?;
        txn.open_multimap_table(RUNS).map_err(store_err)?;
        let instance_id = match meta.get("instance_id").map_err(store_err)? {
            Some(v) => String::from_utf8_lossy(v.value()).into_owned(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        meta.insert("instance_id", instance_id.as_bytes())
            .map_err(store_err)?;
        let head: ChainHead = match meta.get("head").map_err(store_err)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(store_err)?,
            None => ChainHead {
                last_hash: ZERO_HASH.into(),
                ..ChainHead::default()
            },
        };
        let last = entries.last().map_err(store_err)?;
        let consistent = match &last {
            None => head.size == 0,
            Some((k, v)) => {
                k.value() + 1 == head.size
                    && split_entry(v.value()).map(|(h, _)| hex::encode(h))
                        == Some(head.last_hash.clone())
            }
        };
        if !consistent {
            return Err(AuditError::Corrupt(format!(
                "{}: the chain head does not match the last entry; run `clawgate audit verify --db {}`",
                path.display(),
                path.display()
            )));
        }
        (head, instance_id)
    };
    txn.commit().map_err(store_err)?;
    Ok((db, head, instance_id))
}

struct Writer {
    db: Arc<Database>,
    head: ChainHead,
    prev: Hash,
    tree: MerkleAccumulator,
    signer: NoteSigner,
    origin: String,
    opts: AuditOptions,
    health: Arc<AuditHealth>,
    last_checkpoint_at: Instant,
}

impl Writer {
    fn new(
        db: Arc<Database>,
        head: ChainHead,
        signer: NoteSigner,
        origin: String,
        opts: AuditOptions,
        health: Arc<AuditHealth>,
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
            db,
            head,
            prev,
            tree,
            signer,
            origin,
            opts,
            health,
            last_checkpoint_at: Instant::now(),
        })
    }

    fn run(mut self, rx: flume::Receiver<Msg>) {
        loop {
            let wait = self
                .opts
                .checkpoint_interval
                .saturating_sub(self.last_checkpoint_at.elapsed())
                .max(Duration::from_millis(1));
            let first = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(flume::RecvTimeoutError::Timeout) => {
                    let _ = self.timed_checkpoint();
                    continue;
                }
                Err(flume::RecvTimeoutError::Disconnected) => {
                    self.final_checkpoint();
                    return;
                }
            };
            let mut batch = Vec::new();
            let mut close = None;
            let mut checkpoint_waiters = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append(p, r) => batch.push((p, r)),
                    Msg::Checkpoint(r) => checkpoint_waiters.push(r),
                    Msg::Close(r) => close = Some(r),
                }
                if close.is_none() && batch.len() < self.opts.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit_batch(batch);
            }
            if !checkpoint_waiters.is_empty() {
                let result = self.timed_checkpoint();
                for w in checkpoint_waiters {
                    let _ = w.send(result.clone());
                }
            }
            if self.last_checkpoint_at.elapsed() >= self.opts.checkpoint_interval {
                let _ = self.timed_checkpoint();
            }
            if let Some(reply) = close {
                self.final_checkpoint();
                let _ = reply.send(());
                // Anything still queued is refused rather than left waiting forever.
                drop(rx);
                return;
            }
        }
    }

    fn commit_batch(
        &mut self,
        batch: Vec<(Prepared, oneshot::Sender<Result<Receipt, AuditError>>)>,
    ) {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut tree = self.tree.clone();
        let mut prev = self.prev;
        let mut size = self.head.size;
        let mut rows = Vec::with_capacity(batch.len());
        let mut receipts = Vec::with_capacity(batch.len());
        for (p, _) in &batch {
            let bytes = entry_bytes(p, size, &prev, &ts);
            let hash = leaf_hash(&bytes);
            tree.push(hash);
            let mut value = Vec::with_capacity(32 + bytes.len());
            value.extend_from_slice(&hash);
            value.extend_from_slice(&bytes);
            rows.push((size, value));
            receipts.push(Receipt {
                seq: size,
                hash: hex::encode(hash),
            });
            prev = hash;
            size += 1;
        }
        let checkpoint_due = size - self.head.checkpoint_size >= self.opts.checkpoint_every;
        let head = ChainHead {
            size,
            last_hash: hex::encode(prev),
            frontier: tree.frontier().iter().map(hex::encode).collect(),
            checkpoint_size: if checkpoint_due {
                size
            } else {
                self.head.checkpoint_size
            },
        };
        let result = checkpoint_due
            .then(|| self.sign(&tree))
            .transpose()
            .and_then(|note| self.write(&batch, &rows, &head, note.as_deref().map(|n| (size, n))));
        self.health.record(result.as_ref().map(|_| size));
        match result {
            Ok(()) => {
                self.tree = tree;
                self.prev = prev;
                self.head = head;
                if checkpoint_due {
                    self.last_checkpoint_at = Instant::now();
                }
                for ((_, reply), receipt) in batch.into_iter().zip(receipts) {
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = batch.len(), "audit write failed; the actions are denied");
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn write(
        &self,
        batch: &[(Prepared, oneshot::Sender<Result<Receipt, AuditError>>)],
        rows: &[(u64, Vec<u8>)],
        head: &ChainHead,
        checkpoint: Option<(u64, &str)>,
    ) -> Result<(), AuditError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(store_err)?;
            let mut runs = txn.open_multimap_table(RUNS).map_err(store_err)?;
            let mut blobs = txn.open_table(BLOBS).map_err(store_err)?;
            for ((p, _), (seq, value)) in batch.iter().zip(rows) {
                entries.insert(*seq, value.as_slice()).map_err(store_err)?;
                if let Some(run) = &p.run_id {
                    runs.insert(run.as_str(), *seq).map_err(store_err)?;
                }
                if let Some((hash, body)) = &p.blob {
                    blobs
                        .insert(hash.as_str(), body.as_slice())
                        .map_err(store_err)?;
                }
            }
            let mut meta = txn.open_table(META).map_err(store_err)?;
            let head_json = serde_json::to_vec(head).map_err(store_err)?;
            meta.insert("head", head_json.as_slice())
                .map_err(store_err)?;
            if let Some((size, note)) = checkpoint {
                let mut cps = txn.open_table(CHECKPOINTS).map_err(store_err)?;
                cps.insert(size, note).map_err(store_err)?;
            }
        }
        txn.commit().map_err(store_err)
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

    /// A checkpoint over everything so far, if the tree grew since the last one.
    fn timed_checkpoint(&mut self) -> Result<(), AuditError> {
        self.last_checkpoint_at = Instant::now();
        if self.head.size == self.head.checkpoint_size {
            return Ok(());
        }
        let note = self.sign(&self.tree)?;
        let head = ChainHead {
            checkpoint_size: self.head.size,
            ..self.head.clone()
        };
        match self.write(&[], &[], &head, Some((head.size, note.as_str()))) {
            Ok(()) => {
                self.head = head;
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

/// `{"kind":…,"prev":…,"seq":…,"ts":…, …fields}` in RFC 8785 key order.
fn entry_bytes(p: &Prepared, seq: u64, prev: &Hash, ts: &str) -> Vec<u8> {
    let seq_s = seq.to_string();
    let prev_s = format!("\"{}\"", hex::encode(prev));
    let ts_s = format!("\"{ts}\"");
    let kind_s = format!("\"{}\"", p.kind);
    let mut all: Vec<(&str, &[u8])> = Vec::with_capacity(p.fields.len() + 4);
    all.push(("kind", kind_s.as_bytes()));
    all.push(("prev", prev_s.as_bytes()));
    all.push(("seq", seq_s.as_bytes()));
    all.push(("ts", ts_s.as_bytes()));
    all.extend(p.fields.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    all.sort_by(|a, b| a.0.cmp(b.0));
    let len = all
        .iter()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum::<usize>()
        + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'{');
    for (i, (k, v)) in all.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(v);
    }
    out.push(b'}');
    out
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

    #[test]
    fn entry_bytes_are_the_canonical_json_of_the_entry() {
        let mut fields = BTreeMap::new();
        fields.insert("action_hash".to_string(), b"\"ab\"".to_vec());
        fields.insert("zeta".to_string(), b"{\"a\":1}".to_vec());
        let p = Prepared {
            fields,
            kind: "decision".into(),
            run_id: None,
            blob: None,
        };
        let bytes = entry_bytes(&p, 7, &[0u8; 32], "2026-11-25T10:00:00.000Z");
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json_canonicalizer::to_vec(&value).unwrap(), bytes);
        assert_eq!(value["seq"], 7);
        assert_eq!(value["kind"], "decision");
    }
}
