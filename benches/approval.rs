//! Benchmark of the approval path: how fast a held call is released once a person answers,
//! and what holding many calls costs.
//!
//! Two sections:
//!
//! * **callback**: clawgate in-process (`clawgate::app::start`, its own runtime, a policy
//!   directory where `write` needs one approver of `group:sre`). For each iteration a fresh
//!   `write` action is asked once (answer `pending`), asked again with `?wait=30` on another
//!   connection (held), and then approved by a correctly signed callback on the admin
//!   listener. Measured: from just before the callback is sent to the held check's `allow`
//!   being fully read, and the callback's own round trip. Both for the generic Standard
//!   Webhooks callback and a Slack interactivity click. Baseline from the same run and
//!   sidecar: a plain allowed `read` check.
//! * **held**: the real `clawgate serve` binary in a child process (so its memory is its own,
//!   read from `/proc/<pid>/status`) with `approval.max_wait_s = 120`. Resident memory idle,
//!   with K pending approvals, and with 10,000 held `POST /v1/check?wait=120` requests (each on
//!   its own HTTP/1.1 connection, 10 per approval); the process's CPU time while it holds them;
//!   then every approval is answered by signed callback and all held requests must come back
//!   `allow` (how long that drain takes).
//!   A second, fresh child then gets as many idle keep-alive connections (one allowed check
//!   each), so the memory of a held request can be told from that of its connection.
//!
//! Any failed or unexpected answer aborts the run with the first failure.
//! Run: `cargo bench --bench approval`. See `benches/README.md` for the knobs.

// The same allocator as the clawgate binary, so the in-process section measures what ships.
#[global_allocator]
static GLOBAL: clawgate::alloc::Allocator = clawgate::alloc::Allocator::new();

// Shared with the other benchmarks; not every helper is used here.
#[allow(dead_code)]
mod support;
use support::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1 as client_http1;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use clawgate::admin::auth::AdminToken;
use clawgate::approvers::slack::slack_signature;
use clawgate::approvers::webhook::WebhookSecret;
use clawgate::config::Config;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SLACK_SECRET: &str = "bench-slack-signing-secret";
const ADMIN_TOKEN: &str = "bench-admin-token";
/// A member of `group:sre`; the requester (`U1`) is not, so self-approval never applies.
const APPROVER: &str = "U_ALICE";

/// `read` is allowed; `write` needs one person from group:sre and lives 10 minutes.
const POLICY: &str = r#"package clawgate

default decision := {"effect": "deny", "risk": "high", "reasons": ["unknown tool"]}

decision := {"effect": "allow", "risk": "low", "reasons": ["read is safe"]} if input.action.tool == "read"

decision := {"effect": "require_approval", "risk": "medium", "reasons": ["writes need a person"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 600}} if input.action.tool == "write"
"#;

/// After the server recorded the held check's first decision, it subscribes to the approval
/// within microseconds; this margin makes sure it did before the callback goes out.
const HOLD_SETTLE: Duration = Duration::from_millis(5);
/// Unrecorded iterations per variant before the callback section measures.
const WARMUP_ITERS: usize = 10;
/// Connections opened at once in the held section (keeps the accept queue short).
const CONNECT_CONCURRENCY: usize = 64;
/// Connections creating approvals and sending callbacks in the held section.
const CONTROL_CONNS: usize = 8;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

