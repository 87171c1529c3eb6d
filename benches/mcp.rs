//! Load benchmark for the MCP gateway: what clawgate adds to each `tools/call`.
//!
//! Starts, in one process, a fast MCP upstream (hyper HTTP/1.1 on its own runtime, answering
//! every 2026-07-28 `tools/call` at once), and drives the same calls three ways:
//!
//! * **direct**: straight to the upstream, the floor;
//! * **nginx**: through nginx (`proxy_pass`, a child process with a generated config), the
//!   plain reverse proxy baseline; skipped with a message when no nginx binary is found;
//! * **clawgate**: through `/mcp/fast` of clawgate started in-process
//!   (`clawgate::app::start`, embedded policy bundle, durable audit in a temp dir), once
//!   with the decision cache on (the calls repeat, so policy is mostly a cache hit) and once
//!   with it off (`policy.decision_cache_entries = 0`: every call is evaluated).
//!
//! Closed loop at each configured concurrency (default 1 and 64), one keep-alive connection per
//! worker. Every answer must be `200` with the call's id and `"isError":false`; anything else
//! aborts the run with the first failure. Run: `cargo bench --bench mcp`; see
//! `benches/README.md` for the knobs.

// The same allocator as the clawgate binary, so the bench measures what ships.
#[global_allocator]
static GLOBAL: clawgate::alloc::Allocator = clawgate::alloc::Allocator::new();

#[allow(dead_code)] // the `check` mix is not used here
mod support;
use support::*;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use clawgate::config::{Config, McpServerConfig};

const PROTOCOL_VERSION: &str = "2026-07-28";
/// The clawgate and nginx route; both forward to the upstream's `/mcp`.
const GATEWAY_PATH: &str = "/mcp/fast";
const UPSTREAM_PATH: &str = "/mcp";

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Direct,
    Nginx,
    Clawgate,
    ClawgateNoCache,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Nginx => "nginx",
            Target::Clawgate => "clawgate",
            Target::ClawgateNoCache => "clawgate-nocache",
        }
    }

    fn parse(s: &str) -> Option<Target> {
        [
            Target::Direct,
            Target::Nginx,
            Target::Clawgate,
            Target::ClawgateNoCache,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }

    fn is_clawgate(self) -> bool {
        matches!(self, Target::Clawgate | Target::ClawgateNoCache)
    }
}

struct Settings {
    warmup: Duration,
    secs: Duration,
    concurrency: Vec<usize>,
    server_threads: usize,
    upstream_threads: usize,
    client_threads: usize,
    nginx_workers: usize,
    targets: Vec<Target>,
    tool: String,
    policy_dir: Option<PathBuf>,
    eval_timeout_ms: Option<u64>,
}

