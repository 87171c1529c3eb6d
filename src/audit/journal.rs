//! The audit journal (`audit.journal` beside `audit.redb`): where an entry becomes durable.
//!
//! A commit writes its entries here as records, with one `pwrite` at the journal's write
//! position and one `fdatasync`, and its `append`s return; redb receives the same entries
//! afterwards, off the caller's path, in commits that do not sync, and a durable redb commit
//! now and then lets the journal's space be reused. The file has a fixed size, written once
//! with zeros when it is created, so that a sync never has to commit file-system metadata (a
//! file that grows, or extents allocated but never written, make ext4 commit its own journal on
//! every `fdatasync`). Its first 4 KiB are a header naming the log it belongs to; the rest is a
//! ring of records. The byte format is in `docs/audit-format.md` ("The journal").

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuditError;
use super::merkle::{Hash, leaf_hash};
use super::store::split_entry;

/// Bytes before the ring: the header block.
pub const HEADER_BYTES: u64 = 4096;
/// The ring's size for a journal created without another setting.
pub const DEFAULT_JOURNAL_BYTES: u64 = 4 << 20;
/// The smallest ring allowed (a batch that does not fit goes to redb directly).
pub const MIN_JOURNAL_BYTES: u64 = 64 << 10;

const FILE_MAGIC: &[u8; 8] = b"CGAJRNL1";
const RECORD_MAGIC: &[u8; 4] = b"CGJ1";
/// magic, flags, body length, reserved, seq, checksum.
const RECORD_HEAD: usize = 32;

/// The last record of a commit: a commit's records are replayed all or none.
const F_END: u32 = 1;
const F_RUN: u32 = 2;
const F_BLOB: u32 = 4;
const F_CHECKPOINT: u32 = 8;

