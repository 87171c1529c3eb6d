//! What the `check` and `audit` benchmarks share: the OpenClaw tool-call mix, environment
//! knobs, histograms and number formatting.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

/// One kind of tool call in the mix, with its share out of 100.
pub struct CallKind {
    pub label: &'static str,
    pub weight: u32,
    pub tool: &'static str,
    pub params: serde_json::Value,
}

pub fn call_kinds() -> Vec<CallKind> {
    let kind = |label, weight, tool, params| CallKind {
        label,
        weight,
        tool,
        params,
    };
    vec![
        kind(
            "read",
            28,
            "read",
            json!({"path": "/home/agent/project/src/main.rs"}),
        ),
        kind(
            "exec ls -la",
            15,
            "exec",
            json!({"command": "ls -la", "workdir": "/home/agent/project"}),
        ),
        kind(
            "exec git status",
            15,
            "exec",
            json!({"command": "git status", "workdir": "/home/agent/project"}),
        ),
        kind(
            "exec rm -rf /var/lib",
            3,
            "exec",
            json!({"command": "rm -rf /var/lib", "workdir": "/"}),
        ),
        kind(
            "write",
            10,
            "write",
            json!({"path": "/home/agent/project/notes/todo.md",
                   "content": "# TODO\n\n- review the open pull requests\n- update the changelog\n"}),
        ),
        kind(
            "web_fetch",
            10,
            "web_fetch",
            json!({"url": "https://docs.example.com/guide/getting-started", "extractMode": "markdown",
                   "maxChars": 20000}),
        ),
        kind(
            "message send",
            9,
            "message",
            json!({"action": "send", "channel": "slack", "to": "C0123456789",
                   "message": "Deployment of build 4821 finished; all checks green."}),
        ),
        kind(
            "browser",
            7,
            "browser",
            json!({"action": "navigate", "targetUrl": "https://status.example.com/"}),
        ),
        kind(
            "unknown tool",
            3,
            "frobnicate_widgets",
            json!({"widget": "w-17", "force": true}),
        ),
    ]
}

pub fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .unwrap_or_else(|| panic!("{name}={v:?} is not a non-negative number")),
        Err(_) => default,
    }
}

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|x| *x > 0)
            .unwrap_or_else(|| panic!("{name}={v:?} is not a positive integer")),
        Err(_) => default,
    }
}

pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

pub fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant figures.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

pub fn fmt_ns(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

pub fn fmt_rate(r: f64) -> String {
    let n = r.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// A multi-threaded tokio runtime for one server (or the load generator), its threads named
/// `name` so `perf report --comm` can tell them apart.
#[allow(dead_code)]
pub fn named_runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A comma-separated list knob, e.g. `CLAWGATE_BENCH_CONCURRENCY=1,64`.
#[allow(dead_code)]
pub fn env_list<T>(name: &str, default: Vec<T>, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| parse(s.trim()).unwrap_or_else(|| panic!("{name}={v:?}: bad entry {s:?}")))
            .collect(),
        Err(_) => default,
    }
}