impl Settings {
    fn from_env() -> Settings {
        let server_threads = env_usize("CLAWGATE_BENCH_SERVER_THREADS", 2);
        Settings {
            warmup: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_WARMUP_SECS", 0.5)),
            secs: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_SECS", 5.0)),
            concurrency: env_list("CLAWGATE_BENCH_CONCURRENCY", vec![1, 64], |s| {
                s.parse::<usize>().ok().filter(|c| *c > 0)
            }),
            server_threads,
            upstream_threads: env_usize("CLAWGATE_BENCH_UPSTREAM_THREADS", 1),
            client_threads: env_usize("CLAWGATE_BENCH_CLIENT_THREADS", 2),
            nginx_workers: env_usize("CLAWGATE_BENCH_NGINX_WORKERS", server_threads),
            targets: env_list(
                "CLAWGATE_BENCH_TARGETS",
                vec![
                    Target::Direct,
                    Target::Nginx,
                    Target::Clawgate,
                    Target::ClawgateNoCache,
                ],
                Target::parse,
            ),
            tool: std::env::var("CLAWGATE_BENCH_TOOL")
                .unwrap_or_else(|_| "get_pull_request".into()),
            policy_dir: std::env::var_os("CLAWGATE_BENCH_POLICY_DIR").map(PathBuf::from),
            eval_timeout_ms: std::env::var("CLAWGATE_BENCH_EVAL_TIMEOUT_MS")
                .ok()
                .map(|v| {
                    v.trim().parse().unwrap_or_else(|_| {
                        panic!("CLAWGATE_BENCH_EVAL_TIMEOUT_MS={v:?}: not a number")
                    })
                }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fast upstream
// ---------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct RpcHead<'a> {
    #[serde(borrow)]
    id: &'a serde_json::value::RawValue,
    method: &'a str,
}

/// The answer to one `tools/call`, with the request's id copied verbatim.
fn upstream_answer(body: &[u8]) -> Result<Bytes, String> {
    let head: RpcHead = serde_json::from_slice(body).map_err(|e| format!("bad JSON-RPC: {e}"))?;
    if head.method != "tools/call" {
        return Err(format!("unexpected method {:?}", head.method));
    }
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(head.id.get().as_bytes());
    out.extend_from_slice(
        br#","result":{"content":[{"type":"text","text":"ok"}],"isError":false,"resultType":"complete"}}"#,
    );
    Ok(out.into())
}

/// hyper HTTP/1.1: reads the body, answers at once. Anything but a `tools/call` POST is a 400,
/// which the client reports as a failure.
async fn upstream_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let ok_path = req.uri().path() == UPSTREAM_PATH;
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let resp = match upstream_answer(&body) {
                    Ok(answer) if ok_path => {
                        let mut resp = Response::new(Full::new(answer));
                        resp.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        resp
                    }
                    Ok(_) => bad_request("upstream: wrong path".into()),
                    Err(e) => bad_request(format!("upstream: {e}")),
                };
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn bad_request(text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// A running nginx; stopped (SIGTERM, then SIGKILL) when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child process by its pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `CLAWGATE_BENCH_NGINX` (a path, or `off`), else `nginx` on `PATH` or in the usual places.
fn find_nginx() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("CLAWGATE_BENCH_NGINX") {
        if v == "off" || v.is_empty() {
            return None;
        }
        return Some(PathBuf::from(v));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
        .port()
}

fn nginx_config(dir: &Path, workers: usize, listen: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    # Keep the load generator's connections open for the whole run (default: 1000 requests).
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream mcp_upstream {{
        server {upstream};
        keepalive 256;
        keepalive_requests 100000000;
    }}
    server {{
        listen {listen};
        location = {GATEWAY_PATH} {{
            proxy_pass http://mcp_upstream{UPSTREAM_PATH};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"#
    )
}

/// Start nginx in front of `upstream`, or say why not.
fn start_nginx(binary: &Path, workers: usize, upstream: SocketAddr) -> Result<Nginx, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_config(dir.path(), workers, addr, upstream))
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        // Before the config is read, nginx logs to its compiled-in path; keep it quiet.
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let mut nginx = Nginx { child, addr, dir };
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = nginx.child.try_wait() {
            return Err(format!("nginx exited ({status}): {}", nginx.error_log()));
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(nginx);
        }
        if Instant::now() >= until {
            return Err(format!(
                "nginx did not listen on {addr} within 5 s: {}",
                nginx.error_log()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Nginx {
    fn error_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    fn version(binary: &Path) -> String {
        Command::new(binary)
            .arg("-v")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "nginx (version unknown)".into())
    }
}

// ---------------------------------------------------------------------------------------------
// clawgate
// ---------------------------------------------------------------------------------------------

struct Clawgate {
    rt: Runtime,
    running: Option<clawgate::app::Running>,
    _data: tempfile::TempDir,
}

impl Clawgate {
    fn start(s: &Settings, upstream: SocketAddr, cache: Option<usize>, name: &str) -> Clawgate {
        let data = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: data.path().join("data"),
            ..Config::default()
        };
        // The source bundle with the rate limits raised: the shipped per-agent limits (120 a
        // minute for a low-risk tool) would refuse the bench within its warm-up.
        let src = s.policy_dir.clone().unwrap_or_else(source_bundle);
        config.policy.dir = Some(copy_bundle(
            &src,
            &data.path().join("policy"),
            |name, text| {
                if name == "data.json" {
                    patch_data(&text, raise_rate_limits)
                } else {
                    text
                }
            },
        ));
        config.policy.watch = false;
        if let Some(n) = cache {
            config.policy.decision_cache_entries = n;
        }
        if let Some(ms) = s.eval_timeout_ms {
            config.policy.eval_timeout_ms = ms;
        }
        config.listeners.agent.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.egress.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.admin.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.mcp.servers.insert(
            "fast".into(),
            McpServerConfig {
                url: format!("http://{upstream}{UPSTREAM_PATH}"),
                headers: Default::default(),
                bearer_token_env: None,
                timeout_ms: 60_000,
            },
        );
        let rt = named_runtime(name, s.server_threads);
        let running = rt
            .block_on(clawgate::app::start(config))
            .expect("clawgate starts");
        Clawgate {
            rt,
            running: Some(running),
            _data: data,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.as_ref().expect("running").agent_addr
    }

    fn revision(&self) -> String {
        let r = self.running.as_ref().expect("running");
        r.gate.policy_bundle().revision.clone()
    }
}

impl Drop for Clawgate {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown(Duration::from_secs(2)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// A prepared `tools/call` and what its answer must contain.
struct Call {
    body: Bytes,
    expect_id: Vec<u8>,
}

/// `len` calls with ids `0..len`: the same tool and arguments, so only the id differs (which
/// the decision cache ignores).
fn call_pool(tool: &str, len: usize) -> Arc<[Call]> {
    (0..len)
        .map(|n| {
            let body = json!({
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {
                    "name": tool,
                    "arguments": {"owner": "acme", "repo": "widgets", "pull_number": 4821},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
                        "io.modelcontextprotocol/clientCapabilities": {}
                    }
                }
            });
            Call {
                body: Bytes::from(serde_json::to_vec(&body).expect("static JSON serializes")),
                expect_id: format!("\"id\":{n},").into_bytes(),
            }
        })
        .collect()
}

/// One keep-alive HTTP/1.1 connection to one target.
struct Conn {
    sender: client_http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
    path: &'static str,
    tool: HeaderValue,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Conn {
    async fn open(addr: SocketAddr, path: &'static str, tool: &str) -> Result<Conn, String> {
        let (sender, host) = connect_http1(addr).await?;
        Ok(Conn {
            sender,
            host,
            path,
            tool: HeaderValue::from_str(tool).map_err(|e| format!("tool name: {e}"))?,
        })
    }

    /// Send one call; succeed only on `200` with the call's id and `"isError":false`.
    async fn call(&mut self, call: &Call) -> Result<(), String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let req = Request::post(self.path)
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .header("mcp-method", "tools/call")
            .header("mcp-name", self.tool.clone())
            .body(Full::new(call.body.clone()))
            .expect("valid request");
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
        if status == StatusCode::OK
            && contains(&bytes, &call.expect_id)
            && contains(&bytes, br#""isError":false"#)
        {
            return Ok(());
        }
        Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(400)])
        ))
    }
}

/// Closed loop: `concurrency` connections sending back to back for `warmup + measure`; calls
/// started in the warm-up are checked but not timed.
async fn closed_loop(
    addr: SocketAddr,
    path: &'static str,
    tool: &str,
    concurrency: usize,
    pool: Arc<[Call]>,
    warmup: Duration,
    measure: Duration,
) -> Latencies {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(
            Conn::open(addr, path, tool)
                .await
                .unwrap_or_else(|e| panic!("cannot open connection: {e}")),
        );
    }
    // Each worker walks the call pool from its own offset.
    closed_loop_over(conns, warmup, measure, move |mut conn: Conn, worker, n| {
        let pool = pool.clone();
        async move {
            let first = worker * pool.len() / concurrency;
            let result = conn.call(&pool[(first + n) % pool.len()]).await;
            (conn, result)
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Scenarios and report
// ---------------------------------------------------------------------------------------------

struct Row {
    target: Target,
    rps: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    requests: u64,
}

fn print_header(concurrency: usize) {
    println!();
    println!("== closed loop, c={concurrency} ==");
    println!(
        "{:<17} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13}",
        "target", "calls/s", "p50", "p99", "p99.9", "max", "calls", "p50 - direct"
    );
}

/// One row, printed as soon as it is measured (a later failure does not lose it).
fn print_row(r: &Row, direct: Option<&Row>) {
    let added = match direct {
        Some(d) if r.target != Target::Direct => {
            let diff = r.p50 as i64 - d.p50 as i64;
            let sign = if diff < 0 { "-" } else { "+" };
            format!("{sign}{}", fmt_ns(diff.unsigned_abs()))
        }
        _ => String::new(),
    };
    println!(
        "{:<17} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13}",
        r.target.name(),
        fmt_rate(r.rps),
        fmt_ns(r.p50),
        fmt_ns(r.p99),
        fmt_ns(r.p999),
        fmt_ns(r.max),
        r.requests,
        added
    );
}

fn print_ratios(rows: &[Row]) {
    if let Some(n) = rows.iter().find(|r| r.target == Target::Nginx) {
        for c in rows.iter().filter(|r| r.target.is_clawgate()) {
            println!(
                "{:<17} {:>9} {:>9} {:>9} {:>9} {:>9}",
                format!("{}/nginx", c.target.name().replace("clawgate", "cg")),
                ratio(c.rps, n.rps),
                ratio(c.p50 as f64, n.p50 as f64),
                ratio(c.p99 as f64, n.p99 as f64),
                ratio(c.p999 as f64, n.p999 as f64),
                ratio(c.max as f64, n.max as f64),
            );
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let s = Settings::from_env();

    let upstream_rt = named_runtime("upstream-srv", s.upstream_threads);
    let upstream = upstream_rt.block_on(async {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        tokio::spawn(upstream_server(listener));
        addr
    });

    let mut nginx_note = String::new();
    let nginx = if s.targets.contains(&Target::Nginx) {
        match find_nginx() {
            None => {
                nginx_note = "not found: the nginx column is skipped. Install it with \
                              `sudo apt-get install -y nginx-light` (or set CLAWGATE_BENCH_NGINX \
                              to the binary)"
                    .into();
                None
            }
            Some(bin) => match start_nginx(&bin, s.nginx_workers, upstream) {
                Ok(n) => {
                    nginx_note = format!(
                        "{} ({}), {} worker process(es), proxy_pass with upstream keepalive, \
                         proxy_buffering off",
                        Nginx::version(&bin),
                        bin.display(),
                        s.nginx_workers
                    );
                    Some(n)
                }
                Err(e) => {
                    nginx_note = format!("could not be started, column skipped: {e}");
                    None
                }
            },
        }
    } else {
        nginx_note.push_str("not selected");
        None
    };

    let claw = s
        .targets
        .contains(&Target::Clawgate)
        .then(|| Clawgate::start(&s, upstream, None, "clawgate-srv"));
    let claw_nocache = s
        .targets
        .contains(&Target::ClawgateNoCache)
        .then(|| Clawgate::start(&s, upstream, Some(0), "clawgate-nc-srv"));

    let client = named_runtime("bench-client", s.client_threads);
    let pool = call_pool(&s.tool, 4096);

    println!("clawgate MCP gateway benchmark (tools/call, MCP {PROTOCOL_VERSION}, JSON answers)");
    println!(
        "  cores: {}; clawgate: {} worker threads; upstream: {} thread(s); load generator: {} \
         threads (same machine)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.server_threads,
        s.upstream_threads,
        s.client_threads
    );
    println!("  nginx: {nginx_note}");
    if let Some(c) = claw.as_ref().or(claw_nocache.as_ref()) {
        println!(
            "  clawgate policy: a copy of {} with the rate limits raised, revision {}, eval budget \
             {}; tool `{}`; durable audit in a temp dir ({})",
            s.policy_dir.clone().unwrap_or_else(source_bundle).display(),
            c.revision(),
            s.eval_timeout_ms
                .map_or_else(|| "default".to_string(), |ms| format!("{ms} ms")),
            s.tool,
            std::env::temp_dir().display()
        );
    }
    println!(
        "  per scenario: {:.1} s warm-up (checked, not timed), then {:.1} s measured",
        s.warmup.as_secs_f64(),
        s.secs.as_secs_f64()
    );

    let targets: Vec<(Target, SocketAddr, &'static str)> = s
        .targets
        .iter()
        .filter_map(|&t| {
            let (addr, path) = match t {
                Target::Direct => (upstream, UPSTREAM_PATH),
                Target::Nginx => (nginx.as_ref()?.addr, GATEWAY_PATH),
                Target::Clawgate => (claw.as_ref()?.addr(), GATEWAY_PATH),
                Target::ClawgateNoCache => (claw_nocache.as_ref()?.addr(), GATEWAY_PATH),
            };
            Some((t, addr, path))
        })
        .collect();

    // One call each first: fail early, and show that policy allows the call.
    client.block_on(async {
        for &(t, addr, path) in &targets {
            let mut conn = Conn::open(addr, path, &s.tool)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", t.name()));
            conn.call(&pool[0]).await.unwrap_or_else(|e| {
                panic!(
                    "{}: the probe call failed (a clawgate refusal means the bundle does not \
                     allow `{}`; try CLAWGATE_BENCH_TOOL or CLAWGATE_BENCH_POLICY_DIR): {e}",
                    t.name(),
                    s.tool
                )
            });
        }
    });

    let mut results: Vec<(usize, Vec<Row>)> = Vec::new();
    for &concurrency in &s.concurrency {
        let mut rows: Vec<Row> = Vec::new();
        print_header(concurrency);
        for &(target, addr, path) in &targets {
            let tally = client.block_on(closed_loop(
                addr,
                path,
                &s.tool,
                concurrency,
                pool.clone(),
                s.warmup,
                s.secs,
            ));
            if tally.errors > 0 {
                let first = tally.first_error.unwrap_or_default();
                let hint = if first.contains("exceeded its time budget") {
                    " (clawgate's policy.eval_timeout_ms fired under load; \
                     CLAWGATE_BENCH_EVAL_TIMEOUT_MS=1000 raises it to measure past it)"
                } else {
                    ""
                };
                panic!(
                    "{} / c={concurrency}: {} call(s) failed; first: {first}{hint}",
                    target.name(),
                    tally.errors,
                );
            }
            if tally.requests == 0 {
                panic!(
                    "{} / c={concurrency}: no call completed in the measured window",
                    target.name()
                );
            }
            let h = &tally.histogram;
            rows.push(Row {
                target,
                rps: tally.requests as f64 / s.secs.as_secs_f64(),
                p50: h.value_at_quantile(0.50),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
                requests: tally.requests,
            });
            let last = rows.last().expect("just pushed");
            print_row(last, rows.iter().find(|r| r.target == Target::Direct));
        }
        print_ratios(&rows);
        results.push((concurrency, rows));
    }
    println!("(every answer was 200 with its id and \"isError\":false)");

    // The issue's targets, against nginx from this run.
    println!();
    println!("== targets (clawgate vs nginx, same run) ==");
    let row = |c: usize, t: Target| {
        results
            .iter()
            .find(|(cc, _)| *cc == c)
            .and_then(|(_, rows)| rows.iter().find(|r| r.target == t))
    };
    for t in [Target::Clawgate, Target::ClawgateNoCache] {
        match (row(1, t), row(1, Target::Nginx)) {
            (Some(c), Some(n)) => {
                let r = c.p50 as f64 / n.p50 as f64;
                println!(
                    "  {:<17} p50 at c=1 within 1.5x of nginx:     {} ({:.2}x: {} vs {})",
                    t.name(),
                    if r <= 1.5 { "met" } else { "MISSED" },
                    r,
                    fmt_ns(c.p50),
                    fmt_ns(n.p50)
                );
            }
            _ => println!(
                "  {:<17} p50 at c=1 within 1.5x of nginx:     not run",
                t.name()
            ),
        }
        match (row(64, t), row(64, Target::Nginx)) {
            (Some(c), Some(n)) => {
                let r = c.rps / n.rps;
                println!(
                    "  {:<17} calls/s at c=64 >= 70% of nginx:     {} ({:.0}%: {} vs {})",
                    t.name(),
                    if r >= 0.7 { "met" } else { "MISSED" },
                    r * 100.0,
                    fmt_rate(c.rps),
                    fmt_rate(n.rps)
                );
            }
            _ => println!(
                "  {:<17} calls/s at c=64 >= 70% of nginx:     not run",
                t.name()
            ),
        }
    }

    drop(client);
    drop(claw);
    drop(claw_nocache);
    drop(nginx);
    drop(upstream_rt);
}
