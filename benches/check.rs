//! Load benchmark for `POST /v1/check`.
//!
//! Starts clawgate in-process (default config and embedded policy bundle, listeners on
//! loopback port 0) and, as a baseline, a trivial hyper HTTP/1.1 endpoint that answers a fixed
//! JSON body. Each server gets its own tokio runtime with the same number of worker threads.
//! A separate load-generator runtime drives both over persistent keep-alive connections:
//!
//! * closed loop at each configured concurrency (default 1 and 64): one connection per worker,
//!   each sending its next request as soon as the previous answer arrived;
//! * open loop at a fixed rate (default 1,000 req/s over 8 connections): a pacer thread
//!   schedules sends at fixed intervals and latency is measured from the *scheduled* time,
//!   so a stalled server cannot hide its stall by slowing the generator down (no coordinated
//!   omission).
//!
//! Every answer must be `200` with a `decision`; anything else fails the run.
//! Run: `cargo bench --bench check`. See `benches/README.md` for the knobs.

// The same allocator as the clawgate binary, so the bench measures what ships.
#[global_allocator]
static GLOBAL: clawgate::alloc::Allocator = clawgate::alloc::Allocator::new();

mod support;
use support::*;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use clawgate::config::Config;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

struct Settings {
    warmup: Duration,
    closed_secs: Duration,
    open_secs: Duration,
    concurrency: Vec<usize>,
    rate: u32,
    open_conns: usize,
    server_threads: usize,
    client_threads: usize,
    log: Option<String>,
    enforce_targets: bool,
    targets: Vec<Target>,
    sections: Vec<Section>,
    /// Closed-loop concurrencies of the identity section.
    identity_concurrency: Vec<usize>,
    /// Identities configured in the identity section's sidecar (b).
    identities: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Section {
    /// Baseline and the default clawgate: closed loops and the open loop.
    Load,
    /// The same checks with and without identities and constraint layers.
    Identity,
}

impl Settings {
    fn from_env() -> Settings {
        let closed = env_f64("CLAWGATE_BENCH_SECS", 3.0);
        let concurrency = match std::env::var("CLAWGATE_BENCH_CONCURRENCY") {
            Ok(v) => v
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|c| *c > 0)
                        .unwrap_or_else(|| panic!("CLAWGATE_BENCH_CONCURRENCY={v:?}: bad entry"))
                })
                .collect(),
            Err(_) => vec![1, 64],
        };
        Settings {
            warmup: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_WARMUP_SECS", 0.5)),
            closed_secs: Duration::from_secs_f64(closed),
            open_secs: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_OPEN_SECS", 5.0)),
            concurrency,
            rate: env_usize("CLAWGATE_BENCH_RATE", 1000) as u32,
            open_conns: env_usize("CLAWGATE_BENCH_OPEN_CONNS", 8),
            server_threads: env_usize("CLAWGATE_BENCH_SERVER_THREADS", 2),
            client_threads: env_usize("CLAWGATE_BENCH_CLIENT_THREADS", 2),
            log: std::env::var("CLAWGATE_BENCH_LOG")
                .ok()
                .filter(|s| !s.is_empty()),
            enforce_targets: std::env::var("CLAWGATE_BENCH_ENFORCE_TARGETS")
                .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
            targets: match std::env::var("CLAWGATE_BENCH_TARGETS") {
                Ok(v) => v
                    .split(',')
                    .map(|t| match t.trim() {
                        "baseline" => Target::Baseline,
                        "clawgate" => Target::Clawgate,
                        other => panic!("CLAWGATE_BENCH_TARGETS: unknown target {other:?}"),
                    })
                    .collect(),
                Err(_) => vec![Target::Baseline, Target::Clawgate],
            },
            sections: env_list(
                "CLAWGATE_BENCH_SECTIONS",
                vec![Section::Load, Section::Identity],
                |s| match s {
                    "load" => Some(Section::Load),
                    "identity" => Some(Section::Identity),
                    _ => None,
                },
            ),
            identity_concurrency: env_list(
                "CLAWGATE_BENCH_IDENTITY_CONCURRENCY",
                vec![1, 64],
                |s| s.parse::<usize>().ok().filter(|c| *c > 0),
            ),
            identities: env_usize("CLAWGATE_BENCH_IDENTITIES", 1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The request mix
// ---------------------------------------------------------------------------------------------

/// A prepared request body and the index of its kind in [`call_kinds`].
#[derive(Clone)]
struct Call {
    kind: usize,
    body: Bytes,
}

fn check_body(kind: &CallKind, n: usize) -> Bytes {
    let body = json!({
        "tool": kind.tool,
        "params": kind.params,
        "agent": {"id": "main", "session": "agent:main:main", "run_id": "r-1",
                  "tool_call_id": format!("t-{n}")},
        "requester": {"channel": "slack", "sender_id": "U1", "sender_is_owner": false},
    });
    Bytes::from(serde_json::to_vec(&body).expect("static JSON serializes"))
}

/// A fixed, seeded sequence of calls drawn with the mix's weights: the same on every run.
fn call_pool(kinds: &[CallKind], len: usize) -> Arc<[Call]> {
    let total: u32 = kinds.iter().map(|k| k.weight).sum();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|n| {
            // xorshift64*: small, deterministic, good enough to shuffle a mix.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % total;
            let mut acc = 0;
            let kind = kinds
                .iter()
                .position(|k| {
                    acc += k.weight;
                    r < acc
                })
                .expect("r < total");
            Call {
                kind,
                body: check_body(&kinds[kind], n),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Servers under test
// ---------------------------------------------------------------------------------------------

fn server_runtime(name: &str, threads: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

const BASELINE_BODY: &[u8] =
    br#"{"decision":"allow","effect":"allow","risk":"low","reasons":[],"mode":"enforce"}"#;

/// The baseline: hyper HTTP/1.1, reads the whole request body, answers a fixed JSON body.
async fn baseline_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let _ = req.into_body().collect().await;
                let mut resp = Response::new(Full::new(Bytes::from_static(BASELINE_BODY)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Baseline,
    Clawgate,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Baseline => "baseline",
            Target::Clawgate => "clawgate",
        }
    }
}

const DECISIONS: [&str; 3] = ["allow", "deny", "pending"];

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: client_http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
    /// `Authorization` sent with every check (an identity's bearer token), if any.
    auth: Option<HeaderValue>,
}

impl Conn {
    async fn open(addr: SocketAddr, auth: Option<HeaderValue>) -> Result<Conn, String> {
        let (sender, host) = connect_http1(addr).await?;
        Ok(Conn { sender, host, auth })
    }

    /// Send one check; return the whole `200` answer's body.
    async fn check_raw(&mut self, body: &Bytes) -> Result<Bytes, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let mut req = Request::post("/v1/check")
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .expect("valid request");
        if let Some(auth) = &self.auth {
            req.headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading response body: {e}"))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        Ok(bytes)
    }

    /// Send one check; return the index of its decision in [`DECISIONS`].
    async fn check(&mut self, body: &Bytes) -> Result<usize, String> {
        let bytes = self.check_raw(body).await?;
        decision_of(&bytes).ok_or_else(|| {
            format!(
                "200 without a known decision: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )
        })
    }
}

/// Find `"decision":"..."` in a response without a full JSON parse: the load generator
/// shares the CPU with the server, so it should do as little as it can.
fn decision_of(body: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"decision\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &body[at..];
    let end = rest.iter().position(|b| *b == b'"')?;
    DECISIONS.iter().position(|d| d.as_bytes() == &rest[..end])
}

/// What one worker saw.
struct Tally {
    latency: Histogram<u64>,
    /// Open loop only: how late the request left relative to its schedule.
    send_lag: Histogram<u64>,
    /// Measured latency per call kind (2 significant figures: enough to compare kinds).
    per_kind: Vec<Histogram<u64>>,
    /// `[kind][decision]` counts over the whole run, warm-up included.
    decisions: Vec<[u64; 3]>,
    /// Timed requests (started, or for the open loop scheduled, in the measured window).
    requests: u64,
    /// Open loop: responses that arrived inside the measured window.
    answered_in_window: u64,
    /// Open loop: scheduled requests never sent because the server was too far behind.
    given_up: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new(kinds: usize) -> Tally {
        Tally {
            latency: new_histogram(),
            send_lag: new_histogram(),
            per_kind: (0..kinds)
                .map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("bounds"))
                .collect(),
            decisions: vec![[0; 3]; kinds],
            requests: 0,
            answered_in_window: 0,
            given_up: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        self.send_lag.add(&other.send_lag).expect("same bounds");
        for (a, b) in self.per_kind.iter_mut().zip(&other.per_kind) {
            a.add(b).expect("same bounds");
        }
        for (a, b) in self.decisions.iter_mut().zip(other.decisions) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.requests += other.requests;
        self.answered_in_window += other.answered_in_window;
        self.given_up += other.given_up;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

async fn open_conns(addr: SocketAddr, n: usize, auth: Option<HeaderValue>) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(
            Conn::open(addr, auth.clone())
                .await
                .unwrap_or_else(|e| panic!("cannot open connection: {e}")),
        );
    }
    conns
}

/// What every scenario shares: the calls to send, and how long to warm up and measure.
struct Plan {
    pool: Arc<[Call]>,
    kinds: usize,
    warmup: Duration,
    measure: Duration,
    /// `Authorization` header for every request (the identity section's bearer token).
    auth: Option<HeaderValue>,
}

/// Closed loop: `concurrency` connections, each sending back-to-back until `end`.
/// Requests started before `measure_from` are checked but not timed.
async fn closed_loop(addr: SocketAddr, concurrency: usize, plan: Plan) -> Tally {
    let Plan {
        pool,
        kinds,
        warmup,
        measure,
        auth,
    } = plan;
    let conns = open_conns(addr, concurrency, auth).await;
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut tasks = Vec::with_capacity(concurrency);
    for (w, mut conn) in conns.into_iter().enumerate() {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new(kinds);
            // Spread the workers over the pool so they do not all send the same call.
            let mut i = w * pool.len() / concurrency;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let call = &pool[i % pool.len()];
                i += 1;
                match conn.check(&call.body).await {
                    Ok(d) => {
                        tally.decisions[call.kind][d] += 1;
                        if t0 >= measure_from {
                            let ns = nanos(t0.elapsed());
                            tally.requests += 1;
                            let _ = tally.latency.record(ns);
                            let _ = tally.per_kind[call.kind].record(ns);
                        }
                    }
                    Err(e) => {
                        tally.error(e);
                        break;
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::new(kinds);
    for t in tasks {
        total.merge(t.await.expect("worker panicked"));
    }
    total
}

/// How long an open-loop run may go on past its window to answer what was already scheduled.
const OPEN_LOOP_DRAIN: Duration = Duration::from_secs(2);

/// Open loop: a pacer thread emits one ticket every `1/rate` s, round-robin over `conns`
/// connections; each request's latency runs from its ticket's scheduled time.
fn open_loop(rt: &Runtime, addr: SocketAddr, rate: u32, conns: usize, plan: Plan) -> Tally {
    let Plan {
        pool,
        kinds,
        warmup,
        measure,
        auth,
    } = plan;
    let connections = rt.block_on(open_conns(addr, conns, auth));
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    // Give the workers a moment to park on their queues before the first tick.
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let give_up = end + OPEN_LOOP_DRAIN;
    let mut senders = Vec::with_capacity(conns);
    let mut tasks = Vec::with_capacity(conns);
    for mut conn in connections {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, usize)>();
        senders.push(tx);
        let pool = pool.clone();
        tasks.push(rt.spawn(async move {
            let mut tally = Tally::new(kinds);
            while let Some((scheduled, k)) = rx.recv().await {
                let sent = Instant::now();
                let call = &pool[k % pool.len()];
                if sent >= give_up {
                    // The server fell far behind: do not let the backlog stretch the run.
                    // The wait so far is a lower bound of this request's latency.
                    if scheduled >= measure_from {
                        let ns = nanos(sent - scheduled);
                        tally.requests += 1;
                        tally.given_up += 1;
                        let _ = tally.latency.record(ns);
                        let _ = tally.per_kind[call.kind].record(ns);
                        let _ = tally.send_lag.record(ns);
                    }
                    continue;
                }
                match conn.check(&call.body).await {
                    Ok(d) => {
                        tally.decisions[call.kind][d] += 1;
                        let done = Instant::now();
                        if done >= measure_from && done < end {
                            tally.answered_in_window += 1;
                        }
                        if scheduled >= measure_from {
                            let ns = nanos(scheduled.elapsed());
                            tally.requests += 1;
                            let _ = tally.latency.record(ns);
                            let _ = tally.per_kind[call.kind].record(ns);
                            let _ = tally
                                .send_lag
                                .record(nanos(sent.saturating_duration_since(scheduled)));
                        }
                    }
                    Err(e) => {
                        tally.error(e);
                        break;
                    }
                }
            }
            tally
        }));
    }
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            let mut k: u32 = 0;
            loop {
                let scheduled = start + period * k;
                if scheduled >= end {
                    break;
                }
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                let i = k as usize;
                // A worker that stopped on an error has dropped its queue; its tally says why.
                let _ = senders[i % senders.len()].send((scheduled, i));
                k += 1;
            }
        })
        .expect("pacer thread");
    let mut total = Tally::new(kinds);
    rt.block_on(async {
        for t in tasks {
            total.merge(t.await.expect("worker panicked"));
        }
    });
    pacer.join().expect("pacer panicked");
    total
}

// ---------------------------------------------------------------------------------------------
// Scenarios and report
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Load {
    Closed { concurrency: usize },
    Open { rate: u32, conns: usize },
}

impl Load {
    fn describe(self) -> String {
        match self {
            Load::Closed { concurrency } => format!("closed loop, c={concurrency}"),
            Load::Open { rate, conns } => format!("open loop, {rate}/s over {conns} conns"),
        }
    }
}

struct Row {
    target: Target,
    rps: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    requests: u64,
    lag_p99: Option<u64>,
    given_up: u64,
}

fn print_scenario(load: Load, rows: &[Row]) {
    println!();
    println!("== {} ==", load.describe());
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "target", "req/s", "p50", "p99", "p99.9", "max", "requests"
    );
    for r in rows {
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            r.target.name(),
            fmt_rate(r.rps),
            fmt_ns(r.p50),
            fmt_ns(r.p99),
            fmt_ns(r.p999),
            fmt_ns(r.max),
            r.requests
        );
    }
    let claw = rows.iter().find(|r| r.target == Target::Clawgate);
    let base = rows.iter().find(|r| r.target == Target::Baseline);
    if let (Some(c), Some(b)) = (claw, base) {
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "ratio c/b",
            ratio(c.rps, b.rps),
            ratio(c.p50 as f64, b.p50 as f64),
            ratio(c.p99 as f64, b.p99 as f64),
            ratio(c.p999 as f64, b.p999 as f64),
            ratio(c.max as f64, b.max as f64),
        );
    }
    for r in rows {
        if let Some(lag) = r.lag_p99 {
            println!(
                "  ({}: p99 wait between scheduled and actual send {}; latency counts from the schedule)",
                r.target.name(),
                fmt_ns(lag)
            );
        }
        if r.given_up > 0 {
            println!(
                "  ({}: SATURATED: {} scheduled requests were never sent, the server being over {} s \
                 behind; their wait until then is counted, a lower bound)",
                r.target.name(),
                r.given_up,
                OPEN_LOOP_DRAIN.as_secs()
            );
        }
    }
}

struct Bench<'a> {
    settings: &'a Settings,
    client: &'a Runtime,
    pool: Arc<[Call]>,
    kinds: &'a [CallKind],
    /// Decisions per kind over every clawgate run.
    clawgate_decisions: Vec<[u64; 3]>,
    /// Per-kind `(p50, p99)` of clawgate's first closed-loop run at concurrency 1.
    clawgate_per_kind: Option<Vec<(u64, u64)>>,
}

impl Bench<'_> {
    fn run(&mut self, target: Target, addr: SocketAddr, load: Load) -> Row {
        let s = &self.settings;
        let window = match load {
            Load::Closed { .. } => s.closed_secs,
            Load::Open { .. } => s.open_secs,
        };
        let plan = Plan {
            pool: self.pool.clone(),
            kinds: self.kinds.len(),
            warmup: s.warmup,
            measure: window,
            auth: None,
        };
        let tally = match load {
            Load::Closed { concurrency } => {
                self.client.block_on(closed_loop(addr, concurrency, plan))
            }
            Load::Open { rate, conns } => open_loop(self.client, addr, rate, conns, plan),
        };
        if tally.errors > 0 {
            panic!(
                "{} / {}: {} request(s) failed; first: {}",
                target.name(),
                load.describe(),
                tally.errors,
                tally.first_error.unwrap_or_default()
            );
        }
        if tally.requests == 0 {
            panic!(
                "{} / {}: no request completed in the measured window",
                target.name(),
                load.describe()
            );
        }
        if target == Target::Clawgate
            && matches!(load, Load::Closed { concurrency: 1 })
            && self.clawgate_per_kind.is_none()
        {
            self.clawgate_per_kind = Some(
                tally
                    .per_kind
                    .iter()
                    .map(|h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
                    .collect(),
            );
        }
        if target == Target::Clawgate {
            for (a, b) in self.clawgate_decisions.iter_mut().zip(&tally.decisions) {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
        }
        let h = &tally.latency;
        Row {
            target,
            // Closed loop: requests started in the window. Open loop: answers that arrived in
            // it, so a server that cannot keep up shows its real rate, not the offered one.
            rps: match load {
                Load::Closed { .. } => tally.requests,
                Load::Open { .. } => tally.answered_in_window,
            } as f64
                / window.as_secs_f64(),
            given_up: tally.given_up,
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            requests: tally.requests,
            lag_p99: matches!(load, Load::Open { .. })
                .then(|| tally.send_lag.value_at_quantile(0.99)),
        }
    }
}

/// `CLAWGATE_BENCH_DECISION_CACHE`: `policy.decision_cache_entries`, when set.
fn decision_cache_knob() -> Option<usize> {
    std::env::var("CLAWGATE_BENCH_DECISION_CACHE")
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("CLAWGATE_BENCH_DECISION_CACHE={v:?}: not a number"))
        })
}

