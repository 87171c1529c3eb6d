//! Benchmark of the audit log (`src/audit`): durable appends, what a durable entry adds to a
//! check, and how fast `audit verify` reads a large log.
//!
//! Everything runs in one process, on one tokio runtime (2 worker threads by default) plus the
//! audit writer thread, against real redb files in a temp dir on disk (real `fdatasync`):
//!
//! * **fsync reference**: a loop of 4 KiB overwrite + `fdatasync` on a temp file in the same
//!   directory. One durable commit (a journal write) costs at least one of these, so it is the
//!   floor of the per-commit latency and the ceiling of commits/s on this disk. Then records of
//!   1,000 and 8,000 bytes appended one after another into a pre-written file, each synced: what
//!   a journal commit costs.
//! * **baseline**: a plain redb write transaction per entry (one writer, no group commit), with
//!   `Durability::Immediate` (what each append would cost without group commit) and with
//!   `Durability::None` (the same without the fsync: redb's own CPU cost per transaction).
//! * **appends**: `AuditLog::append` of decision-shaped events from 1, 64 and 1,024 concurrent
//!   tasks, each appending back to back; durable appends/s, append latency, entries per commit.
//! * **check**: `Gate::evaluate` (policy and mode, no audit) against `Gate::decide` (the same
//!   plus the durable decision entry) over the `check` benchmark's request mix, at 1 and 64
//!   concurrent callers: the latency the entry adds.
//! * **verify**: builds a log of 1,000,000 entries through `AuditLog::append`, closes it, and
//!   times `verify_db` on it (page cache warm, then with the file's pages evicted).
//!
//! Run: `cargo bench --bench audit`. See `benches/README.md` for the knobs.

// The same allocator as the clawgate binary, so the bench measures what ships.
#[global_allocator]
static GLOBAL: clawgate::alloc::Allocator = clawgate::alloc::Allocator::new();

mod support;
use support::*;

