//! Verifying the log: every entry's hash, every `prev` link, the seq sequence, and every
//! checkpoint's Merkle root and signature. The same verifier reads a database file or an
//! export stream, so an auditor's check and the operator's check are one piece of code.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::AuditError;
use super::checkpoint::{self, NoteVerifier};
use super::merkle::{Hash, MerkleAccumulator, leaf_hash};
use super::store::AuditReader;

/// The first thing found wrong, naming the seq where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{what}", seq.map(|s| format!("seq {s}: ")).unwrap_or_default())]
pub struct Problem {
    pub seq: Option<u64>,
    pub what: String,
}

fn problem(seq: impl Into<Option<u64>>, what: impl Into<String>) -> Problem {
    Problem {
        seq: seq.into(),
        what: what.into(),
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub checkpoints: u64,
    pub root: String,
    /// Size of the newest checkpoint verified.
    pub checkpoint_size: u64,
}

#[derive(Deserialize)]
struct Links<'a> {
    seq: u64,
    /// Borrowed: verify reads millions of these, and hex has nothing to unescape.
    #[serde(borrow)]
    prev: std::borrow::Cow<'a, str>,
}

/// One entry with its leaf hash computed — the order-independent half of the work, which
/// [`verify_db`] does on a second thread while the chain is checked in order.
pub struct EntryDigest<'a> {
    key: u64,
    json: std::borrow::Cow<'a, [u8]>,
    hash: Hash,
    /// The hash recorded with the entry (if any) equals the one computed.
    recorded_ok: bool,
}

impl<'a> EntryDigest<'a> {
    pub fn compute(
        key: u64,
        recorded: Option<Hash>,
        json: std::borrow::Cow<'a, [u8]>,
    ) -> EntryDigest<'a> {
        let hash = leaf_hash(&json);
        EntryDigest {
            key,
            recorded_ok: recorded.is_none_or(|r| r == hash),
            hash,
            json,
        }
    }
}

/// Streaming verifier: feed entries in order, and checkpoints whenever they are known.
pub struct ChainVerifier {
    verifier: NoteVerifier,
    next_seq: u64,
    prev: Hash,
    tree: MerkleAccumulator,
    /// Checkpoints whose tree size has not been reached yet.
    waiting: BTreeMap<u64, String>,
    checkpoints: u64,
    checkpoint_size: u64,
    origin: Option<String>,
}

impl ChainVerifier {
    pub fn new(verifier: NoteVerifier) -> ChainVerifier {
        ChainVerifier {
            verifier,
            next_seq: 0,
            prev: [0u8; 32],
            tree: MerkleAccumulator::new(),
            waiting: BTreeMap::new(),
            checkpoints: 0,
            checkpoint_size: 0,
            origin: None,
        }
    }

    /// Register a signed checkpoint note; it is checked when the tree reaches its size.
    pub fn add_checkpoint(&mut self, note: String) -> Result<(), Problem> {
        let cp = checkpoint::open(&note, &self.verifier).map_err(|e| {
            problem(
                None,
                format!("checkpoint not signed by the pinned key: {e}"),
            )
        })?;
        if cp.size < self.tree.size() {
            return Err(problem(
                None,
                format!(
                    "checkpoint for tree size {} arrived after that size was passed",
                    cp.size
                ),
            ));
        }
        self.waiting.insert(cp.size, note);
        self.check_due_checkpoints()
    }

    /// Check one entry: `key` is where it was stored (its seq in the database, or its line
    /// position in an export), `recorded` the hash stored or exported with it, `json` its
    /// canonical bytes.
    pub fn push(&mut self, key: u64, recorded: Option<Hash>, json: &[u8]) -> Result<(), Problem> {
        self.push_digest(EntryDigest::compute(key, recorded, json.into()))
    }

    /// [`ChainVerifier::push`] for an entry whose leaf hash was computed already (possibly
    /// on another thread): the seq sequence, the entry's own seq, its recorded hash, the
    /// `prev` link, the Merkle tree and due checkpoints, in that order.
    pub fn push_digest(&mut self, d: EntryDigest<'_>) -> Result<(), Problem> {
        let key = d.key;
        if key != self.next_seq {
            return Err(problem(
                self.next_seq,
                if key > self.next_seq {
                    format!("entry missing (the next entry present is seq {key}): deleted or lost")
                } else {
                    format!("entry stored at position {key} out of order")
                },
            ));
        }
        let links: Links = serde_json::from_slice(&d.json)
            .map_err(|e| problem(key, format!("entry is not valid JSON with seq/prev: {e}")))?;
        if links.seq != key {
            return Err(problem(
                key,
                format!(
                    "entry says seq {} but sits at position {key}: entries were moved or swapped",
                    links.seq
                ),
            ));
        }
        if !d.recorded_ok {
            return Err(problem(
                key,
                "entry content does not match its recorded hash: it was altered after writing",
            ));
        }
        let hash = d.hash;
        let mut prev = [0u8; 32];
        // Lowercase only, as written: the same bytes the Python verifier compares as text.
        let prev_ok = !links.prev.bytes().any(|b| b.is_ascii_uppercase())
            && hex::decode_to_slice(links.prev.as_bytes(), &mut prev).is_ok()
            && prev == self.prev;
        if !prev_ok {
            return Err(problem(
                key,
                match key.checked_sub(1) {
                    Some(before) => format!(
                        "prev {} does not match the hash of seq {before} ({}): the chain is broken",
                        links.prev,
                        hex::encode(self.prev)
                    ),
                    None => format!(
                        "prev of the first entry must be 64 zeros, not {}",
                        links.prev
                    ),
                },
            ));
        }
        self.tree.push(hash);
        self.prev = hash;
        self.next_seq += 1;
        self.check_due_checkpoints()
    }