struct Settings {
    iters: usize,
    held: usize,
    held_approvals: usize,
    server_threads: usize,
    client_threads: usize,
    callback: bool,
    held_section: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let (mut callback, mut held_section) = (true, true);
        if let Ok(v) = std::env::var("CLAWGATE_BENCH_SECTIONS") {
            (callback, held_section) = (false, false);
            for s in v.split(',') {
                match s.trim() {
                    "callback" => callback = true,
                    "held" => held_section = true,
                    other => panic!("CLAWGATE_BENCH_SECTIONS: unknown section {other:?}"),
                }
            }
        }
        Settings {
            iters: env_usize("CLAWGATE_BENCH_APPROVAL_ITERS", 300),
            held: env_usize("CLAWGATE_BENCH_HELD", 10_000),
            held_approvals: env_usize("CLAWGATE_BENCH_HELD_APPROVALS", 1000),
            server_threads: env_usize("CLAWGATE_BENCH_SERVER_THREADS", 2),
            client_threads: env_usize("CLAWGATE_BENCH_CLIENT_THREADS", 2),
            callback,
            held_section,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// One keep-alive HTTP/1.1 connection.
struct Http1 {
    sender: client_http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Http1 {
    async fn open(addr: SocketAddr) -> Result<Http1, String> {
        let (sender, host) = connect_http1(addr).await?;
        Ok(Http1 { sender, host })
    }

    /// Send one request and read the whole answer.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("building request {path}: {e}"))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("{path}: request failed: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path}: reading response body: {e}"))?
            .to_bytes();
        Ok((status, bytes))
    }

    async fn post_json(&mut self, path: &str, body: &Bytes) -> Result<(StatusCode, Bytes), String> {
        let headers = [("content-type", "application/json".to_string())];
        self.send(Method::POST, path, &headers, body.clone()).await
    }

    async fn get_admin(&mut self, path: &str) -> Result<Value, String> {
        let headers = [("authorization", format!("Bearer {ADMIN_TOKEN}"))];
        let (status, bytes) = self.send(Method::GET, path, &headers, Bytes::new()).await?;
        expect_json(path, status, &bytes)
    }
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned()
}

fn expect_json(what: &str, status: StatusCode, bytes: &[u8]) -> Result<Value, String> {
    if status != StatusCode::OK {
        return Err(format!("{what}: status {status}: {}", snippet(bytes)));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| format!("{what}: answer is not JSON ({e}): {}", snippet(bytes)))
}

/// A `/v1/check` answer with the expected decision.
fn expect_decision(
    what: &str,
    status: StatusCode,
    bytes: &[u8],
    want: &str,
) -> Result<Value, String> {
    let v = expect_json(what, status, bytes)?;
    if v["decision"] != want {
        return Err(format!(
            "{what}: expected decision {want}, got {}: {}",
            v["decision"],
            snippet(bytes)
        ));
    }
    Ok(v)
}

/// A tool call in the `/v1/check` shape, asked by `U1` (not an approver) through agent `main`.
fn check_body(tool: &str, params: Value, n: usize) -> Bytes {
    let body = json!({
        "tool": tool,
        "params": params,
        "agent": {"id": "main", "session": "agent:main:main", "run_id": "r-1",
                  "tool_call_id": format!("t-{n}")},
        "requester": {"channel": "slack", "sender_id": "U1", "sender_is_owner": false},
    });
    Bytes::from(serde_json::to_vec(&body).expect("static JSON serializes"))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The two ways an approver's answer arrives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// `POST /v1/approvals/{id}/decision`, signed the Standard Webhooks way.
    Webhook,
    /// `POST /v1/slack/interactions`, a button click signed with the Slack signing secret.
    Slack,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Webhook => "generic webhook",
            Channel::Slack => "Slack click",
        }
    }
}

/// The signed callback approving `approval_id`: path, headers, body.
fn callback(
    channel: Channel,
    secret: &WebhookSecret,
    approval_id: &str,
    msg_id: &str,
) -> (String, Vec<(&'static str, String)>, Bytes) {
    let ts = now_unix();
    match channel {
        Channel::Webhook => {
            let body = serde_json::to_vec(
                &json!({"approval_id": approval_id, "decision": "approve", "approver": APPROVER}),
            )
            .expect("static JSON serializes");
            let sig = secret.sign(msg_id, ts, &body);
            (
                format!("/v1/approvals/{approval_id}/decision"),
                vec![
                    ("content-type", "application/json".into()),
                    ("webhook-id", msg_id.into()),
                    ("webhook-timestamp", ts.to_string()),
                    ("webhook-signature", sig),
                ],
                Bytes::from(body),
            )
        }
        Channel::Slack => {
            // No response_url: clawgate would post the message update to it.
            let payload = json!({
                "type": "block_actions",
                "user": {"id": APPROVER, "username": "alice"},
                "actions": [{"action_id": "approve", "block_id": "clawgate_approval",
                             "value": approval_id, "type": "button"}],
            });
            let body: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &payload.to_string())
                .finish();
            let ts = ts.to_string();
            let sig = slack_signature(SLACK_SECRET, &ts, body.as_bytes());
            (
                "/v1/slack/interactions".into(),
                vec![
                    ("content-type", "application/x-www-form-urlencoded".into()),
                    ("x-slack-request-timestamp", ts),
                    ("x-slack-signature", sig),
                ],
                Bytes::from(body),
            )
        }
    }
}