use std::io::{Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use redb::{ConcurrencyMode, Durability, TableDefinition};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;

use clawgate::action::{Action, AgentIdentity, Requester};
use clawgate::audit::checkpoint::NoteVerifier;
use clawgate::audit::redact::Redactor;
use clawgate::audit::verify::verify_db;
use clawgate::audit::{AuditEvent, AuditLog, AuditOptions};
use clawgate::config::Config;
use clawgate::gate::{CheckRequest, Gate, Outcome};

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Section {
    Fsync,
    Baseline,
    Appends,
    Check,
    Verify,
}

impl Section {
    fn parse(s: &str) -> Section {
        match s {
            "fsync" => Section::Fsync,
            "baseline" => Section::Baseline,
            "appends" => Section::Appends,
            "check" => Section::Check,
            "verify" => Section::Verify,
            other => panic!("CLAWGATE_BENCH_SECTIONS: unknown section {other:?}"),
        }
    }
}

struct Settings {
    warmup: Duration,
    secs: Duration,
    concurrency: Vec<usize>,
    check_concurrency: Vec<usize>,
    verify_entries: u64,
    build_concurrency: usize,
    run_len: u64,
    max_batch: usize,
    threads: usize,
    dir: Option<PathBuf>,
    keep: bool,
    policy_dir: Option<PathBuf>,
    decision_cache: Option<usize>,
    sections: Vec<Section>,
    enforce_targets: bool,
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|c| *c > 0)
                    .unwrap_or_else(|| panic!("{name}={v:?}: bad entry"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            warmup: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_WARMUP_SECS", 0.5)),
            secs: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_SECS", 3.0)),
            concurrency: env_list("CLAWGATE_BENCH_CONCURRENCY", &[1, 64, 1024]),
            check_concurrency: env_list("CLAWGATE_BENCH_CHECK_CONCURRENCY", &[1, 64]),
            verify_entries: env_usize("CLAWGATE_BENCH_VERIFY_ENTRIES", 1_000_000) as u64,
            build_concurrency: env_usize("CLAWGATE_BENCH_BUILD_CONCURRENCY", 1024),
            run_len: match std::env::var("CLAWGATE_BENCH_RUN_LEN") {
                Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                    panic!("CLAWGATE_BENCH_RUN_LEN={v:?} is not a non-negative integer")
                }),
                Err(_) => 50,
            },
            max_batch: env_usize("CLAWGATE_BENCH_MAX_BATCH", 1024),
            threads: env_usize("CLAWGATE_BENCH_THREADS", 2),
            dir: std::env::var_os("CLAWGATE_BENCH_DIR").map(PathBuf::from),
            keep: env_flag("CLAWGATE_BENCH_KEEP"),
            policy_dir: std::env::var_os("CLAWGATE_BENCH_POLICY_DIR").map(PathBuf::from),
            decision_cache: std::env::var("CLAWGATE_BENCH_DECISION_CACHE")
                .ok()
                .map(|v| {
                    v.parse().unwrap_or_else(|_| {
                        panic!("CLAWGATE_BENCH_DECISION_CACHE={v:?}: not a number")
                    })
                }),
            sections: match std::env::var("CLAWGATE_BENCH_SECTIONS") {
                Ok(v) => v.split(',').map(|s| Section::parse(s.trim())).collect(),
                Err(_) => vec![
                    Section::Fsync,
                    Section::Baseline,
                    Section::Appends,
                    Section::Check,
                    Section::Verify,
                ],
            },
            enforce_targets: env_flag("CLAWGATE_BENCH_ENFORCE_TARGETS"),
        }
    }

    fn runs(&self, s: Section) -> bool {
        self.sections.contains(&s)
    }

    /// The audit options every log in this bench is opened with (the config defaults).
    fn audit_options(&self, dir: &Path) -> AuditOptions {
        AuditOptions {
            path: dir.join("audit.redb"),
            key_path: dir.join("audit-signing.key"),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            max_batch: self.max_batch,
            journal_bytes: clawgate::audit::journal::DEFAULT_JOURNAL_BYTES,
            metrics: Default::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers (the same histograms and formatting as the check benchmark)
// ---------------------------------------------------------------------------------------------

fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// A latency difference, signed.
fn fmt_delta(a: u64, b: u64) -> String {
    if b >= a {
        format!("+{}", fmt_ns(b - a))
    } else {
        format!("-{}", fmt_ns(a - b))
    }
}

fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// Rate and latency of one measured run.
#[derive(Clone, Copy, Default)]
struct Stats {
    /// Operations per second over the measured window.
    rate: f64,
    /// Operations timed (started in the measured window).
    count: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Stats {
    fn new(h: &Histogram<u64>, rate: f64) -> Stats {
        Stats {
            rate,
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

const TABLE_HEAD: &str = "      ops/s        p50        p99      p99.9        max        ops";

fn stats_cols(s: &Stats) -> String {
    format!(
        "{:>11} {:>10} {:>10} {:>10} {:>10} {:>10}",
        fmt_rate(s.rate),
        fmt_ns(s.p50),
        fmt_ns(s.p99),
        fmt_ns(s.p999),
        fmt_ns(s.max),
        s.count
    )
}

// ---------------------------------------------------------------------------------------------
// Where the files go
// ---------------------------------------------------------------------------------------------

/// The filesystem holding `dir`, from `/proc/mounts`: (type, device, mount point).
fn filesystem_of(dir: &Path) -> Option<(String, String, String)> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (dev, at, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(at)
                .then(|| (kind.to_string(), dev.to_string(), at.to_string()))
        })
        .max_by_key(|(_, _, at)| at.len())
}

// ---------------------------------------------------------------------------------------------
// fsync reference
// ---------------------------------------------------------------------------------------------

/// A loop of 4 KiB overwrite + `fdatasync` (what redb issues once per durable commit) on a
/// preallocated file, for `budget` or 5,000 rounds.
fn fsync_probe(dir: &Path, budget: Duration) -> std::io::Result<Stats> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    // Preallocate 1 MiB and make its size durable, so the loop measures data syncs, not growth.
    file.write_all(&vec![0u8; 1 << 20])?;
    file.sync_all()?;
    let block = vec![0x5a_u8; 4096];
    let mut h = new_histogram();
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < budget && i < 5000 {
        let t0 = Instant::now();
        file.seek(SeekFrom::Start((i % 256) * 4096))?;
        file.write_all(&block)?;
        file.sync_data()?;
        let _ = h.record(nanos(t0.elapsed()));
        i += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(Stats::new(&h, i as f64 / elapsed.as_secs_f64()))
}

/// What a journal append costs on this disk: `record`-byte records written one after another
/// (one `pwrite` each, at the next offset) into a pre-written 4 MiB file, each followed by one
/// `fdatasync`, wrapping to the start at the end. The file never grows and no extent is
/// "unwritten", so the sync flushes data only (no filesystem journal commit); against
/// `fsync_probe`, this shows whether a record that straddles blocks costs more than one block.
fn journal_probe(dir: &Path, budget: Duration, record: usize) -> std::io::Result<Stats> {
    use std::os::unix::fs::FileExt;
    const SIZE: u64 = 4 << 20;
    let path = dir.join("journal-probe");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    file.write_all_at(&vec![0u8; SIZE as usize], 0)?;
    file.sync_all()?;
    let bytes = vec![0x5a_u8; record];
    let mut h = new_histogram();
    let start = Instant::now();
    let mut i = 0u64;
    let mut at = 0u64;
    while start.elapsed() < budget && i < 5000 {
        if at + record as u64 > SIZE {
            at = 0;
        }
        let t0 = Instant::now();
        file.write_all_at(&bytes, at)?;
        file.sync_data()?;
        let _ = h.record(nanos(t0.elapsed()));
        at += record as u64;
        i += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(Stats::new(&h, i as f64 / elapsed.as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------
// Decision-shaped events
// ---------------------------------------------------------------------------------------------

/// A policy revision as the gate reports it (hex SHA-256 of the bundle).
const REVISION: &str = "9f2c4e1ab37d58e06c1f4a9b2d7e3c5f8a0b6d4e2f1c3a5b7d9e0f2a4c6b8d01";

/// One kind of decision in the append mix, with its share out of 100: the fields of a
/// `decision` entry (as `Gate::decide` writes them) except the per-call ones.
struct EventKind {
    label: &'static str,
    weight: u32,
    fields: Map<String, Value>,
    /// Canonical JSON size of the action alone.
    action_bytes: usize,
}

#[allow(clippy::too_many_arguments)]
fn event_kind(
    label: &'static str,
    weight: u32,
    tool: &str,
    params: Value,
    decision: &str,
    effect: &str,
    risk: &str,
    reasons: &[&str],
) -> EventKind {
    let action = Action::tool(tool, Some(params));
    let mut fields = Map::new();
    fields.insert("decision".into(), json!(decision));
    fields.insert("effect".into(), json!(effect));
    fields.insert("risk".into(), json!(risk));
    fields.insert("reasons".into(), json!(reasons));
    fields.insert("policy_revision".into(), json!(REVISION));
    fields.insert("mode".into(), json!("enforce"));
    fields.insert("environment".into(), json!("production"));
    fields.insert(
        "action".into(),
        serde_json::to_value(&action).expect("an action serializes"),
    );
    fields.insert("action_hash".into(), json!(action.canonical_hash()));
    fields.insert(
        "requester".into(),
        json!({"channel": "slack", "sender_id": "U02ABCDEF12", "sender_is_owner": true}),
    );
    EventKind {
        label,
        weight,
        action_bytes: action.canonical_json().len(),
        fields,
    }
}

fn event_kinds() -> Vec<EventKind> {
    vec![
        event_kind(
            "exec cargo test",
            25,
            "exec",
            json!({"command": "cd /home/agent/project && cargo test --workspace --all-features -- --test-threads=2 2>&1 | tail -n 200",
                   "workdir": "/home/agent/project",
                   "env": {"CARGO_TERM_COLOR": "never", "RUST_BACKTRACE": "1", "RUST_LOG": "warn"},
                   "timeout": 600, "background": false}),
            "allow",
            "allow",
            "low",
            &["exec: cargo test is on the build allow list"],
        ),
        event_kind(
            "exec git push",
            10,
            "exec",
            json!({"command": "git push --force-with-lease origin feature/audit-benchmark && git log --oneline -n 5",
                   "workdir": "/home/agent/project", "timeout": 120,
                   "env": {"GIT_TERMINAL_PROMPT": "0"}}),
            "pending",
            "require_approval",
            "high",
            &[
                "exec: git push changes a remote repository",
                "waiting for approval 019ab7e2-5a1c-7d3e-9f40-2b6c8d1e4a57 by group:operators (quorum 1, expires 2026-11-25T04:35:00.000Z); retry the same call once approved",
            ],
        ),
        event_kind(
            "exec rm -rf",
            5,
            "exec",
            json!({"command": "sudo rm -rf /var/lib/postgresql/16/main /var/log/postgresql",
                   "workdir": "/", "elevated": true, "timeout": 60}),
            "deny",
            "deny",
            "critical",
            &[
                "exec: recursive delete outside the workspace",
                "exec: elevated execution is not allowed in production",
            ],
        ),
        event_kind(
            "read",
            25,
            "read",
            json!({"path": "/home/agent/project/src/audit/chain.rs", "offset": 1, "limit": 400}),
            "allow",
            "allow",
            "low",
            &[],
        ),
        event_kind(
            "write",
            15,
            "write",
            json!({"path": "/home/agent/project/notes/release-checklist.md",
                   "content": "# Release 0.4.0\n\n- [x] changelog updated\n- [ ] tag v0.4.0 and push\n- [ ] announce in #releases once the build is green\n"}),
            "allow",
            "allow",
            "medium",
            &["write: inside the workspace"],
        ),
        event_kind(
            "web_fetch",
            10,
            "web_fetch",
            json!({"url": "https://docs.example.com/guide/getting-started?lang=en&version=4#install",
                   "extractMode": "markdown", "maxChars": 20000}),
            "allow",
            "allow",
            "low",
            &[],
        ),
        event_kind(
            "message send",
            10,
            "message",
            json!({"action": "send", "channel": "slack", "to": "C0123456789",
                   "message": "Deployment of build 4821 finished; all checks green. Notes: https://ci.example.com/builds/4821"}),
            "allow",
            "allow",
            "medium",
            &["message: to a channel of the owner's workspace"],
        ),
    ]
}

/// A fixed, seeded sequence of kind indexes drawn with the mix's weights.
fn weighted_sequence(weights: &[u32], len: usize) -> Arc<[usize]> {
    let total: u32 = weights.iter().sum();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64*: small, deterministic, good enough to shuffle a mix.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % total;
            let mut acc = 0;
            weights
                .iter()
                .position(|w| {
                    acc += w;
                    r < acc
                })
                .expect("r < total")
        })
        .collect()
}

/// The event mix shared by every append task.
struct EventMix {
    kinds: Vec<EventKind>,
    sequence: Arc<[usize]>,
    run_len: u64,
}

impl EventMix {
    fn new(run_len: u64) -> Arc<EventMix> {
        let kinds = event_kinds();
        let weights: Vec<u32> = kinds.iter().map(|k| k.weight).collect();
        Arc::new(EventMix {
            sequence: weighted_sequence(&weights, 4096),
            kinds,
            run_len,
        })
    }

    /// The `n`th event of `worker`: a fresh decision id and tool call id; each worker's events
    /// fall in consecutive runs of `run_len` tool calls (indexed for `audit timeline`).
    fn event(&self, worker: usize, n: u64) -> AuditEvent {
        let at = (worker * 997 + n as usize) % self.sequence.len();
        let kind = &self.kinds[self.sequence[at]];
        let mut fields = kind.fields.clone();
        fields.insert(
            "decision_id".into(),
            Value::String(uuid::Uuid::now_v7().to_string()),
        );
        // run_len 0: no run id, so nothing goes to the run index (to measure what it costs).
        let run_id = (self.run_len > 0).then(|| format!("run-{worker:04}-{:06}", n / self.run_len));
        fields.insert(
            "agent".into(),
            json!({"id": "main", "session": "agent:main:slack:C0123456789",
                   "run_id": run_id, "tool_call_id": format!("call_{worker:04}_{n:08}")}),
        );
        AuditEvent::new("decision", Value::Object(fields)).with_run(run_id.as_deref())
    }
}

fn open_log(rt: &Runtime, settings: &Settings, dir: &Path) -> Arc<AuditLog> {
    let redactor = Redactor::new(&[], &[], &[]).expect("built-in redaction rules compile");
    Arc::new(
        rt.block_on(AuditLog::open(settings.audit_options(dir), redactor))
            .unwrap_or_else(|e| panic!("cannot open the audit log in {}: {e}", dir.display())),
    )
}

/// Average canonical JSON size of up to the last 2,000 entries of a log.
fn average_entry_bytes(log: &AuditLog) -> Option<u64> {
    let reader = log.reader().ok()?;
    let size = log.health().size();
    let (mut n, mut bytes) = (0u64, 0u64);
    reader
        .for_each_entry(size.saturating_sub(2000), None, |_, _, json| {
            n += 1;
            bytes += json.len() as u64;
            Ok(true)
        })
        .ok()?;
    (n > 0).then(|| bytes / n)
}

// ---------------------------------------------------------------------------------------------
// Baseline: one redb write transaction per entry, one writer
// ---------------------------------------------------------------------------------------------

const BASELINE_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");

fn redb_single_entry(
    path: &Path,
    mode: ConcurrencyMode,
    durability: Durability,
    value: &[u8],
    warmup: Duration,
    measure: Duration,
) -> Result<Stats, redb::Error> {
    let db = redb::Builder::new()
        .set_concurrency_mode(mode)
        .create(path)?;
    let mut h = new_histogram();
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut seq = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let mut txn = db.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut table = txn.open_table(BASELINE_TABLE)?;
            table.insert(seq, value)?;
        }
        txn.commit()?;
        seq += 1;
        if t0 >= measure_from {
            let _ = h.record(nanos(t0.elapsed()));
        }
    }
    let rate = h.len() as f64 / measure.as_secs_f64();
    Ok(Stats::new(&h, rate))
}

// ---------------------------------------------------------------------------------------------
// Appends
// ---------------------------------------------------------------------------------------------

struct AppendRun {
    /// Rate: entries the log made durable during the measured window.
    stats: Stats,
    /// Entries per write transaction over the window.
    avg_batch: f64,
    batches: u64,
}

/// `concurrency` tasks appending back to back until `end`; appends started before
/// `measure_from` are not timed. Throughput is the growth of the log across the window, read
/// from its health counters by a separate thread at the window's edges.
fn append_run(
    rt: &Runtime,
    log: &Arc<AuditLog>,
    mix: &Arc<EventMix>,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> AppendRun {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let health = log.health().clone();
    let edges = std::thread::spawn(move || {
        sleep_until(measure_from);
        let a = (Instant::now(), health.size(), health.batches());
        sleep_until(end);
        let b = (Instant::now(), health.size(), health.batches());
        (a, b)
    });
    let h = rt.block_on(async {
        let mut tasks = Vec::with_capacity(concurrency);
        for worker in 0..concurrency {
            let log = log.clone();
            let mix = mix.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = new_histogram();
                let mut n = 0u64;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let event = mix.event(worker, n);
                    n += 1;
                    if let Err(e) = log.append(event).await {
                        return Err(format!("append failed: {e}"));
                    }
                    if t0 >= measure_from {
                        let _ = h.record(nanos(t0.elapsed()));
                    }
                }
                Ok(h)
            }));
        }
        let mut total = new_histogram();
        for t in tasks {
            match t.await.expect("append task panicked") {
                Ok(h) => total.add(&h).expect("same bounds"),
                Err(e) => panic!("appends at c={concurrency}: {e}"),
            }
        }
        total
    });
    let ((t_a, size_a, batches_a), (t_b, size_b, batches_b)) =
        edges.join().expect("edge thread panicked");
    let entries = size_b - size_a;
    let batches = batches_b - batches_a;
    AppendRun {
        stats: Stats::new(&h, entries as f64 / (t_b - t_a).as_secs_f64()),
        avg_batch: if batches > 0 {
            entries as f64 / batches as f64
        } else {
            0.0
        },
        batches,
    }
}

// ---------------------------------------------------------------------------------------------
// Check: policy only vs policy + durable entry
// ---------------------------------------------------------------------------------------------

/// The request `/v1/check` builds from the check benchmark's body for this call.
fn check_request(kind: &CallKind, n: usize) -> CheckRequest {
    CheckRequest {
        action: Action::tool(kind.tool, Some(kind.params.clone())),
        agent: AgentIdentity {
            id: Some("main".into()),
            session: Some("agent:main:main".into()),
            run_id: Some("r-1".into()),
            tool_call_id: Some(format!("t-{n}")),
            authenticated_as: None,
            scopes: None,
        },
        requester: Some(Requester {
            channel: Some("slack".into()),
            sender_id: Some("U1".into()),
            sender_is_owner: Some(false),
        }),
    }
}

fn request_pool(kinds: &[CallKind], len: usize) -> Arc<[CheckRequest]> {
    let weights: Vec<u32> = kinds.iter().map(|k| k.weight).collect();
    weighted_sequence(&weights, len)
        .iter()
        .enumerate()
        .map(|(n, &k)| check_request(&kinds[k], n))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GatePath {
    /// `Gate::evaluate`: policy and mode, nothing recorded.
    Evaluate,
    /// `Gate::decide`: the same plus the durable audit entry before answering.
    Decide,
}

impl GatePath {
    fn name(self) -> &'static str {
        match self {
            GatePath::Evaluate => "evaluate (no audit)",
            GatePath::Decide => "decide (+ durable entry)",
        }
    }
}

/// Closed loop: `concurrency` tasks calling the gate back to back. `evaluate` is synchronous,
/// so its tasks yield after each call to take turns like `decide`'s do; its latency is the
/// call alone.
fn gate_run(
    rt: &Runtime,
    gate: &Arc<Gate>,
    pool: &Arc<[CheckRequest]>,
    concurrency: usize,
    path: GatePath,
    warmup: Duration,
    measure: Duration,
) -> Stats {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let h = rt.block_on(async {
        let mut tasks = Vec::with_capacity(concurrency);
        for w in 0..concurrency {
            let gate = gate.clone();
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = new_histogram();
                let mut i = w * pool.len() / concurrency;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let req = &pool[i % pool.len()];
                    i += 1;
                    let elapsed = match path {
                        GatePath::Evaluate => {
                            let d = std::hint::black_box(gate.evaluate(req));
                            let elapsed = t0.elapsed();
                            drop(d);
                            tokio::task::yield_now().await;
                            elapsed
                        }
                        GatePath::Decide => {
                            let d = gate.decide(req).await;
                            if d.audit_seq.is_none() {
                                return Err(format!("decision not recorded: {:?}", d.reasons));
                            }
                            t0.elapsed()
                        }
                    };
                    if t0 >= measure_from {
                        let _ = h.record(nanos(elapsed));
                    }
                }
                Ok(h)
            }));
        }
        let mut total = new_histogram();
        for t in tasks {
            match t.await.expect("gate task panicked") {
                Ok(h) => total.add(&h).expect("same bounds"),
                Err(e) => panic!("{} at c={concurrency}: {e}", path.name()),
            }
        }
        total
    });
    Stats::new(&h, h.len() as f64 / measure.as_secs_f64())
}