/// `<dir>/audit.journal` for `<dir>/audit.redb`.
pub fn journal_path(db: &Path) -> PathBuf {
    db.with_extension("journal")
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> AuditError {
    AuditError::Storage(format!("audit journal {}: {what}: {e}", path.display()))
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> AuditError {
    AuditError::Corrupt(format!("audit journal {}: {why}", path.display()))
}

/// One entry as the journal holds it, with what redb stores beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// The last record of its commit.
    pub end: bool,
    /// The stored entry value: 32-byte hash, then the entry's JCS bytes.
    pub value: Vec<u8>,
    pub run_id: Option<String>,
    /// (hex SHA-256, body) for the blob table.
    pub blob: Option<(String, Vec<u8>)>,
    /// (tree size, signed note) for the checkpoint table.
    pub checkpoint: Option<(u64, String)>,
}

/// Borrowed fields of one record, to encode without copying.
pub struct RecordRef<'a> {
    pub seq: u64,
    pub end: bool,
    pub value: &'a [u8],
    pub run_id: Option<&'a str>,
    pub blob: Option<(&'a str, &'a [u8])>,
    pub checkpoint: Option<(u64, &'a str)>,
}

fn checksum(head: &[u8], body: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(&head[..24]);
    h.update(body);
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Append one record to `out`. Fields longer than their length prefix are refused.
pub fn encode(r: &RecordRef, out: &mut Vec<u8>) -> Result<(), AuditError> {
    let too_long = |what: &str| AuditError::Storage(format!("audit journal: {what} is too long"));
    let start = out.len();
    out.resize(start + RECORD_HEAD, 0);
    let mut flags = 0;
    if r.end {
        flags |= F_END;
    }
    let len32 = |n: usize, what: &str| u32::try_from(n).map_err(|_| too_long(what));
    out.extend_from_slice(&len32(r.value.len(), "an entry")?.to_le_bytes());
    out.extend_from_slice(r.value);
    if let Some(run) = r.run_id {
        flags |= F_RUN;
        let n = u16::try_from(run.len()).map_err(|_| too_long("a run id"))?;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(run.as_bytes());
    }
    if let Some((hash, body)) = r.blob {
        flags |= F_BLOB;
        let n = u8::try_from(hash.len()).map_err(|_| too_long("a blob hash"))?;
        out.push(n);
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(&len32(body.len(), "a blob")?.to_le_bytes());
        out.extend_from_slice(body);
    }
    if let Some((size, note)) = r.checkpoint {
        flags |= F_CHECKPOINT;
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&len32(note.len(), "a checkpoint")?.to_le_bytes());
        out.extend_from_slice(note.as_bytes());
    }
    let body_len = len32(out.len() - start - RECORD_HEAD, "a record")?;
    let (head, body) = out[start..].split_at_mut(RECORD_HEAD);
    head[..4].copy_from_slice(RECORD_MAGIC);
    head[4..8].copy_from_slice(&flags.to_le_bytes());
    head[8..12].copy_from_slice(&body_len.to_le_bytes());
    head[16..24].copy_from_slice(&r.seq.to_le_bytes());
    let sum = checksum(head, body);
    head[24..32].copy_from_slice(&sum);
    Ok(())
}

/// A little reader over a record's body; `None` when it runs out.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The record at the start of `buf` and its length, or `None` if there is no whole, intact
/// record there (zeros, a torn write, the bytes of another record's middle).
pub fn decode(buf: &[u8]) -> Option<(Record, usize)> {
    let head = buf.get(..RECORD_HEAD)?;
    if &head[..4] != RECORD_MAGIC {
        return None;
    }
    let flags = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let body_len = u32::from_le_bytes(head[8..12].try_into().ok()?) as usize;
    let seq = u64::from_le_bytes(head[16..24].try_into().ok()?);
    let body = buf.get(RECORD_HEAD..RECORD_HEAD.checked_add(body_len)?)?;
    if checksum(head, body) != head[24..32] {
        return None;
    }
    let mut c = Cursor(body);
    let n = c.u32()?;
    let value = c.take(n)?.to_vec();
    let run_id = if flags & F_RUN != 0 {
        let n = c.u16()? as usize;
        Some(c.string(n)?)
    } else {
        None
    };
    let blob = if flags & F_BLOB != 0 {
        let n = c.u8()? as usize;
        let hash = c.string(n)?;
        let n = c.u32()?;
        Some((hash, c.take(n)?.to_vec()))
    } else {
        None
    };
    let checkpoint = if flags & F_CHECKPOINT != 0 {
        let size = c.u64()?;
        let n = c.u32()?;
        Some((size, c.string(n)?))
    } else {
        None
    };
    if !c.0.is_empty() {
        return None;
    }
    let record = Record {
        seq,
        end: flags & F_END != 0,
        value,
        run_id,
        blob,
        checkpoint,
    };
    Some((record, RECORD_HEAD + body_len))
}

/// Where replay starts: stored in redb's `meta` table (`journal`) by every durable redb commit
/// that the journal is behind of, and by the opening transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// Logical journal position of the first record redb may not hold durably.
    pub pos: u64,
    /// Its seq: the entry count of redb's durable state when the pointer was written.
    pub seq: u64,
    /// Written by a clean close: redb holds every entry, the journal may be missing.
    pub clean: bool,
}

/// The journal's header block: magic, ring size, the log's instance id.
fn header(cap: u64, instance_id: &str) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_BYTES as usize];
    h[..8].copy_from_slice(FILE_MAGIC);
    h[8..16].copy_from_slice(&cap.to_le_bytes());
    let id = instance_id.as_bytes();
    let n = id.len().min(HEADER_BYTES as usize - 18);
    h[16..18].copy_from_slice(&(n as u16).to_le_bytes());
    h[18..18 + n].copy_from_slice(&id[..n]);
    h
}

fn parse_header(path: &Path, h: &[u8]) -> Result<(u64, String), AuditError> {
    if h.len() < HEADER_BYTES as usize || &h[..8] != FILE_MAGIC {
        return Err(corrupt(path, "not a clawgate audit journal (bad header)"));
    }
    let cap = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
    let n = u16::from_le_bytes(h[16..18].try_into().unwrap_or_default()) as usize;
    let id = h
        .get(18..18 + n)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| corrupt(path, "bad instance id in the header"))?;
    if cap < MIN_JOURNAL_BYTES {
        return Err(corrupt(path, format!("ring size {cap} in the header")));
    }
    Ok((cap, id.to_string()))
}

/// A journal file read whole, for replay.
pub struct JournalFile {
    pub cap: u64,
    pub instance_id: String,
    pub ring: Vec<u8>,
}