/// Send the callback and check that it approved.
async fn approve(
    conn: &mut Http1,
    channel: Channel,
    secret: &WebhookSecret,
    approval_id: &str,
    msg_id: &str,
) -> Result<(), String> {
    let (path, headers, body) = callback(channel, secret, approval_id, msg_id);
    let (status, bytes) = conn.send(Method::POST, &path, &headers, body).await?;
    let v = expect_json(
        &format!("{} for {approval_id}", channel.name()),
        status,
        &bytes,
    )?;
    let approved = match channel {
        Channel::Webhook => v["approval"]["status"] == "approved",
        Channel::Slack => v["text"]
            .as_str()
            .is_some_and(|t| t.contains("now approved")),
    };
    if approved {
        Ok(())
    } else {
        Err(format!(
            "{} for {approval_id} did not approve: {}",
            channel.name(),
            snippet(&bytes)
        ))
    }
}

fn write_policy(dir: &Path) -> PathBuf {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).expect("create policy dir");
    std::fs::write(policy.join("main.rego"), POLICY).expect("write policy");
    policy
}

fn percentiles(h: &Histogram<u64>) -> (u64, u64, u64) {
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
}

// ---------------------------------------------------------------------------------------------
// Section 1: callback → held answer, in-process
// ---------------------------------------------------------------------------------------------

struct Measured {
    label: String,
    hist: Histogram<u64>,
}