/// The smallest bundle that decides: allow everything at low risk.
fn write_minimal_bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("minimal-policy");
    std::fs::create_dir_all(&bundle).expect("create the minimal bundle dir");
    std::fs::write(
        bundle.join("main.rego"),
        "package clawgate\n\ndecision := {\"effect\": \"allow\", \"risk\": \"low\", \"reasons\": []}\n",
    )
    .expect("write the minimal bundle");
    bundle
}

/// Start clawgate in-process (listeners on loopback port 0, state under `root`) and return it
/// with a description of the bundle it serves. If the embedded bundle does not load (someone
/// may be editing it), measure with a minimal allow-all bundle instead, and say so.
fn start_clawgate(
    rt: &Runtime,
    settings: &Settings,
    root: &Path,
) -> (clawgate::app::Running, String) {
    let config_for = |data: &str, policy: Option<&PathBuf>| {
        let mut config = Config {
            data_dir: root.join(data),
            ..Config::default()
        };
        if let Some(dir) = policy {
            config.policy.dir = Some(dir.clone());
            config.policy.watch = false;
        }
        if let Some(n) = settings.decision_cache {
            config.policy.decision_cache_entries = n;
        }
        config.audit.max_batch = settings.max_batch;
        config.listeners.agent.addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.egress.addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.admin.addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config
    };
    let config = config_for("check-data", settings.policy_dir.as_ref());
    match rt.block_on(clawgate::app::start(config)) {
        Ok(running) => {
            let what = settings
                .policy_dir
                .as_ref()
                .map_or_else(|| "embedded default".into(), |d| d.display().to_string());
            (running, what)
        }
        Err(e) if settings.policy_dir.is_none() => {
            println!(
                "  !! the embedded policy bundle did not load ({e});\n  !! measuring with a minimal allow-all bundle instead"
            );
            let bundle = write_minimal_bundle(root);
            let config = config_for("check-data-minimal", Some(&bundle));
            let running = rt
                .block_on(clawgate::app::start(config))
                .unwrap_or_else(|e| panic!("clawgate does not start with the minimal bundle: {e}"));
            (running, "minimal allow-all (FALLBACK)".into())
        }
        Err(e) => panic!("clawgate does not start: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Verify
// ---------------------------------------------------------------------------------------------

/// Append `entries` events from `concurrency` tasks as fast as the log takes them.
fn build_log(rt: &Runtime, log: &Arc<AuditLog>, mix: &Arc<EventMix>, entries: u64, conc: usize) {
    let next = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(conc);
        for worker in 0..conc {
            let (log, mix, next) = (log.clone(), mix.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut k = 0;
                while next.fetch_add(1, Ordering::Relaxed) < entries {
                    if let Err(e) = log.append(mix.event(worker, k)).await {
                        return Err(format!("append failed: {e}"));
                    }
                    k += 1;
                }
                Ok(())
            }));
        }
        for t in tasks {
            if let Err(e) = t.await.expect("build task panicked") {
                panic!("building the verify log: {e}");
            }
        }
    });
}