impl JournalFile {
    /// `None` if there is no file.
    pub fn read(path: &Path) -> Result<Option<JournalFile>, AuditError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path, "cannot read", e)),
        };
        let (cap, instance_id) = parse_header(path, &bytes)?;
        if bytes.len() as u64 != HEADER_BYTES + cap {
            return Err(corrupt(
                path,
                format!(
                    "{} bytes long, its header says {}",
                    bytes.len(),
                    HEADER_BYTES + cap
                ),
            ));
        }
        let ring = bytes[HEADER_BYTES as usize..].to_vec();
        Ok(Some(JournalFile {
            cap,
            instance_id,
            ring,
        }))
    }

    /// The journal must belong to the log whose instance id is `instance_id`.
    pub fn check_instance(&self, path: &Path, instance_id: &str) -> Result<(), AuditError> {
        if self.instance_id != instance_id {
            return Err(corrupt(
                path,
                format!(
                    "it belongs to the audit log of instance {}, but the log beside it is instance {instance_id}; \
                     if the log was replaced on purpose, move the old journal away",
                    self.instance_id
                ),
            ));
        }
        Ok(())
    }
}

/// What replay found beyond redb's entries.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records of whole commits, in order, whose seqs redb does not hold yet.
    pub records: Vec<Record>,
    /// The logical position after the last whole commit read (where writing continues).
    pub end: u64,
}

#[derive(Deserialize)]
struct Links {
    prev: String,
    seq: u64,
}

/// Walk the ring from `pointer`: records must follow on (the next seq; a commit that did not
/// fit before the ring's end starts at the next lap), each intact (its checksum), each entry's
/// hash that of its bytes and its `prev` the hash of the entry before. Records redb already
/// holds (`seq < next`) must carry the hash redb has (`held(seq)`): a journal that says
/// otherwise is refused. The first record that is not intact, not next, or does not chain on
/// ends the walk (a commit that was torn, or a stale record of an earlier lap: neither was
/// acknowledged), and so does a commit whose last record is missing.
pub fn replay(
    path: &Path,
    ring: &[u8],
    pointer: Pointer,
    next: u64,
    held: impl Fn(u64) -> Result<Option<Hash>, AuditError>,
) -> Result<Replay, AuditError> {
    let cap = ring.len() as u64;
    let mut out = Replay {
        records: Vec::new(),
        end: pointer.pos,
    };
    if cap == 0 {
        return Ok(out);
    }
    if pointer.seq > next {
        return Err(corrupt(
            path,
            format!(
                "the log records that its first {} entries were durable, but it holds {next}",
                pointer.seq
            ),
        ));
    }
    let mut prev: Hash = match pointer.seq.checked_sub(1) {
        None => [0; 32],
        Some(last) => {
            held(last)?.ok_or_else(|| corrupt(path, format!("entry {last} is missing")))?
        }
    };
    let mut pos = pointer.pos;
    let mut expect = pointer.seq;
    let mut group: Vec<Record> = Vec::new();
    let mut wrapped = false;
    loop {
        let at = (pos % cap) as usize;
        let found = decode(&ring[at..]).filter(|(r, _)| r.seq == expect);
        let Some((record, len)) = found else {
            if !wrapped && at != 0 {
                pos += cap - at as u64;
                wrapped = true;
                continue;
            }
            break;
        };
        wrapped = false;
        let Some((hash, json)) = split_entry(&record.value) else {
            break;
        };
        if leaf_hash(json) != hash {
            break;
        }
        let links: Option<Links> = serde_json::from_slice(json).ok();
        let chains = links.is_some_and(|l| l.seq == expect && l.prev == hex::encode(prev));
        if record.seq < next {
            let stored = held(record.seq)?;
            if stored != Some(hash) {
                return Err(corrupt(
                    path,
                    format!(
                        "its record of entry {} has hash {}, but the log holds {}; refusing to replay over it",
                        record.seq,
                        hex::encode(hash),
                        stored.map_or("nothing".into(), hex::encode)
                    ),
                ));
            }
        } else if !chains {
            break;
        }
        prev = hash;
        expect += 1;
        pos += len as u64;
        let end = record.end;
        if record.seq >= next {
            group.push(record);
        }
        if end {
            out.records.append(&mut group);
            out.end = pos;
        }
    }
    Ok(out)
}

