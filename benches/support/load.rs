//! Generating load: the OpenClaw tool-call mix, environment knobs, runtimes, closed loops
//! over keep-alive connections.

use std::time::Duration;

use serde_json::json;

use super::Latencies;

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