fn install_logging(filter: &str) {
    // The same JSON format `clawgate serve --log-format json` uses, written to a sink: this
    // measures the cost of building log events, not of a terminal or a disk.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::sink)
        .json()
        .init();
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let settings = Settings::from_env();
    if let Some(filter) = &settings.log {
        install_logging(filter);
    }
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let kinds = call_kinds();
    let pool = call_pool(&kinds, 4096);

    let mut missed = Vec::new();
    if settings.sections.contains(&Section::Load) {
        missed = load_section(&settings, &client, &kinds, &pool);
    }
    if settings.sections.contains(&Section::Identity) {
        identity::section(&settings, &client, &kinds, &pool);
    }

    if settings.enforce_targets && !missed.is_empty() {
        eprintln!("targets missed: {}", missed.join(", "));
        std::process::exit(1);
    }
}

/// The baseline and the default clawgate under closed and open loops; returns the issue's
/// targets it missed.
fn load_section(
    settings: &Settings,
    client: &Runtime,
    kinds: &[CallKind],
    pool: &Arc<[Call]>,
) -> Vec<&'static str> {
    // Servers.
    let data_dir = bench_tempdir();
    // The embedded defaults (policy bundle, mode, limits), with the state in a temp dir and
    // every listener on a free loopback port.
    let mut config = Config {
        data_dir: data_dir.path().join("data"),
        ..Config::default()
    };
    // To measure another bundle than the embedded default one.
    let policy_dir = std::env::var_os("CLAWGATE_BENCH_POLICY_DIR").map(std::path::PathBuf::from);
    if let Some(dir) = &policy_dir {
        config.policy.dir = Some(dir.clone());
        config.policy.watch = false;
    }
    // CLAWGATE_BENCH_DECISION_CACHE=0 measures every check as a cache miss (full evaluation).
    if let Some(n) = decision_cache_knob() {
        config.policy.decision_cache_entries = n;
    }
    config.listeners.agent.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listeners.egress.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listeners.admin.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let claw_rt = server_runtime("clawgate-srv", settings.server_threads);
    let running = claw_rt
        .block_on(clawgate::app::start(config))
        .expect("clawgate starts");
    let claw_addr = running.agent_addr;
    let revision = running.gate.policy_bundle().revision.clone();

    let base_rt = server_runtime("baseline-srv", settings.server_threads);
    let base_addr = base_rt.block_on(async {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind baseline");
        let addr = listener.local_addr().expect("baseline addr");
        tokio::spawn(baseline_server(listener));
        addr
    });

    println!("clawgate /v1/check benchmark");
    println!(
        "  cores: {}; server runtimes: {} worker threads each; load generator: {} threads (same machine)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        settings.server_threads,
        settings.client_threads
    );
    println!(
        "  policy: {} bundle, revision {}; mode enforce; logging: {}",
        policy_dir.as_ref().map_or_else(
            || "embedded default".to_string(),
            |d| d.display().to_string()
        ),
        revision,
        settings.log.as_deref().unwrap_or("off (no subscriber)")
    );
    println!(
        "  per scenario: {:.1} s warm-up, then {:.1} s measured (open loop {:.1} s)",
        settings.warmup.as_secs_f64(),
        settings.closed_secs.as_secs_f64(),
        settings.open_secs.as_secs_f64()
    );

    // One of each call, to show what the bundle decides for the mix (and fail early).
    println!();
    println!("  {:<22} {:>6}  clawgate decision", "call", "share");
    let mut probe_summary = String::new();
    client.block_on(async {
        let mut conn = Conn::open(claw_addr, None)
            .await
            .unwrap_or_else(|e| panic!("cannot reach clawgate: {e}"));
        for (i, k) in kinds.iter().enumerate() {
            let d = conn
                .check(&check_body(k, i))
                .await
                .unwrap_or_else(|e| panic!("probe `{}` failed: {e}", k.label));
            let _ = writeln!(
                probe_summary,
                "  {:<22} {:>5}%  {}",
                k.label, k.weight, DECISIONS[d]
            );
        }
    });
    print!("{probe_summary}");

    let mut bench = Bench {
        clawgate_decisions: vec![[0; 3]; kinds.len()],
        clawgate_per_kind: None,
        settings,
        client,
        pool: pool.clone(),
        kinds,
    };

    let mut loads: Vec<Load> = bench
        .settings
        .concurrency
        .iter()
        .map(|&concurrency| Load::Closed { concurrency })
        .collect();
    loads.push(Load::Open {
        rate: bench.settings.rate,
        conns: bench.settings.open_conns,
    });

    let mut results: Vec<(Load, Vec<Row>)> = Vec::new();
    for load in loads {
        let targets = bench.settings.targets.clone();
        let rows: Vec<Row> = targets
            .into_iter()
            .map(|t| {
                let addr = match t {
                    Target::Baseline => base_addr,
                    Target::Clawgate => claw_addr,
                };
                bench.run(t, addr, load)
            })
            .collect();
        print_scenario(load, &rows);
        results.push((load, rows));
    }

    // Decisions seen over all clawgate runs, and latency at c=1, per call kind.
    if bench.settings.targets.contains(&Target::Clawgate) {
        println!();
        println!("== clawgate per call kind: decisions over all runs, latency at c=1 ==");
        println!(
            "{:<22} {:>6} {:>9} {:>9} {:>9} {:>10} {:>10}",
            "call", "share", "allow", "deny", "pending", "p50 c=1", "p99 c=1"
        );
        for (i, (k, d)) in bench
            .kinds
            .iter()
            .zip(&bench.clawgate_decisions)
            .enumerate()
        {
            let (p50, p99) = match &bench.clawgate_per_kind {
                Some(v) => (fmt_ns(v[i].0), fmt_ns(v[i].1)),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<22} {:>5}% {:>9} {:>9} {:>9} {:>10} {:>10}",
                k.label, k.weight, d[0], d[1], d[2], p50, p99
            );
        }
        println!("(every answer was 200 with a decision)");
    }

    // The issue's targets.
    println!();
    println!("== targets ==");
    let mut missed = Vec::new();
    let claw_row = |pred: &dyn Fn(Load) -> bool| {
        results
            .iter()
            .filter(|(l, _)| pred(*l))
            .flat_map(|(_, rows)| rows.iter())
            .find(|r| r.target == Target::Clawgate)
    };
    match claw_row(&|l| matches!(l, Load::Closed { concurrency: 64 })) {
        Some(r) => {
            let ok = r.rps >= 20_000.0;
            println!(
                "  >= 20,000 checks/s at c=64:      {} ({} checks/s)",
                if ok { "met" } else { "MISSED" },
                fmt_rate(r.rps)
            );
            if !ok {
                missed.push("throughput at c=64");
            }
        }
        None => println!("  >= 20,000 checks/s at c=64:      not run"),
    }
    match claw_row(&|l| matches!(l, Load::Open { rate: 1000, .. })) {
        Some(r) => {
            let ok = r.p99 < 2_000_000;
            println!(
                "  p99 < 2 ms at 1,000 checks/s:    {} (p99 {})",
                if ok { "met" } else { "MISSED" },
                fmt_ns(r.p99)
            );
            if !ok {
                missed.push("p99 at 1,000/s");
            }
        }
        None => println!("  p99 < 2 ms at 1,000 checks/s:    not run"),
    }

    drop(bench);
    claw_rt.block_on(running.shutdown(Duration::from_secs(2)));
    drop(claw_rt);
    drop(base_rt);
    missed
}