/// One approval round: ask, hold, approve; returns (callback → held answer, callback round trip).
#[allow(clippy::too_many_arguments)]
async fn round(
    ctl: &mut Http1,
    admin: &mut Http1,
    held: Http1,
    audit: &clawgate::audit::AuditHealth,
    secret: &WebhookSecret,
    channel: Channel,
    i: usize,
) -> Result<(Duration, Duration, Http1), String> {
    let tag = match channel {
        Channel::Webhook => "hook",
        Channel::Slack => "slack",
    };
    let body = check_body("write", json!({"path": format!("/srv/app/{tag}/{i}")}), i);
    let (status, bytes) = ctl.post_json("/v1/check", &body).await?;
    let first = expect_decision("first write check", status, &bytes, "pending")?;
    let id = first["approval_id"]
        .as_str()
        .ok_or_else(|| format!("pending answer without approval_id: {first}"))?
        .to_string();

    // The held check: its first decision is recorded (one audit entry) and then it waits.
    let before = audit.size();
    let held_task = tokio::spawn(async move {
        let mut held = held;
        let r = held.post_json("/v1/check?wait=30", &body).await;
        (r, Instant::now(), held)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit.size() <= before {
        if Instant::now() > deadline || held_task.is_finished() {
            return Err(format!(
                "the held check for {id} never reached the server's wait"
            ));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    tokio::time::sleep(HOLD_SETTLE).await;
    if held_task.is_finished() {
        return Err(format!(
            "the held check for {id} answered before any callback"
        ));
    }

    let t0 = Instant::now();
    approve(admin, channel, secret, &id, &format!("msg_{tag}_{i}")).await?;
    let callback_rtt = t0.elapsed();
    let (r, answered, held) = held_task
        .await
        .map_err(|e| format!("held check task failed: {e}"))?;
    let (status, bytes) = r?;
    expect_decision("held write check", status, &bytes, "allow")?;
    Ok((answered.duration_since(t0), callback_rtt, held))
}

fn callback_section(s: &Settings, client: &Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.listeners.agent.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listeners.egress.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listeners.admin.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.policy.dir = Some(write_policy(dir.path()));
    config.policy.watch = false;
    config
        .approval
        .groups
        .insert("sre".into(), vec![APPROVER.into(), "U_BOB".into()]);
    // No notification URLs: nothing is sent; the secrets only verify incoming callbacks.
    config.notify.webhook.secret = Some(WEBHOOK_SECRET.into());
    config.notify.slack.signing_secret = Some(SLACK_SECRET.into());
    config.admin.token_sha256 = Some(AdminToken::hash_hex(ADMIN_TOKEN));
    // One agent asks for every approval of the benchmark at once: lift the flood bounds.
    config.approval.max_pending_per_agent = 10_000;
    config.approval.max_pending = 100_000;
    config.approval.new_per_agent_per_minute = 10_000;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.server_threads)
        .thread_name("clawgate-srv")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let running = rt
        .block_on(clawgate::app::start(config))
        .unwrap_or_else(|e| panic!("clawgate does not start: {e}"));
    let (agent, admin_addr) = (running.agent_addr, running.admin_addr);
    let audit = running.audit().health().clone();
    let secret = WebhookSecret::parse(WEBHOOK_SECRET).expect("webhook secret");

    println!();
    println!(
        "== callback → held answer: clawgate in-process ({} worker threads), {} iterations per channel ==",
        s.server_threads, s.iters
    );
    println!(
        "  (each: `write` asked once -> pending; asked again with ?wait=30 -> held, {} ms after the \
         server recorded it; then approved by a signed callback)",
        HOLD_SETTLE.as_millis()
    );

    let result: Result<Vec<Measured>, String> = client.block_on(async {
        let mut ctl = Http1::open(agent).await?;
        let mut held = Http1::open(agent).await?;
        let mut admin = Http1::open(admin_addr).await?;
        let read = check_body("read", json!({"path": "/srv/app/README.md"}), 0);
        let mut base = new_histogram();
        let channels = [Channel::Webhook, Channel::Slack];
        let mut answer: Vec<Histogram<u64>> = channels.iter().map(|_| new_histogram()).collect();
        let mut rtt: Vec<Histogram<u64>> = channels.iter().map(|_| new_histogram()).collect();
        for i in 0..WARMUP_ITERS + s.iters {
            let record = i >= WARMUP_ITERS;
            // Baseline: an allowed check, durable audit entry included.
            let t0 = Instant::now();
            let (status, bytes) = ctl.post_json("/v1/check", &read).await?;
            let d = t0.elapsed();
            expect_decision("read check", status, &bytes, "allow")?;
            if record {
                let _ = base.record(nanos(d));
            }
            for (c, channel) in channels.iter().enumerate() {
                let (to_answer, cb, conn) =
                    round(&mut ctl, &mut admin, held, &audit, &secret, *channel, i).await?;
                held = conn;
                if record {
                    let _ = answer[c].record(nanos(to_answer));
                    let _ = rtt[c].record(nanos(cb));
                }
            }
        }
        let mut out = vec![Measured {
            label: "baseline: allowed `read` check".into(),
            hist: base,
        }];
        for (c, channel) in channels.iter().enumerate() {
            out.push(Measured {
                label: format!("{}: callback round trip", channel.name()),
                hist: rtt[c].clone(),
            });
            out.push(Measured {
                label: format!("{}: callback → held answer", channel.name()),
                hist: answer[c].clone(),
            });
        }
        Ok(out)
    });
    let rows = result.unwrap_or_else(|e| panic!("callback section failed: {e}"));

    let (b50, b99, _) = percentiles(&rows[0].hist);
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "", "p50", "p99", "max", "p50/b", "p99/b"
    );
    for r in &rows {
        let (p50, p99, max) = percentiles(&r.hist);
        println!(
            "{:<44} {:>10} {:>10} {:>10} {:>8} {:>8}",
            r.label,
            fmt_ns(p50),
            fmt_ns(p99),
            fmt_ns(max),
            ratio(p50 as f64, b50 as f64),
            ratio(p99 as f64, b99 as f64),
        );
    }
    println!("  (p50/b, p99/b: against the baseline's p50 and p99 from this run)");

    rt.block_on(running.shutdown(Duration::from_secs(2)));
}

// ---------------------------------------------------------------------------------------------
// Section 2: the real binary holding many requests
// ---------------------------------------------------------------------------------------------

/// The child `clawgate serve`; terminated (SIGTERM, then SIGKILL) when dropped.
struct Child {
    child: std::process::Child,
}

impl Child {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM: a clean shutdown; the child is ours, addressed by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// VmRSS and VmHWM of a process, in bytes.
/// The `clawgate` binary the held section starts: this build's, or `CLAWGATE_BENCH_BIN` (so
/// that one bench binary can measure two builds in turn, in the same conditions).
fn clawgate_bin() -> String {
    std::env::var("CLAWGATE_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_clawgate").into())
}

/// With `CLAWGATE_BENCH_SMAPS=DIR`, keep a copy of the child's `/proc/PID/smaps` as
/// `DIR/PID-LABEL.smaps`, to tell heap from stacks and mapped files.
fn keep_smaps(pid: u32, label: &str) {
    let Ok(dir) = std::env::var("CLAWGATE_BENCH_SMAPS") else {
        return;
    };
    let to = Path::new(&dir).join(format!("{pid}-{label}.smaps"));
    if let Err(e) = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .and_then(|s| std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&to, s)))
    {
        eprintln!("CLAWGATE_BENCH_SMAPS: {}: {e}", to.display());
    }
}