/// Drop the file's pages from the page cache (they are clean: the log was closed and synced),
/// so the next read comes from the disk.
#[cfg(target_os = "linux")]
fn evict_from_page_cache(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)?;
    file.sync_all()?;
    // SAFETY: a valid open descriptor; fadvise only advises the kernel about its pages.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

#[cfg(not(target_os = "linux"))]
fn evict_from_page_cache(_path: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("only on Linux"))
}

struct VerifyRun {
    seconds: f64,
    entries: u64,
    checkpoints: u64,
}

fn timed_verify(path: &Path, verifier: &NoteVerifier) -> VerifyRun {
    let t0 = Instant::now();
    let summary = verify_db(path, verifier.clone(), |_, _| {})
        .unwrap_or_else(|e| panic!("verify could not read {}: {e}", path.display()))
        .unwrap_or_else(|p| panic!("verify found a problem in a freshly built log: {p}"));
    VerifyRun {
        seconds: t0.elapsed().as_secs_f64(),
        entries: summary.entries,
        checkpoints: summary.checkpoints,
    }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let settings = Settings::from_env();
    let tmp = match &settings.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("clawgate-audit-bench")
            .tempdir_in(d),
        None => tempfile::Builder::new()
            .prefix("clawgate-audit-bench")
            .tempdir(),
    }
    .expect("temp dir");
    let root = tmp.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .thread_name("bench-rt")
        .enable_all()
        .build()
        .expect("tokio runtime");

    println!("clawgate audit log benchmark");
    println!(
        "  cores: {}; tokio runtime: {} worker threads, plus the audit writer thread (same machine)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        settings.threads
    );
    match filesystem_of(&root) {
        Some((kind, dev, at)) => {
            println!(
                "  files: {} ({kind} on {dev}, mounted at {at})",
                root.display()
            );
            if matches!(kind.as_str(), "tmpfs" | "ramfs") {
                println!(
                    "  !! {kind} is memory: fsync does nothing there and these numbers do not measure durability; set CLAWGATE_BENCH_DIR to a disk"
                );
            }
        }
        None => println!("  files: {}", root.display()),
    }
    println!(
        "  audit options: checkpoint_every 1000, checkpoint_interval 60 s, max_batch {}; redaction: built-in rules",
        settings.max_batch
    );
    println!(
        "  per run: {:.1} s warm-up, then {:.1} s measured",
        settings.warmup.as_secs_f64(),
        settings.secs.as_secs_f64()
    );

    let mix = EventMix::new(settings.run_len);
    let mut fsync: Option<Stats> = None;
    let mut baseline_immediate: Option<Stats> = None;
    let mut appends: Vec<(usize, AppendRun)> = Vec::new();
    let mut verify: Option<(VerifyRun, Option<VerifyRun>)> = None;

    // -- fsync reference ------------------------------------------------------------------------
    if settings.runs(Section::Fsync) {
        println!();
        println!(
            "== fsync reference: 4 KiB overwrite + fdatasync on a temp file, same directory =="
        );
        println!("{:<34}{TABLE_HEAD}", "");
        match fsync_probe(&root, Duration::from_secs(1)) {
            Ok(s) => {
                println!("{:<34}{}", "write + fdatasync", stats_cols(&s));
                fsync = Some(s);
            }
            Err(e) => println!("  fsync probe failed: {e}"),
        }
        for record in [1000, 8000] {
            match journal_probe(&root, Duration::from_secs(1), record) {
                Ok(s) => println!(
                    "{:<34}{}",
                    format!("{record} B appended + fdatasync"),
                    stats_cols(&s)
                ),
                Err(e) => println!("  journal probe failed: {e}"),
            }
        }
    }

    // -- baseline: one redb transaction per entry --------------------------------------------
    if settings.runs(Section::Baseline) {
        // A stored row as the log writes it: 32-byte hash + canonical JSON of a decision entry.
        let mut fields = mix.kinds[0].fields.clone();
        fields.insert("kind".into(), json!("decision"));
        fields.insert("seq".into(), json!(123_456));
        fields.insert("prev".into(), json!(REVISION));
        fields.insert("ts".into(), json!("2026-11-25T10:00:00.000Z"));
        let mut value = vec![0xab_u8; 32];
        value.extend(serde_json_canonicalizer::to_vec(&Value::Object(fields)).expect("JSON"));
        println!();
        println!(
            "== baseline: plain redb, one write transaction per {}-byte entry, one writer thread, no group commit ==",
            value.len()
        );
        println!("{:<34}{TABLE_HEAD}", "");
        // The audit log opens its file in `SingleWriter` mode (so `clawgate audit` can read it
        // from another process), in which redb always commits in two phases (two fdatasyncs);
        // the default `ExclusiveWriter` mode commits with one.
        let variants = [
            (
                "SingleWriter, Immediate",
                ConcurrencyMode::SingleWriter,
                Durability::Immediate,
            ),
            (
                "ExclusiveWriter, Immediate",
                ConcurrencyMode::ExclusiveWriter,
                Durability::Immediate,
            ),
            // (SingleWriter refuses non-durable commits.)
            (
                "ExclusiveWriter, None (no fsync)",
                ConcurrencyMode::ExclusiveWriter,
                Durability::None,
            ),
        ];
        for (i, (name, mode, durability)) in variants.into_iter().enumerate() {
            let file = root.join(format!("baseline-{i}.redb"));
            let s = redb_single_entry(
                &file,
                mode,
                durability,
                &value,
                settings.warmup,
                settings.secs,
            )
            .unwrap_or_else(|e| panic!("baseline {name}: {e}"));
            println!("{name:<34}{}", stats_cols(&s));
            if i == 0 {
                baseline_immediate = Some(s);
            }
            let _ = std::fs::remove_file(&file);
        }
        println!(
            "  (ops/s: entries committed per second; latency: begin_write to commit returned. \
             The first row is the no-group-commit baseline the appends are compared with.)"
        );
    }

    // -- appends --------------------------------------------------------------------------------
    if settings.runs(Section::Appends) {
        let dir = root.join("appends");
        let log = open_log(&rt, &settings, &dir);
        println!();
        println!(
            "== durable appends: AuditLog::append of decision events from c concurrent tasks =="
        );
        let shares: Vec<String> = mix
            .kinds
            .iter()
            .map(|k| format!("{} {}% ({} B action)", k.label, k.weight, k.action_bytes))
            .collect();
        println!("  mix: {}", shares.join(", "));
        if settings.run_len > 0 {
            println!(
                "  each task appends as one agent: a new run (a run index key) every {} calls",
                settings.run_len
            );
        } else {
            println!(
                "  no run ids: nothing is written to the run index (CLAWGATE_BENCH_RUN_LEN=0)"
            );
        }
        println!(
            "{:<34}{TABLE_HEAD} {:>10} {:>9}",
            "", "entries/tx", "vs 1/tx"
        );
        for &c in &settings.concurrency {
            let run = append_run(&rt, &log, &mix, c, settings.warmup, settings.secs);
            println!(
                "{:<34}{} {:>10.1} {:>9}",
                format!("c={c}"),
                stats_cols(&run.stats),
                run.avg_batch,
                baseline_immediate.map_or("-".into(), |b| ratio(run.stats.rate, b.rate)),
            );
            appends.push((c, run));
        }
        println!(
            "  (ops/s: entries made durable in the window; latency: append call to durable receipt, \
             for appends started in the window; entries/tx: entries per write transaction; \
             vs 1/tx: ops/s over the SingleWriter, Immediate baseline)"
        );
        if let Some(bytes) = average_entry_bytes(&log) {
            println!(
                "  stored entries average {bytes} bytes of canonical JSON (+ 32-byte hash); {} entries, {} write transactions in all",
                log.health().size(),
                log.health().batches()
            );
        }
        if let (Some(b), Some((_, c1))) =
            (baseline_immediate, appends.iter().find(|(c, _)| *c == 1))
        {
            println!(
                "  c=1 append p50 {} vs one plain SingleWriter Immediate commit p50 {}: {} of AuditLog work per entry (prepare, queue, hash, Merkle, head, run index, checkpoints)",
                fmt_ns(c1.stats.p50),
                fmt_ns(b.p50),
                fmt_delta(b.p50, c1.stats.p50)
            );
        }
        for (c, run) in &appends {
            if run.batches == 0 {
                println!("  c={c}: no write transaction completed in the window");
            }
        }
        rt.block_on(log.close());
    }

    // -- check: what the durable entry adds ----------------------------------------------------
    if settings.runs(Section::Check) {
        println!();
        println!(
            "== check: Gate::evaluate (policy + mode, no audit) vs Gate::decide (+ durable audit entry) =="
        );
        let (running, bundle) = start_clawgate(&rt, &settings, &root);
        let gate = running.gate.clone();
        println!(
            "  policy: {bundle} bundle, revision {}; mode enforce; decision cache: {}",
            gate.policy_bundle().revision,
            settings
                .decision_cache
                .map_or_else(|| "config default".into(), |n| n.to_string())
        );
        let kinds = call_kinds();
        let mut probe = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let d = gate.evaluate(&check_request(k, i));
            let outcome = match d.outcome {
                Outcome::Allow => "allow",
                Outcome::Deny => "deny",
                Outcome::Pending => "pending",
            };
            probe.push(format!("{} {}% {outcome}", k.label, k.weight));
        }
        println!(
            "  mix (check benchmark's) and decisions: {}",
            probe.join(", ")
        );
        let pool = request_pool(&kinds, 4096);
        println!("{:<34}{TABLE_HEAD}", "");
        for &c in &settings.check_concurrency {
            let eval = gate_run(
                &rt,
                &gate,
                &pool,
                c,
                GatePath::Evaluate,
                settings.warmup,
                settings.secs,
            );
            let decide = gate_run(
                &rt,
                &gate,
                &pool,
                c,
                GatePath::Decide,
                settings.warmup,
                settings.secs,
            );
            println!("c={c}");
            println!("  {:<32}{}", GatePath::Evaluate.name(), stats_cols(&eval));
            println!("  {:<32}{}", GatePath::Decide.name(), stats_cols(&decide));
            println!(
                "  {:<32}{:>11} {:>10} {:>10} {:>10}",
                "added by the entry",
                ratio(decide.rate, eval.rate),
                fmt_delta(eval.p50, decide.p50),
                fmt_delta(eval.p99, decide.p99),
                fmt_delta(eval.p999, decide.p999),
            );
        }
        println!(
            "  (evaluate's latency is the call alone; decide's includes waiting for the group \
             commit. The HTTP path adds the check benchmark's baseline on top of either.)"
        );
        if let Some(bytes) = average_entry_bytes(running.audit()) {
            println!(
                "  the decision entries Gate::decide wrote for this mix average {bytes} bytes of canonical JSON"
            );
        }
        drop(gate);
        rt.block_on(running.shutdown(Duration::from_secs(2)));
    }

    // -- verify -------------------------------------------------------------------------------
    if settings.runs(Section::Verify) {
        let n = settings.verify_entries;
        println!();
        println!(
            "== verify: verify_db on a log of {} entries ==",
            fmt_rate(n as f64)
        );
        let dir = root.join("verify");
        let log = open_log(&rt, &settings, &dir);
        let batches0 = log.health().batches();
        let t0 = Instant::now();
        build_log(&rt, &log, &mix, n, settings.build_concurrency);
        let build = t0.elapsed().as_secs_f64();
        let batches = log.health().batches() - batches0;
        let verifier =
            NoteVerifier::parse(log.verifier_key()).expect("the log's own verifier key parses");
        rt.block_on(log.close());
        drop(log);
        let path = dir.join("audit.redb");
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        println!(
            "  built through AuditLog::append from {} tasks in {build:.1} s: {} durable appends/s, {:.0} entries/tx",
            settings.build_concurrency,
            fmt_rate(n as f64 / build),
            n as f64 / batches.max(1) as f64
        );
        println!(
            "  file: {} ({:.0} bytes per entry)",
            fmt_bytes(size),
            size as f64 / n as f64
        );
        let warm = timed_verify(&path, &verifier);
        println!(
            "  {:<34}{:>11} entries/s  ({} entries, {} checkpoints verified in {:.2} s)",
            "page cache warm",
            fmt_rate(warm.entries as f64 / warm.seconds),
            warm.entries,
            warm.checkpoints,
            warm.seconds
        );
        let cold = match evict_from_page_cache(&path) {
            Ok(()) => {
                let r = timed_verify(&path, &verifier);
                println!(
                    "  {:<34}{:>11} entries/s  ({:.2} s; {} read from disk)",
                    "file evicted from page cache",
                    fmt_rate(r.entries as f64 / r.seconds),
                    r.seconds,
                    fmt_bytes(size)
                );
                Some(r)
            }
            Err(e) => {
                println!("  cold run skipped: cannot evict the file from the page cache: {e}");
                None
            }
        };
        if warm.entries != n + 1 {
            panic!(
                "verify covered {} entries, expected {} (the key event and {n} decisions)",
                warm.entries,
                n + 1
            );
        }
        verify = Some((warm, cold));
        if settings.keep {
            println!("  (kept: {})", path.display());
        }
    }

    // -- targets ------------------------------------------------------------------------------
    println!();
    println!("== targets ==");
    let mut missed = Vec::new();
    if let Some(f) = fsync {
        println!(
            "  (disk reference: fdatasync p50 {}, p99 {}: at most ~{} durable commits/s)",
            fmt_ns(f.p50),
            fmt_ns(f.p99),
            fmt_rate(f.rate)
        );
    }
    match appends.iter().find(|(c, _)| *c == 64) {
        Some((_, r)) => {
            let ok = r.stats.rate >= 20_000.0;
            println!(
                "  >= 20,000 durable appends/s at c=64:         {} ({} appends/s, p99 {})",
                if ok { "met" } else { "MISSED" },
                fmt_rate(r.stats.rate),
                fmt_ns(r.stats.p99)
            );
            if !ok {
                missed.push("durable appends at c=64");
            }
        }
        None => println!("  >= 20,000 durable appends/s at c=64:         not run"),
    }
    match &verify {
        Some((warm, cold)) => {
            let rate = warm.entries as f64 / warm.seconds;
            let ok = rate >= 200_000.0;
            println!(
                "  verify >= 200,000 entries/s ({} entries): {} ({} entries/s page cache warm{})",
                fmt_rate(settings.verify_entries as f64),
                if ok { "met" } else { "MISSED" },
                fmt_rate(rate),
                cold.as_ref().map_or(String::new(), |c| format!(
                    "; {} entries/s from disk",
                    fmt_rate(c.entries as f64 / c.seconds)
                ))
            );
            if !ok {
                missed.push("verify entries/s");
            }
        }
        None => println!("  verify >= 200,000 entries/s:                 not run"),
    }

    drop(rt);
    if settings.keep {
        let kept = tmp.keep();
        println!("  (files kept in {})", kept.display());
    }
    if settings.enforce_targets && !missed.is_empty() {
        eprintln!("targets missed: {}", missed.join(", "));
        std::process::exit(1);
    }
}