/// The open journal, for writing.
pub struct Journal {
    file: File,
    path: PathBuf,
    cap: u64,
    /// Logical position of the next record (the file offset is `HEADER_BYTES + pos % cap`).
    pos: u64,
}

impl Journal {
    /// Open the journal for writing at `pos`, creating it (`cap` bytes of ring, written with
    /// zeros and synced, the directory synced too) if there is none.
    pub fn open(path: &Path, cap: u64, instance_id: &str, pos: u64) -> Result<Journal, AuditError> {
        if let Some(existing) = JournalFile::read_header(path)? {
            existing.check_instance(path, instance_id)?;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| io_err(path, "cannot open", e))?;
            return Ok(Journal {
                file,
                path: path.to_path_buf(),
                cap: existing.cap,
                pos,
            });
        }
        let cap = cap.max(MIN_JOURNAL_BYTES);
        let tmp = path.with_extension("journal.new");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, "cannot create", e))?;
        let write = || -> std::io::Result<()> {
            file.write_all_at(&header(cap, instance_id), 0)?;
            let zeros = vec![0u8; (1 << 20).min(cap) as usize];
            let mut at = 0;
            while at < cap {
                let n = zeros.len().min((cap - at) as usize);
                file.write_all_at(&zeros[..n], HEADER_BYTES + at)?;
                at += n as u64;
            }
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| io_err(path, "cannot create", e))?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            cap,
            pos: 0,
        })
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// The logical position of the next record.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Where `len` bytes would be written: at the write position, or at the next lap's start
    /// if they do not fit before the ring's end. `None` if they never fit.
    pub fn place(&self, len: usize) -> Option<u64> {
        let len = len as u64;
        if len > self.cap {
            return None;
        }
        let at = self.pos % self.cap;
        Some(if at + len > self.cap {
            self.pos + (self.cap - at)
        } else {
            self.pos
        })
    }

    /// Write `bytes` at logical position `at` (from [`Journal::place`]) with one `pwrite`, make
    /// them durable with one `fdatasync`, and move the write position past them.
    pub fn write(&mut self, at: u64, bytes: &[u8]) -> Result<(), AuditError> {
        let offset = HEADER_BYTES + at % self.cap;
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| io_err(&self.path, "write failed", e))?;
        self.file
            .sync_data()
            .map_err(|e| io_err(&self.path, "fdatasync failed", e))?;
        self.pos = at + bytes.len() as u64;
        Ok(())
    }
}