    fn check_due_checkpoints(&mut self) -> Result<(), Problem> {
        let size = self.tree.size();
        let Some(note) = self.waiting.remove(&size) else {
            return Ok(());
        };
        let cp = checkpoint::open(&note, &self.verifier)
            .map_err(|e| problem(None, format!("checkpoint at size {size}: {e}")))?;
        let last = size.checked_sub(1);
        if cp.root != self.tree.root() {
            return Err(problem(
                last,
                format!(
                    "the Merkle root of the first {size} entries does not match the signed checkpoint for that size"
                ),
            ));
        }
        match &self.origin {
            Some(o) if *o != cp.origin => {
                return Err(problem(
                    last,
                    format!(
                        "checkpoint origin {:?} differs from earlier checkpoints ({o:?})",
                        cp.origin
                    ),
                ));
            }
            _ => self.origin = Some(cp.origin),
        }
        self.checkpoints += 1;
        self.checkpoint_size = size;
        Ok(())
    }

    /// Finish: every checkpoint must have been reached (otherwise the log was truncated).
    pub fn finish(self) -> Result<Summary, Problem> {
        if let Some((size, _)) = self.waiting.iter().next() {
            return Err(problem(
                self.next_seq,
                format!(
                    "log ends after {} entries but a signed checkpoint covers {size}: the tail was truncated",
                    self.next_seq
                ),
            ));
        }
        Ok(Summary {
            entries: self.next_seq,
            checkpoints: self.checkpoints,
            root: hex::encode(self.tree.root()),
            checkpoint_size: self.checkpoint_size,
        })
    }

    pub fn entries_seen(&self) -> u64 {
        self.next_seq
    }
}

/// Verify a database file: every entry, every checkpoint, and that the entries reach the stored
/// chain head (a tail removed below it shows even without a checkpoint over it). The head is
/// stored with each checkpoint and every 1,024 entries, so after a crash it may be behind the
/// last entry; the sidecar brings it up to date when it opens the file again.
/// `progress(done, total)` is called every few thousand entries.
pub fn verify_db(
    db: &std::path::Path,
    verifier: NoteVerifier,
    mut progress: impl FnMut(u64, u64),
) -> Result<Result<Summary, Problem>, AuditError> {
    let reader = AuditReader::open(db)?;
    let head = reader.head()?;
    let mut chain = ChainVerifier::new(verifier);
    for (size, note) in reader.checkpoints()? {
        if let Err(p) = chain.add_checkpoint(note) {
            return Ok(Err(problem(size.checked_sub(1), p.what)));
        }
    }
    // Two stages on two threads: reading and hashing entries (order-independent) beside
    // parsing them and the chain, Merkle and checkpoint checks (in order). Batches keep the channel
    // cheap; the reader stops as soon as the checker has found a problem.
    const BATCH: usize = 1024;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut found = None;
    let read = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<EntryDigest<'static>>>(8);
        let (reader, stop) = (&reader, &stop);
        let reading = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let result = reader.for_each_entry(0, None, |seq, hash, json| {
                batch.push(EntryDigest::compute(seq, hash, json.to_vec().into()));
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(full).is_err() || stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return Ok(false);
                    }
                }
                Ok(true)
            });
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            result
        });
        'batches: for batch in rx {
            for d in batch {
                let seq = d.key;
                if let Err(p) = chain.push_digest(d) {
                    found = Some(p);
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    break 'batches;
                }
                if seq % 4096 == 0 {
                    progress(seq, head.size);
                }
            }
        }
        reading.join()
    });
    match read {
        Ok(result) => result?,
        Err(_) => {
            return Err(AuditError::Storage(
                "the verify reader thread panicked".into(),
            ));
        }
    }
    if let Some(p) = found {
        return Ok(Err(p));
    }
    let seen = chain.entries_seen();
    let summary = match chain.finish() {
        Ok(s) => s,
        Err(p) => return Ok(Err(p)),
    };
    if head.size > seen {
        return Ok(Err(problem(
            seen,
            format!(
                "the chain head records {} entries but the log holds {seen}: entries were removed from the tail",
                head.size
            ),
        )));
    }
    progress(seen, seen);
    Ok(Ok(summary))
}