fn memory(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .ok_or_else(|| format!("/proc/{pid}/status has no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// utime + stime of a process.
fn cpu_time(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may contain spaces), starting at field 3 (state):
    // utime is field 14, stime field 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable /proc/<pid>/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let (Some(u), Some(s)) = (ticks(11), ticks(12)) else {
        return Err(format!("unreadable /proc/{pid}/stat: {stat}"));
    };
    let hz = clock_ticks_per_s();
    Ok(Duration::from_nanos((u + s) * 1_000_000_000 / hz))
}

fn clock_ticks_per_s() -> u64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

/// Open sockets of a process.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Make sure this process (and so the child, which inherits it) may open `need` files.
fn raise_fd_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        panic!("getrlimit(RLIMIT_NOFILE) failed");
    }
    if lim.rlim_cur >= need {
        return;
    }
    if lim.rlim_max < need {
        panic!(
            "CLAWGATE_BENCH_HELD needs about {need} open files per process, but the hard limit \
             is {}; lower CLAWGATE_BENCH_HELD or raise the limit",
            lim.rlim_max
        );
    }
    lim.rlim_cur = need.max(lim.rlim_cur);
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        panic!("setrlimit(RLIMIT_NOFILE, {need}) failed");
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn fmt_dur(d: Duration) -> String {
    fmt_ns(nanos(d))
}