impl JournalFile {
    /// The header of an existing journal (ring size, instance), without its ring.
    fn read_header(path: &Path) -> Result<Option<JournalFile>, AuditError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path, "cannot open", e)),
        };
        let mut h = vec![0u8; HEADER_BYTES as usize];
        file.read_exact_at(&mut h, 0)
            .map_err(|e| io_err(path, "cannot read its header", e))?;
        let (cap, instance_id) = parse_header(path, &h)?;
        let len = file
            .metadata()
            .map_err(|e| io_err(path, "cannot stat", e))?
            .len();
        if len != HEADER_BYTES + cap {
            return Err(corrupt(
                path,
                format!("{len} bytes long, its header says {}", HEADER_BYTES + cap),
            ));
        }
        Ok(Some(JournalFile {
            cap,
            instance_id,
            ring: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/x/audit.journal";

    /// A stored entry value chaining on `prev`.
    fn value(seq: u64, prev: &Hash) -> (Hash, Vec<u8>) {
        let json = format!(
            "{{\"kind\":\"decision\",\"prev\":\"{}\",\"seq\":{seq},\"ts\":\"t\"}}",
            hex::encode(prev)
        );
        let hash = leaf_hash(json.as_bytes());
        let mut v = hash.to_vec();
        v.extend_from_slice(json.as_bytes());
        (hash, v)
    }

    /// Records for seqs `from..to`, chained on from `prev`, commits of `group` records.
    fn chain(from: u64, to: u64, mut prev: Hash, group: u64) -> (Vec<Record>, Vec<Hash>) {
        let mut out = Vec::new();
        let mut hashes = Vec::new();
        for seq in from..to {
            let (h, v) = value(seq, &prev);
            out.push(Record {
                seq,
                end: (seq + 1 - from).is_multiple_of(group) || seq + 1 == to,
                value: v,
                run_id: (seq % 2 == 0).then(|| format!("run-{seq}")),
                blob: (seq % 3 == 0).then(|| ("ab".repeat(32), vec![seq as u8; 100])),
                checkpoint: (seq % 5 == 0).then(|| (seq + 1, format!("note {seq}"))),
            });
            hashes.push(h);
            prev = h;
        }
        (out, hashes)
    }

    fn enc(r: &Record, out: &mut Vec<u8>) {
        encode(
            &RecordRef {
                seq: r.seq,
                end: r.end,
                value: &r.value,
                run_id: r.run_id.as_deref(),
                blob: r.blob.as_ref().map(|(h, b)| (h.as_str(), b.as_slice())),
                checkpoint: r.checkpoint.as_ref().map(|(s, n)| (*s, n.as_str())),
            },
            out,
        )
        .unwrap();
    }

    /// A ring of `cap` bytes with `records` written from logical `pos` as the writer places
    /// them (each commit at the next lap when it does not fit).
    fn ring_with(ring: &mut [u8], mut pos: u64, records: &[Record]) -> u64 {
        let cap = ring.len() as u64;
        let mut batch = Vec::new();
        for r in records {
            enc(r, &mut batch);
            if r.end {
                let at = pos % cap;
                if at + batch.len() as u64 > cap {
                    pos += cap - at;
                }
                let at = (pos % cap) as usize;
                ring[at..at + batch.len()].copy_from_slice(&batch);
                pos += batch.len() as u64;
                batch.clear();
            }
        }
        pos
    }

    /// Where record number `n` (from 0) of a ring written from its start begins.
    fn offset_of_record(ring: &[u8], n: usize) -> usize {
        (0..n).fold(0, |at, _| at + decode(&ring[at..]).unwrap().1)
    }

    fn none(_: u64) -> Result<Option<Hash>, AuditError> {
        Ok(None)
    }

    #[test]
    fn records_round_trip_and_any_damage_is_refused() {
        let (records, _) = chain(0, 7, [0; 32], 3);
        let mut buf = Vec::new();
        for r in &records {
            enc(r, &mut buf);
        }
        let mut at = 0;
        for r in &records {
            let (got, len) = decode(&buf[at..]).unwrap();
            assert_eq!(&got, r);
            at += len;
        }
        assert_eq!(at, buf.len());
        let (_, first_len) = decode(&buf).unwrap();
        for i in 0..first_len {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                decode(&bad).is_none_or(|(r, _)| r != records[0]),
                "byte {i}"
            );
        }
        // Cut short anywhere.
        for n in 0..first_len {
            assert!(decode(&buf[..n]).is_none());
        }
        assert!(decode(&[0u8; 4096]).is_none());
    }

    #[test]
    fn replay_returns_whole_commits_after_the_log_and_stops_at_a_torn_one() {
        let (records, hashes) = chain(0, 10, [0; 32], 3);
        let mut ring = vec![0u8; 64 << 10];
        let end = ring_with(&mut ring, 0, &records);
        let held = |seq: u64| Ok((seq < 4).then(|| hashes[seq as usize]));
        let r = replay(Path::new(P), &ring, Pointer::default(), 4, held).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (4..10).collect::<Vec<_>>()
        );
        assert_eq!(r.end, end);
        // Tear the last commit (seq 9 alone): it is dropped, the end is before it.
        let mut torn = ring.clone();
        let last = (end - 10) as usize;
        torn[last..end as usize].fill(0);
        let r = replay(Path::new(P), &torn, Pointer::default(), 4, held).unwrap();
        assert_eq!(r.records.last().map(|r| r.seq), Some(8));
        // Tear the middle of a three-record commit (6, 7, 8): none of it, nor what follows.
        let mut torn = ring.clone();
        let at = offset_of_record(&ring, 7);
        torn[at + 40] ^= 1;
        let r = replay(Path::new(P), &torn, Pointer::default(), 4, held).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    #[test]
    fn replay_follows_the_ring_over_its_end_and_ignores_an_earlier_lap() {
        // A first lap: seqs 0..60, then the second lap overwrites its start with 60..120.
        let (first, hashes1) = chain(0, 60, [0; 32], 4);
        let mut bytes = Vec::new();
        for r in &first {
            enc(r, &mut bytes);
        }
        let cap = bytes.len() * 3 / 2;
        let mut ring = vec![0u8; cap];
        let pos = ring_with(&mut ring, 0, &first);
        let (second, hashes2) = chain(60, 120, hashes1[59], 4);
        let end = ring_with(&mut ring, pos, &second);
        assert!(end > cap as u64, "the test must wrap");
        let all: Vec<Hash> = hashes1.into_iter().chain(hashes2).collect();
        let held = |seq: u64| Ok(all.get(seq as usize).copied().filter(|_| seq < 60));
        let from = Pointer {
            pos,
            seq: 60,
            clean: false,
        };
        let r = replay(Path::new(P), &ring, from, 60, held).unwrap();
        assert_eq!(r.records.len(), 60);
        assert_eq!(r.records[0].seq, 60);
        assert_eq!(r.end, end);
        // Starting where the second lap ends: what follows is the first lap's stale records.
        let held_all = |seq: u64| Ok(all.get(seq as usize).copied());
        let at_end = Pointer {
            pos: end,
            seq: 120,
            clean: false,
        };
        let r = replay(Path::new(P), &ring, at_end, 120, held_all).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(r.end, end);
    }

    #[test]
    fn a_record_that_contradicts_the_log_is_refused() {
        let (records, mut hashes) = chain(0, 6, [0; 32], 2);
        let mut ring = vec![0u8; 64 << 10];
        ring_with(&mut ring, 0, &records);
        hashes[2] = [9; 32];
        let held = |seq: u64| Ok((seq < 4).then(|| hashes[seq as usize]));
        let err = replay(Path::new(P), &ring, Pointer::default(), 4, held).unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        // A log shorter than its own durable pointer is refused too.
        let p = Pointer {
            pos: 0,
            seq: 5,
            clean: false,
        };
        assert!(replay(Path::new(P), &ring, p, 4, none).is_err());
    }

    #[test]
    fn a_stale_record_with_the_next_seq_but_another_prev_ends_replay() {
        // The log restarted after replay stopped before seq 3 and wrote a different seq 3 at
        // the same place; the old seq 4 behind it does not chain on it.
        let (old, _) = chain(0, 6, [0; 32], 1);
        let mut ring = vec![0u8; 64 << 10];
        ring_with(&mut ring, 0, &old);
        let (new3, _) = chain(3, 4, [7; 32], 1);
        let at = offset_of_record(&ring, 3);
        let mut one = Vec::new();
        enc(&new3[0], &mut one);
        // Same length, so the old seq 4 follows it exactly.
        assert_eq!(one.len(), decode(&ring[at..]).unwrap().1);
        ring[at..at + one.len()].copy_from_slice(&one);
        let p = Pointer {
            pos: at as u64,
            seq: 3,
            clean: false,
        };
        let r = replay(Path::new(P), &ring, p, 3, |_| Ok(Some([7; 32]))).unwrap();
        assert_eq!(r.records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn a_journal_is_created_at_its_size_and_bound_to_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.journal");
        let mut j = Journal::open(&path, 64 << 10, "instance-a", 0).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            HEADER_BYTES + (64 << 10)
        );
        let (records, _) = chain(0, 3, [0; 32], 3);
        let mut buf = Vec::new();
        for r in &records {
            enc(r, &mut buf);
        }
        let at = j.place(buf.len()).unwrap();
        j.write(at, &buf).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            HEADER_BYTES + (64 << 10),
            "writing never grows the file"
        );
        let file = JournalFile::read(&path).unwrap().unwrap();
        let r = replay(&path, &file.ring, Pointer::default(), 0, none).unwrap();
        assert_eq!(r.records, records);
        assert!(Journal::open(&path, 64 << 10, "instance-b", 0).is_err());
        assert!(j.place((64 << 10) + 1).is_none());
    }
}