/// Latencies of one run and what went wrong, mergeable across workers.
#[allow(dead_code)]
pub struct Latencies {
    pub histogram: Histogram<u64>,
    /// Timed requests (started in the measured window).
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

#[allow(dead_code)]
impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            histogram: new_histogram(),
            requests: 0,
            errors: 0,
            first_error: None,
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.requests += 1;
        let _ = self.histogram.record(nanos(d));
    }

    pub fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.histogram.add(&other.histogram).expect("same bounds");
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The policy bundle a bench starts from: `CLAWGATE_BENCH_POLICY_DIR`, else `policies/` (the
/// source of the embedded bundle).
#[allow(dead_code)]
pub fn source_bundle() -> std::path::PathBuf {
    std::env::var_os("CLAWGATE_BENCH_POLICY_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
}

/// Copy a bundle without its `_test.rego` files into `out`, passing each file's name and text
/// through `edit` (e.g. to patch `data.json` or `main.rego`).
#[allow(dead_code)]
pub fn copy_bundle(
    src: &std::path::Path,
    out: &std::path::Path,
    edit: impl Fn(&str, String) -> String,
) -> std::path::PathBuf {
    std::fs::create_dir_all(out).expect("bundle dir");
    for entry in std::fs::read_dir(src).expect("read the policy dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        if !path.is_file() || name.ends_with("_test.rego") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a bundle file");
        std::fs::write(out.join(&name), edit(&name, text)).expect("write a bundle file");
    }
    out.to_path_buf()
}

/// Edit a bundle's `data.json` text with `patch`.
#[allow(dead_code)]
pub fn patch_data(text: &str, patch: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut data: serde_json::Value = serde_json::from_str(text).expect("data.json parses");
    patch(&mut data);
    serde_json::to_string_pretty(&data).expect("JSON serializes")
}

/// Raise every tier's and the fallback rate limit far above what a bench sends: the rate
/// layer still runs, but the shipped limits (5–120 a minute per agent and subject) would
/// refuse a bench within seconds.
#[allow(dead_code)]
pub fn raise_rate_limits(data: &mut serde_json::Value) {
    let c = &mut data["clawgate"];
    c["settings"]["fallback_limits"]["rate_per_minute"] = json!(1_000_000_000u32);
    if let Some(tiers) = c["tiers"].as_object_mut() {
        for tier in tiers.values_mut() {
            tier["constraints"]["rate_per_minute"] = json!(1_000_000_000u32);
        }
    }
}

/// A closed loop over open connections, one worker each: a worker repeats `step(conn, worker,
/// n)` (n = its step count) until `warmup + measure` has passed; steps started after the warm-up
/// are timed; an error is tallied and ends that worker. `step` takes the connection and hands
/// it back, so the spawned workers own theirs.
#[allow(dead_code)]
pub async fn closed_loop_over<C, F, Fut>(
    conns: Vec<C>,
    warmup: Duration,
    measure: Duration,
    step: F,
) -> Latencies
where
    C: Send + 'static,
    F: Fn(C, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (C, Result<(), String>)> + Send,
{
    let start = std::time::Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut tasks = Vec::with_capacity(conns.len());
    for (worker, conn) in conns.into_iter().enumerate() {
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Latencies::new();
            let mut conn = conn;
            for n in 0.. {
                let t0 = std::time::Instant::now();
                if t0 >= end {
                    break;
                }
                let (back, result) = step(conn, worker, n).await;
                conn = back;
                match result {
                    Ok(()) if t0 >= measure_from => tally.record(t0.elapsed()),
                    Ok(()) => {}
                    Err(e) => {
                        tally.error(e);
                        break;
                    }
                }
            }
            tally
        }));
    }
    let mut total = Latencies::new();
    for t in tasks {
        total.merge(t.await.expect("worker panicked"));
    }
    total
}

/// One keep-alive HTTP/1.1 client connection (TCP_NODELAY, its driver spawned on the current
/// runtime) and the `Host` header value for it.
#[allow(dead_code)]
pub async fn connect_http1(
    addr: std::net::SocketAddr,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
        http::HeaderValue,
    ),
    String,
> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let host = http::HeaderValue::from_str(&addr.to_string()).expect("socket address is ASCII");
    Ok((sender, host))
}

/// A temp dir for a sidecar's state: in `CLAWGATE_BENCH_DIR` when set (e.g. `/dev/shm`, to
/// take `fdatasync` out of the figures), else in the system temp dir.
#[allow(dead_code)]
pub fn bench_tempdir() -> tempfile::TempDir {
    match std::env::var_os("CLAWGATE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(&dir)
            .unwrap_or_else(|e| panic!("CLAWGATE_BENCH_DIR={dir:?}: cannot make a temp dir: {e}")),
        None => tempfile::tempdir().expect("temp dir"),
    }
}