// ---------------------------------------------------------------------------------------------
// Identity section: the cost of identities, scopes and constraint layers
// ---------------------------------------------------------------------------------------------

/// The same `/v1/check` workload against two sidecars that differ only in what issue 9 adds
/// to the check path: (a) no identities (loopback peer) and verdicts without constraints;
/// (b) `[identities.NAME]` with a bearer token and scopes, and verdicts whose constraints run
/// every layer (time window, concurrency slot, rate bucket, upstream limits) without ever
/// refusing. Both use a copy of the same bundle and the same decision cache setting.
mod identity {
    use super::*;

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use clawgate::identity::{IdentityConfig, Scopes};
    use clawgate::token::TokenHash;

    const TOKEN_PREFIX: &str = "clawgate-bench-token-";
    /// A rate no run comes near, and a concurrency limit no run fills: the layers run, refuse
    /// nothing.
    const HUGE: u32 = 1_000_000_000;
    /// The line of `constraints_for` in `main.rego` that (b) extends.
    const RATE_LINE: &str = r#""per_minute": limits.rate_per_minute}"#;
    /// The entries of the decision objects in `main.rego` that (a) removes.
    const CONSTRAINTS_ENTRY: &str = r#""constraints": constraints_for("#;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Variant {
        Plain,
        Ident,
    }

    impl Variant {
        fn name(self) -> &'static str {
            match self {
                Variant::Plain => "(a) plain",
                Variant::Ident => "(b) ident",
            }
        }
    }

    /// A copy of the source bundle (tests left out) with `main.rego` patched for `variant`.
    fn variant_bundle(src: &Path, out: &Path, variant: Variant) -> PathBuf {
        copy_bundle(src, out, |name, text| {
            if name != "main.rego" {
                return text;
            }
            patch_main(&text, variant).unwrap_or_else(|e| {
                panic!("identity section: cannot patch {name}: {e}; update benches/check.rs")
            })
        })
    }

    fn patch_main(text: &str, variant: Variant) -> Result<String, String> {
        match variant {
            Variant::Plain => {
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with(CONSTRAINTS_ENTRY))
                    .collect();
                if kept.len() == text.lines().count() {
                    return Err(format!("no line starts with {CONSTRAINTS_ENTRY:?}"));
                }
                Ok(kept.join("\n") + "\n")
            }
            Variant::Ident => {
                if text.matches(RATE_LINE).count() != 1 {
                    return Err(format!("{RATE_LINE:?} does not occur exactly once"));
                }
                let extended = format!(
                    r#""per_minute": {HUGE}}}, "max_concurrent": {HUGE}, "time_window": {{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "tz_offset": "+00:00"}}"#
                );
                Ok(text.replace(RATE_LINE, &extended))
            }
        }
    }

    /// The tool groups of the mix (from the bundle's catalog) plus `unknown`: the narrowest
    /// `scopes.tool_groups` that lets the whole mix through.
    fn mix_groups(bundle: &Path, kinds: &[CallKind]) -> Vec<String> {
        let data: serde_json::Value = serde_json::from_slice(
            &std::fs::read(bundle.join("data.json")).expect("read data.json"),
        )
        .expect("data.json parses");
        let tools = &data["clawgate"]["tools"];
        let mut groups: BTreeSet<String> = kinds
            .iter()
            .filter_map(|k| tools[k.tool]["group"].as_str().map(str::to_string))
            .collect();
        groups.insert("unknown".into());
        groups.into_iter().collect()
    }

    struct Sidecar {
        rt: Runtime,
        running: Option<clawgate::app::Running>,
        _data: tempfile::TempDir,
    }

    impl Drop for Sidecar {
        fn drop(&mut self) {
            if let Some(r) = self.running.take() {
                self.rt.block_on(r.shutdown(Duration::from_secs(2)));
            }
        }
    }

    fn start(settings: &Settings, variant: Variant, bundles: &Path, kinds: &[CallKind]) -> Sidecar {
        let data = bench_tempdir();
        let dir = variant_bundle(
            &source_bundle(),
            &bundles.join(match variant {
                Variant::Plain => "plain",
                Variant::Ident => "ident",
            }),
            variant,
        );
        let mut config = Config {
            data_dir: data.path().join("data"),
            ..Config::default()
        };
        config.policy.dir = Some(dir.clone());
        config.policy.watch = false;
        if let Some(n) = decision_cache_knob() {
            config.policy.decision_cache_entries = n;
        }
        config.listeners.agent.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.egress.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.admin.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        if variant == Variant::Ident {
            let scopes = Scopes {
                tool_groups: Some(mix_groups(&dir, kinds)),
                mcp_servers: Some(vec!["github".into()]),
                egress_hosts: Some(vec!["**.example.com".into()]),
                environments: Some(vec![config.environment.clone()]),
            };
            config.identities = (0..settings.identities)
                .map(|i| {
                    (
                        format!("bench-agent-{i}"),
                        IdentityConfig {
                            token_sha256: Some(TokenHash::hex_of(&format!("{TOKEN_PREFIX}{i}"))),
                            cert_subject: None,
                            uid: None,
                            scopes: scopes.clone(),
                            home: None,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>();
        }
        let rt = server_runtime(
            match variant {
                Variant::Plain => "plain-srv",
                Variant::Ident => "ident-srv",
            },
            settings.server_threads,
        );
        let running = rt
            .block_on(clawgate::app::start(config))
            .unwrap_or_else(|e| panic!("{} sidecar does not start: {e}", variant.name()));
        Sidecar {
            rt,
            running: Some(running),
            _data: data,
        }
    }

    /// The bearer token (b) sends: the last identity's, so every configured hash is compared.
    fn bearer(settings: &Settings) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {TOKEN_PREFIX}{}", settings.identities - 1))
            .expect("ASCII token")
    }

    /// One check of each kind on both sidecars: the same decisions, and (b)'s allowed answers
    /// carry the constraints while (a)'s carry none.
    fn probe(
        client: &Runtime,
        kinds: &[CallKind],
        plain: SocketAddr,
        ident: SocketAddr,
        auth: &HeaderValue,
    ) -> Vec<usize> {
        client.block_on(async {
            let mut a = Conn::open(plain, None).await.expect("reach (a)");
            let mut b = Conn::open(ident, Some(auth.clone()))
                .await
                .expect("reach (b)");
            let mut decisions = Vec::new();
            for (i, k) in kinds.iter().enumerate() {
                let body = check_body(k, 1_000_000 + i);
                let ra = a.check_raw(&body).await.unwrap_or_else(|e| {
                    panic!("(a) probe `{}` failed: {e}", k.label);
                });
                let rb = b.check_raw(&body).await.unwrap_or_else(|e| {
                    panic!("(b) probe `{}` failed: {e}", k.label);
                });
                let (da, db) = (decision_of(&ra), decision_of(&rb));
                let show = |r: &Bytes| String::from_utf8_lossy(&r[..r.len().min(400)]).into_owned();
                assert!(
                    da.is_some() && da == db,
                    "probe `{}`: (a) and (b) decide differently: (a) {} | (b) {}",
                    k.label,
                    show(&ra),
                    show(&rb)
                );
                let has = |r: &Bytes, s: &str| r.windows(s.len()).any(|w| w == s.as_bytes());
                assert!(
                    !has(&ra, "\"constraints\""),
                    "(a) answered with constraints: {}",
                    show(&ra)
                );
                if da == Some(0) {
                    assert!(
                        has(&rb, "\"max_concurrent\"") && has(&rb, "\"time_window\""),
                        "(b) allowed `{}` without the bench's constraints: {}",
                        k.label,
                        show(&rb)
                    );
                }
                decisions.push(da.expect("checked above"));
            }
            decisions
        })
    }

    pub(super) fn section(
        settings: &Settings,
        client: &Runtime,
        kinds: &[CallKind],
        pool: &Arc<[Call]>,
    ) {
        let bundles = tempfile::tempdir().expect("temp dir");
        let plain = start(settings, Variant::Plain, bundles.path(), kinds);
        let ident = start(settings, Variant::Ident, bundles.path(), kinds);
        let addr = |s: &Sidecar| s.running.as_ref().expect("running").agent_addr;
        let auth = bearer(settings);
        let probed = probe(client, kinds, addr(&plain), addr(&ident), &auth);

        println!();
        println!("== identity and constraints: /v1/check with and without them ==");
        println!(
            "  bundle: a copy of {} (tests left out), main.rego patched per sidecar; decision cache: {}",
            source_bundle().display(),
            decision_cache_knob().map_or_else(|| "config default".to_string(), |n| n.to_string())
        );
        println!(
            "  state (durable audit) of both in {}",
            std::env::var_os("CLAWGATE_BENCH_DIR")
                .map_or_else(std::env::temp_dir, PathBuf::from)
                .display()
        );
        println!("  (a) plain: no identities (loopback peer), verdicts without constraints");
        println!(
            "  (b) ident: {} identit{} (token_sha256; requests send Authorization: Bearer), scopes \
             tool_groups {:?}, environments, mcp_servers, egress_hosts; verdicts with rate \
             {HUGE}/min, max_concurrent {HUGE}, time_window every day from 00:00",
            settings.identities,
            if settings.identities == 1 { "y" } else { "ies" },
            mix_groups(&bundles.path().join("ident"), kinds)
        );
        let allowed: Vec<&str> = kinds
            .iter()
            .zip(&probed)
            .filter(|(_, d)| **d == 0)
            .map(|(k, _)| k.label)
            .collect();
        println!(
            "  allowed by both (the rest is denied or pending in both): {}",
            allowed.join(", ")
        );
        println!(
            "{:<6} {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "c", "sidecar", "req/s", "p50", "p99", "p99.9", "max", "requests"
        );
        for &concurrency in &settings.identity_concurrency {
            let mut rows = Vec::new();
            for (variant, sidecar, auth) in [
                (Variant::Plain, &plain, None),
                (Variant::Ident, &ident, Some(auth.clone())),
            ] {
                let plan = Plan {
                    pool: pool.clone(),
                    kinds: kinds.len(),
                    warmup: settings.warmup,
                    measure: settings.closed_secs,
                    auth,
                };
                let tally = client.block_on(closed_loop(addr(sidecar), concurrency, plan));
                if tally.errors > 0 {
                    panic!(
                        "{} / c={concurrency}: {} request(s) failed; first: {}",
                        variant.name(),
                        tally.errors,
                        tally.first_error.unwrap_or_default()
                    );
                }
                // Every kind must get the decision the probe saw: a refusal by a scope or
                // a constraint in (b) would make it a different workload.
                for (k, (counts, expected)) in kinds.iter().zip(tally.decisions.iter().zip(&probed))
                {
                    let other: u64 = counts
                        .iter()
                        .enumerate()
                        .filter(|(d, _)| d != expected)
                        .map(|(_, n)| n)
                        .sum();
                    assert!(
                        other == 0,
                        "{} / c={concurrency}: {other} `{}` call(s) were not {} (scope or \
                         constraint refusals?)",
                        variant.name(),
                        k.label,
                        DECISIONS[*expected]
                    );
                }
                assert!(
                    tally.requests > 0,
                    "{}: no request measured",
                    variant.name()
                );
                let h = &tally.latency;
                let row = (
                    tally.requests as f64 / settings.closed_secs.as_secs_f64(),
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.99),
                    h.value_at_quantile(0.999),
                    h.max(),
                );
                println!(
                    "{:<6} {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    concurrency,
                    variant.name(),
                    fmt_rate(row.0),
                    fmt_ns(row.1),
                    fmt_ns(row.2),
                    fmt_ns(row.3),
                    fmt_ns(row.4),
                    tally.requests
                );
                rows.push(row);
            }
            let (a, b) = (rows[0], rows[1]);
            println!(
                "{:<6} {:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                concurrency,
                "ratio b/a",
                ratio(b.0, a.0),
                ratio(b.1 as f64, a.1 as f64),
                ratio(b.2 as f64, a.2 as f64),
                ratio(b.3 as f64, a.3 as f64),
                ratio(b.4 as f64, a.4 as f64),
            );
        }
        let slots = ident
            .running
            .as_ref()
            .expect("running")
            .gate
            .actions_running(&format!("bench-agent-{}", settings.identities - 1));
        println!(
            "(every answer was 200 with the probe's decision for its kind. (b)'s allowed checks \
             keep a concurrency slot until /v1/results or the verdict's timeout_ms, and the \
             bench sends no results: {slots} slots were held at the end)"
        );
        drop(plain);
        drop(ident);
    }
}