/// Poll until `done` says so or `limit` passes.
async fn poll_until<F>(what: &str, limit: Duration, mut done: F) -> Result<(), String>
where
    F: AsyncFnMut() -> Result<bool, String>,
{
    let deadline = Instant::now() + limit;
    loop {
        if done().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not done after {} s", limit.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn audit_entries(admin: &mut Http1) -> Result<u64, String> {
    let v = admin.get_admin("/v1/status").await?;
    v["audit"]["entries"]
        .as_u64()
        .ok_or_else(|| format!("/v1/status without audit.entries: {v}"))
}

/// A `clawgate serve` child with its config, policy, state and log in a temp dir.
struct Served {
    child: Child,
    dir: tempfile::TempDir,
    agent: SocketAddr,
    admin: SocketAddr,
}

impl Served {
    /// `connections`: the most the agent listener accepts, from all peers and from one.
    fn start(connections: usize) -> Served {
        let bin = clawgate_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = write_policy(dir.path());
        let (agent_port, egress_port, admin_port) = (free_port(), free_port(), free_port());
        let config_path = dir.path().join("clawgate.toml");
        let config = format!(
            "data_dir = \"{data}\"\n\
             [listeners.agent]\naddr = \"127.0.0.1:{agent_port}\"\n\
             [listeners.agent.connections]\nmax_connections = {conns}\n\
             max_connections_per_peer = {conns}\n\
             [listeners.egress]\naddr = \"127.0.0.1:{egress_port}\"\n\
             [listeners.admin]\naddr = \"127.0.0.1:{admin_port}\"\n\
             [policy]\ndir = \"{policy}\"\nwatch = false\n\
             [approval]\nmax_wait_s = 120\nmax_pending_per_agent = 10000\n\
             max_pending = 100000\nnew_per_agent_per_minute = 10000\n\
             [approval.groups]\nsre = [\"{APPROVER}\", \"U_BOB\"]\n\
             [notify.webhook]\nsecret = \"{WEBHOOK_SECRET}\"\n\
             [admin]\ntoken_sha256 = \"{token}\"\n",
            data = dir.path().join("data").display(),
            policy = policy.display(),
            token = AdminToken::hash_hex(ADMIN_TOKEN),
            // Every held request and reference connection comes from one loopback peer: raise
            // the per-peer cap (1,024 by default) above what the section opens.
            conns = connections,
        );
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("clawgate.log")).expect("create log file");
        let child = std::process::Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Served {
            child: Child { child },
            dir,
            agent: SocketAddr::from(([127, 0, 0, 1], agent_port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        }
    }

    fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Stop the child; on failure, panic with `e` and the end of its log.
    fn finish<T>(mut self, section: &str, result: Result<T, String>) -> T {
        self.child.stop();
        result.unwrap_or_else(|e| {
            let log =
                std::fs::read_to_string(self.dir.path().join("clawgate.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{section} failed: {e}\nlast lines of the clawgate log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }
}

/// Wait until the child answers `/healthz`, then warm it up: allowed checks and a few full
/// approval rounds. Returns the admin connection.
async fn up_and_warm(served: (SocketAddr, SocketAddr)) -> Result<Http1, String> {
    let (agent, admin_addr) = served;
    let secret = WebhookSecret::parse(WEBHOOK_SECRET).expect("webhook secret");
    let mut admin = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = Http1::open(admin_addr).await
                && c.send(Method::GET, "/healthz", &[], Bytes::new())
                    .await
                    .is_ok()
            {
                break c;
            }
            if Instant::now() > deadline {
                return Err("clawgate serve did not answer /healthz within 20 s".to_string());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut ctl = Http1::open(agent).await?;
    let read = check_body("read", json!({"path": "/srv/app/README.md"}), 0);
    for _ in 0..200 {
        let (status, bytes) = ctl.post_json("/v1/check", &read).await?;
        expect_decision("warm-up read", status, &bytes, "allow")?;
    }
    for i in 0..4 {
        let body = check_body("write", json!({"path": format!("/srv/warm/{i}")}), i);
        let (status, bytes) = ctl.post_json("/v1/check", &body).await?;
        let v = expect_decision("warm-up write", status, &bytes, "pending")?;
        let id = v["approval_id"].as_str().unwrap_or_default().to_string();
        let mut held = Http1::open(agent).await?;
        let task = tokio::spawn(async move { held.post_json("/v1/check?wait=120", &body).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        approve(
            &mut admin,
            Channel::Webhook,
            &secret,
            &id,
            &format!("msg_warm_{i}"),
        )
        .await?;
        let (status, bytes) = task.await.map_err(|e| format!("warm-up task: {e}"))??;
        expect_decision("warm-up held write", status, &bytes, "allow")?;
    }
    drop(ctl);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(admin)
}

fn held_section(s: &Settings, client: &Runtime) {
    let held_n = s.held;
    let k = s.held_approvals;
    raise_fd_limit(held_n as u64 + 512);
    let bin = clawgate_bin();
    let served = Served::start(held_n + 1024);
    let pid = served.pid();
    let (agent, admin_addr) = (served.agent, served.admin);
    let secret = WebhookSecret::parse(WEBHOOK_SECRET).expect("webhook secret");

    println!();
    println!(
        "== held requests: `clawgate serve` (pid {pid}, {bin}), {held_n} held over {k} approvals =="
    );

    let result = client.block_on(async {
        let mut admin = up_and_warm((agent, admin_addr)).await?;
        let idle = memory(pid)?;
        keep_smaps(pid, "idle");

        // K pending approvals.
        let t = Instant::now();
        let bodies: Arc<Vec<Bytes>> = Arc::new(
            (0..k)
                .map(|a| check_body("write", json!({"path": format!("/srv/held/{a}")}), a))
                .collect(),
        );
        let mut tasks = Vec::new();
        for c in 0..CONTROL_CONNS {
            let bodies = bodies.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = Http1::open(agent).await?;
                let mut ids = Vec::new();
                for a in (c..bodies.len()).step_by(CONTROL_CONNS) {
                    let (status, bytes) = conn.post_json("/v1/check", &bodies[a]).await?;
                    let v = expect_decision("creating an approval", status, &bytes, "pending")?;
                    let id = v["approval_id"]
                        .as_str()
                        .ok_or_else(|| format!("pending without approval_id: {v}"))?;
                    ids.push((a, id.to_string()));
                }
                Ok::<_, String>(ids)
            }));
        }
        let mut ids = vec![String::new(); k];
        for task in tasks {
            for (a, id) in task
                .await
                .map_err(|e| format!("creating approvals: {e}"))??
            {
                ids[a] = id;
            }
        }
        let create_time = t.elapsed();
        let pending = admin.get_admin("/v1/approvals?status=pending").await?;
        let listed = pending["approvals"].as_array().map_or(0, |a| a.len());
        if listed != k {
            return Err(format!("{listed} pending approvals listed, expected {k}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let with_k = memory(pid)?;
        keep_smaps(pid, "pending");

        // The held requests, each on its own connection.
        let entries_before = audit_entries(&mut admin).await?;
        let t = Instant::now();
        let connect = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let sent: Arc<Vec<Mutex<Option<Instant>>>> =
            Arc::new((0..k).map(|_| Mutex::new(None)).collect());
        let mut held_tasks = Vec::with_capacity(held_n);
        for h in 0..held_n {
            let a = h % k;
            let body = bodies[a].clone();
            let connect = connect.clone();
            let sent = sent.clone();
            held_tasks.push(tokio::spawn(async move {
                let mut conn = {
                    let _permit = connect.acquire().await.map_err(|e| e.to_string())?;
                    Http1::open(agent).await?
                };
                let (status, bytes) = conn.post_json("/v1/check?wait=120", &body).await?;
                let answered = Instant::now();
                expect_decision(&format!("held check {h}"), status, &bytes, "allow")?;
                let since_callback = sent[a]
                    .lock()
                    .map_err(|e| e.to_string())?
                    .map(|s| answered.saturating_duration_since(s))
                    .ok_or_else(|| format!("held check {h} answered before its callback"))?;
                Ok::<_, String>((answered, since_callback))
            }));
        }
        let want = entries_before + held_n as u64;
        let mut seen = entries_before;
        poll_until(
            "all held checks recorded",
            Duration::from_secs(90),
            async || {
                seen = audit_entries(&mut admin).await?;
                if held_tasks.iter().any(|t| t.is_finished()) {
                    return Err("a held check answered before any callback".into());
                }
                Ok(seen >= want)
            },
        )
        .await
        .map_err(|e| format!("{e} ({} of {held_n} seen)", seen - entries_before))?;
        let hold_time = t.elapsed();
        // Each is now subscribed to its approval (microseconds after its entry); settle.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let socks = sockets(pid);
        let held_mem = memory(pid)?;
        keep_smaps(pid, "held");
        let cpu0 = cpu_time(pid)?;
        let w0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu = cpu_time(pid)?.saturating_sub(cpu0);
        let window = w0.elapsed();
        if held_tasks.iter().any(|t| t.is_finished()) {
            return Err("a held check answered before any callback".into());
        }

        // Approve everything; every held check must come back `allow`.
        let t0 = Instant::now();
        let ids = Arc::new(ids);
        let mut cb_tasks = Vec::new();
        for c in 0..CONTROL_CONNS {
            let (ids, sent, secret) = (ids.clone(), sent.clone(), secret.clone());
            cb_tasks.push(tokio::spawn(async move {
                let mut conn = Http1::open(admin_addr).await?;
                for a in (c..ids.len()).step_by(CONTROL_CONNS) {
                    *sent[a].lock().map_err(|e| e.to_string())? = Some(Instant::now());
                    approve(
                        &mut conn,
                        Channel::Webhook,
                        &secret,
                        &ids[a],
                        &format!("msg_held_{a}"),
                    )
                    .await?;
                }
                Ok::<_, String>(())
            }));
        }
        let mut errors = Vec::new();
        for task in cb_tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("callback task: {e}")),
            }
        }
        let callbacks_time = t0.elapsed();
        let mut last = t0;
        let mut since_cb = new_histogram();
        for task in held_tasks {
            match task.await {
                Ok(Ok((answered, since))) => {
                    last = last.max(answered);
                    let _ = since_cb.record(nanos(since));
                }
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("held task: {e}")),
            }
        }
        let drain = last.duration_since(t0);
        if !errors.is_empty() {
            return Err(format!(
                "{} error(s) in the held section; first: {}",
                errors.len(),
                errors[0]
            ));
        }
        // The answered connections close; then read what the process kept.
        poll_until(
            "held connections closed",
            Duration::from_secs(30),
            async || Ok(sockets(pid) < 100),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let after = memory(pid)?;
        Ok(HeldReport {
            idle,
            with_k,
            held: held_mem,
            after,
            create_time,
            hold_time,
            sockets: socks,
            cpu,
            window,
            callbacks_time,
            drain,
            since_cb,
        })
    });
    let r = served.finish("held section", result);

    // Reference in a fresh process (the first one keeps the memory it used): as many
    // connections as there were held requests, each answered one allowed check and then left
    // open and idle. What a held request costs beyond this is the hold itself.
    let reference = Served::start(held_n + 1024);
    let rpid = reference.pid();
    let (ragent, radmin) = (reference.agent, reference.admin);
    let result = client.block_on(async {
        let _admin = up_and_warm((ragent, radmin)).await?;
        let idle = memory(rpid)?;
        let t = Instant::now();
        let connect = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = Vec::with_capacity(held_n);
        for n in 0..held_n {
            let connect = connect.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = connect.acquire().await.map_err(|e| e.to_string())?;
                let mut conn = Http1::open(ragent).await?;
                let body = check_body("read", json!({"path": "/srv/app/README.md"}), n);
                let (status, bytes) = conn.post_json("/v1/check", &body).await?;
                expect_decision("keep-alive read check", status, &bytes, "allow")?;
                Ok::<_, String>(conn)
            }));
        }
        let mut conns = Vec::with_capacity(held_n);
        for task in tasks {
            conns.push(
                task.await
                    .map_err(|e| format!("keep-alive checks: {e}"))??,
            );
        }
        let took = t.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let open = memory(rpid)?;
        keep_smaps(rpid, "keepalive");
        drop(conns);
        Ok::<_, String>((idle, open, took))
    });
    let (ref_idle, ref_open, ref_took) = reference.finish("keep-alive reference", result);

    let per = |a: u64, b: u64, n: usize| (a.saturating_sub(b)) as f64 / n as f64;
    println!("{:<44} {:>12} {:>12}", "", "VmRSS", "VmHWM");
    for (label, (rss, hwm)) in [
        ("idle, after warm-up".to_string(), r.idle),
        (format!("with {k} pending approvals"), r.with_k),
        (format!("with {held_n} held requests"), r.held),
        ("after all were answered and closed".to_string(), r.after),
        (
            "reference process: idle, after warm-up".to_string(),
            ref_idle,
        ),
        (
            format!("  with {held_n} idle keep-alive connections"),
            ref_open,
        ),
    ] {
        println!("{label:<44} {:>12} {:>12}", mib(rss), mib(hwm));
    }
    let per_conn = per(ref_open.0, ref_idle.0, held_n);
    let per_held = per(r.held.0, r.with_k.0, held_n);
    println!(
        "  per pending approval: {:.0} bytes; per idle keep-alive connection (after one check): \
         {per_conn:.0} bytes",
        per(r.with_k.0, r.idle.0, k),
    );
    println!(
        "  per held request: {per_held:.0} bytes (VmRSS delta); {:.0} bytes more than an idle \
         keep-alive connection (reference process)",
        per_held - per_conn,
    );
    println!(
        "  {held_n} connections with one check each ({CONNECT_CONCURRENCY} connects at a time): {}; \
         creating {k} approvals over {CONTROL_CONNS} connections: {}; opening {held_n} held \
         requests until all were recorded: {}",
        fmt_dur(ref_took),
        fmt_dur(r.create_time),
        fmt_dur(r.hold_time)
    );
    println!("  open sockets in clawgate while holding: {}", r.sockets);
    let tick = Duration::from_nanos(1_000_000_000 / clock_ticks_per_s());
    println!(
        "  CPU while holding (utime+stime, {} ticks): {} in {} ({:.2}% of one core)",
        fmt_dur(tick),
        fmt_dur(r.cpu),
        fmt_dur(r.window),
        100.0 * r.cpu.as_secs_f64() / r.window.as_secs_f64()
    );
    let (p50, p99, max) = percentiles(&r.since_cb);
    println!(
        "  approving all {k} ({CONTROL_CONNS} callback connections): callbacks done in {}, all {held_n} \
         held requests answered `allow` in {} (drain)",
        fmt_dur(r.callbacks_time),
        fmt_dur(r.drain)
    );
    println!(
        "  held answer after its approval's callback was sent: p50 {} p99 {} max {}",
        fmt_ns(p50),
        fmt_ns(p99),
        fmt_ns(max)
    );
}

struct HeldReport {
    idle: (u64, u64),
    with_k: (u64, u64),
    held: (u64, u64),
    after: (u64, u64),
    create_time: Duration,
    hold_time: Duration,
    sockets: usize,
    cpu: Duration,
    window: Duration,
    callbacks_time: Duration,
    drain: Duration,
    since_cb: Histogram<u64>,
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let settings = Settings::from_env();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    println!("clawgate approval benchmark");
    println!(
        "  cores: {}; load generator: {} threads (same machine)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        settings.client_threads
    );
    if settings.callback {
        callback_section(&settings, &client);
    }
    if settings.held_section {
        held_section(&settings, &client);
    }
}
