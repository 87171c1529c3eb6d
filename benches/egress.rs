//! Benchmark for the egress forward proxy: what it adds to small HTTP requests, and what a
//! CONNECT tunnel carries, each against the same traffic sent directly in the same run.
//!
//! Starts, in one process, clawgate (`clawgate::app::start`, a copy of the embedded bundle
//! where 127.0.0.2 is allowed, `egress.resolve` pinning `upstream.bench` to 127.0.0.2) and, on
//! 127.0.0.2, a fast hyper HTTP/1.1 upstream answering a small body and a TCP source/sink:
//!
//! * **http**: closed loop of `GET /small` at each configured concurrency (default 1 and 16),
//!   one keep-alive connection per worker, direct to the upstream and through the proxy
//!   (absolute-form `GET http://upstream.bench:PORT/small`);
//! * **tunnel**: one stream moving a fixed number of bytes (default 256 MiB) down (upstream to
//!   client) and up, directly and through a `CONNECT upstream.bench:PORT` tunnel, in MB/s.
//!
//! Every answer must be `200` with the expected body, every transfer complete; anything else
//! aborts the run. Run: `cargo bench --bench egress`; see `benches/README.md` for the knobs.

// The same allocator as the clawgate binary, so the bench measures what ships.
#[global_allocator]
static GLOBAL: clawgate::alloc::Allocator = clawgate::alloc::Allocator::new();

#[allow(dead_code)] // the `check` mix is not used here
mod support;
use support::*;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use clawgate::config::Config;

/// The name the proxy resolves (through `egress.resolve`) to the upstream address.
const UPSTREAM_NAME: &str = "upstream.bench";
const UPSTREAM_IP: [u8; 4] = [127, 0, 0, 2];
const SMALL_PATH: &str = "/small";
/// What the upstream answers to `GET /small`.
const SMALL_BODY: &[u8] = b"{\"ok\":true,\"from\":\"upstream\",\"note\":\"a small answer\"}\n";
/// Chunk the TCP source writes and every reader reads.
const CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Section {
    Http,
    Tunnel,
    Inspect,
}

struct Settings {
    warmup: Duration,
    secs: Duration,
    concurrency: Vec<usize>,
    tunnel_bytes: u64,
    tunnel_rounds: usize,
    sections: Vec<Section>,
    server_threads: usize,
    upstream_threads: usize,
    client_threads: usize,
    decision_cache: Option<usize>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            warmup: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_WARMUP_SECS", 0.5)),
            secs: Duration::from_secs_f64(env_f64("CLAWGATE_BENCH_SECS", 3.0)),
            concurrency: env_list("CLAWGATE_BENCH_CONCURRENCY", vec![1, 16], |s| {
                s.parse::<usize>().ok().filter(|c| *c > 0)
            }),
            tunnel_bytes: env_usize("CLAWGATE_BENCH_TUNNEL_MIB", 256) as u64 * 1024 * 1024,
            tunnel_rounds: env_usize("CLAWGATE_BENCH_TUNNEL_ROUNDS", 3),
            sections: env_list(
                "CLAWGATE_BENCH_SECTIONS",
                vec![Section::Http, Section::Tunnel, Section::Inspect],
                |s| match s {
                    "http" => Some(Section::Http),
                    "tunnel" => Some(Section::Tunnel),
                    "inspect" => Some(Section::Inspect),
                    _ => None,
                },
            ),
            server_threads: env_usize("CLAWGATE_BENCH_SERVER_THREADS", 2),
            upstream_threads: env_usize("CLAWGATE_BENCH_UPSTREAM_THREADS", 1),
            client_threads: env_usize("CLAWGATE_BENCH_CLIENT_THREADS", 2),
            decision_cache: std::env::var("CLAWGATE_BENCH_DECISION_CACHE")
                .ok()
                .map(|v| {
                    v.trim().parse().unwrap_or_else(|_| {
                        panic!("CLAWGATE_BENCH_DECISION_CACHE={v:?}: not a number")
                    })
                }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams on 127.0.0.2
// ---------------------------------------------------------------------------------------------

/// hyper HTTP/1.1: `GET /small` gets [`SMALL_BODY`], anything else a 404.
async fn http_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let ok = req.uri().path() == SMALL_PATH;
                let _ = req.into_body().collect().await;
                let mut resp = if ok {
                    Response::new(Full::new(Bytes::from_static(SMALL_BODY)))
                } else {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                    *r.status_mut() = StatusCode::NOT_FOUND;
                    r
                };
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

/// The TCP source/sink. A client sends one byte (`D` or `U`) and a big-endian `u64` count:
/// `D`: the server writes that many bytes and closes; `U`: it reads that many bytes and
/// answers with the count it read (8 bytes, big-endian).
async fn tcp_upstream(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut head = [0u8; 9];
            if stream.read_exact(&mut head).await.is_err() {
                return;
            }
            let n = u64::from_be_bytes(head[1..].try_into().expect("8 bytes"));
            let mut buf = vec![0x5a_u8; CHUNK];
            match head[0] {
                b'D' => {
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(CHUNK as u64) as usize;
                        if stream.write_all(&buf[..k]).await.is_err() {
                            return;
                        }
                        left -= k as u64;
                    }
                    let _ = stream.shutdown().await;
                }
                b'U' => {
                    let mut got = 0u64;
                    while got < n {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => got += k as u64,
                        }
                    }
                    let _ = stream.write_all(&got.to_be_bytes()).await;
                    let _ = stream.shutdown().await;
                }
                _ => {}
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// clawgate
// ---------------------------------------------------------------------------------------------

/// A copy of the embedded bundle (`policies/`, tests left out) where 127.0.0.2 is an allowed
/// destination on any port (as `tests/it/egress.rs` does) and the per-host rate limits are far
/// above anything the bench sends (the rate layer still runs; the default 120/min for a
/// low-risk host would refuse the bench after two seconds).
fn bench_bundle(out: &Path) -> PathBuf {
    copy_bundle(&source_bundle(), out, |name, text| {
        if name != "data.json" {
            return text;
        }
        patch_data(&text, |data| {
            let network = &mut data["clawgate"]["network"];
            network["allowed_cidrs"] = json!(["127.0.0.2/32"]);
            network["unusual_port_rule"]["effect"] = json!("allow");
            raise_rate_limits(data);
        })
    })
}

struct Clawgate {
    rt: Runtime,
    running: Option<clawgate::app::Running>,
    _data: tempfile::TempDir,
}

/// The files TLS inspection needs: the clawgate CA (cert, key) and the upstream's CA.
struct InspectionFiles {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    upstream_ca: PathBuf,
}

impl Clawgate {
    fn start(s: &Settings) -> Clawgate {
        Clawgate::start_with(s, None)
    }

    fn start_with(s: &Settings, inspect: Option<&InspectionFiles>) -> Clawgate {
        let data = bench_tempdir();
        let mut config = Config {
            data_dir: data.path().join("data"),
            ..Config::default()
        };
        config.policy.dir = Some(bench_bundle(&data.path().join("policy")));
        config.policy.watch = false;
        if let Some(n) = s.decision_cache {
            config.policy.decision_cache_entries = n;
        }
        config.listeners.agent.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.egress.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.listeners.admin.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.egress.resolve = [(UPSTREAM_NAME.to_string(), vec![IpAddr::from(UPSTREAM_IP)])]
            .into_iter()
            .collect();
        if let Some(files) = inspect {
            config.egress.tls_inspect = true;
            config.egress.ca_cert = Some(files.ca_cert.clone());
            config.egress.ca_key = Some(files.ca_key.clone());
            config.egress.extra_roots = vec![files.upstream_ca.clone()];
        }
        let rt = named_runtime("clawgate-srv", s.server_threads);
        let running = rt
            .block_on(clawgate::app::start(config))
            .expect("clawgate starts");
        Clawgate {
            rt,
            running: Some(running),
            _data: data,
        }
    }

    fn running(&self) -> &clawgate::app::Running {
        self.running.as_ref().expect("running")
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
// http: small GETs
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Direct,
    Proxy,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Proxy => "proxy",
        }
    }
}

/// One keep-alive connection, to the upstream (origin-form) or to the proxy (absolute-form).
struct Conn {
    sender: client_http1::SendRequest<Full<Bytes>>,
    target: http::Uri,
    host: HeaderValue,
}

impl Conn {
    async fn open(route: Route, upstream: SocketAddr, proxy: SocketAddr) -> Result<Conn, String> {
        let host = format!("{UPSTREAM_NAME}:{}", upstream.port());
        let (connect_to, target) = match route {
            Route::Direct => (upstream, SMALL_PATH.to_string()),
            Route::Proxy => (proxy, format!("http://{host}{SMALL_PATH}")),
        };
        let (sender, _) = connect_http1(connect_to).await?;
        Ok(Conn {
            sender,
            target: target.parse().map_err(|e| format!("bad target: {e}"))?,
            host: HeaderValue::from_str(&host).map_err(|e| format!("host: {e}"))?,
        })
    }

    async fn get(&mut self) -> Result<(), String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let req = Request::get(self.target.clone())
            .header(header::HOST, self.host.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "clawgate-bench")
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading response body: {e}"))?
            .to_bytes();
        if status == StatusCode::OK && body.as_ref() == SMALL_BODY {
            return Ok(());
        }
        Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(400)])
        ))
    }
}

async fn closed_loop(
    route: Route,
    upstream: SocketAddr,
    proxy: SocketAddr,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> Latencies {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(
            Conn::open(route, upstream, proxy)
                .await
                .unwrap_or_else(|e| panic!("{}: cannot open a connection: {e}", route.name())),
        );
    }
    closed_loop_over(conns, warmup, measure, |mut conn: Conn, _, _| async move {
        let result = conn.get().await;
        (conn, result)
    })
    .await
}

struct Row {
    rps: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    requests: u64,
}

fn http_section(s: &Settings, client: &Runtime, upstream: SocketAddr, proxy: SocketAddr) {
    println!();
    println!(
        "== http: GET {SMALL_PATH} ({} B answer), closed loop ==",
        SMALL_BODY.len()
    );
    println!(
        "{:<4} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "c", "route", "req/s", "p50", "p99", "p99.9", "max", "requests"
    );
    for &concurrency in &s.concurrency {
        let mut rows = Vec::new();
        for route in [Route::Direct, Route::Proxy] {
            let tally = client.block_on(closed_loop(
                route,
                upstream,
                proxy,
                concurrency,
                s.warmup,
                s.secs,
            ));
            if tally.errors > 0 {
                panic!(
                    "{} / c={concurrency}: {} request(s) failed; first: {}",
                    route.name(),
                    tally.errors,
                    tally.first_error.unwrap_or_default()
                );
            }
            assert!(tally.requests > 0, "{}: nothing measured", route.name());
            let h = &tally.histogram;
            let row = Row {
                rps: tally.requests as f64 / s.secs.as_secs_f64(),
                p50: h.value_at_quantile(0.5),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
                requests: tally.requests,
            };
            println!(
                "{:<4} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                concurrency,
                route.name(),
                fmt_rate(row.rps),
                fmt_ns(row.p50),
                fmt_ns(row.p99),
                fmt_ns(row.p999),
                fmt_ns(row.max),
                row.requests
            );
            rows.push(row);
        }
        let (d, p) = (&rows[0], &rows[1]);
        println!(
            "{:<4} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            concurrency,
            "p/d",
            ratio(p.rps, d.rps),
            ratio(p.p50 as f64, d.p50 as f64),
            ratio(p.p99 as f64, d.p99 as f64),
            ratio(p.p999 as f64, d.p999 as f64),
            ratio(p.max as f64, d.max as f64),
        );
        println!(
            "     proxy overhead at c={concurrency}: p50 +{}, p99 +{}",
            fmt_ns(p.p50.saturating_sub(d.p50)),
            fmt_ns(p.p99.saturating_sub(d.p99))
        );
    }
    println!("(every answer was 200 with the upstream's body)");
}

// ---------------------------------------------------------------------------------------------
// tunnel: bulk bytes through CONNECT
// ---------------------------------------------------------------------------------------------

/// Open a CONNECT tunnel to `upstream.bench:port` through the proxy; the stream is then
/// connected to the upstream.
async fn connect_tunnel(proxy: SocketAddr, port: u16) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect to the proxy: {e}"))?;
    let _ = stream.set_nodelay(true);
    let target = format!("{UPSTREAM_NAME}:{port}");
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("send CONNECT: {e}"))?;
    // Read the answer head byte by byte: nothing after it may be consumed (the upstream
    // sends nothing before the client's request anyway).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        match stream.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            Ok(_) => return Err("the proxy closed before answering CONNECT".into()),
            Err(e) => return Err(format!("read the CONNECT answer: {e}")),
        }
        if head.len() > 16 * 1024 {
            return Err("CONNECT answer head too long".into());
        }
    }
    let text = String::from_utf8_lossy(&head);
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("CONNECT refused: {}", text.trim()));
    }
    Ok(stream)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Down,
    Up,
}

/// Move `n` bytes one way over `stream` (already connected to the source/sink); the time from
/// the request to the last byte (down) or to the sink's count (up).
async fn transfer(mut stream: TcpStream, dir: Direction, n: u64) -> Result<Duration, String> {
    let mut head = [0u8; 9];
    head[0] = match dir {
        Direction::Down => b'D',
        Direction::Up => b'U',
    };
    head[1..].copy_from_slice(&n.to_be_bytes());
    let mut buf = vec![0xa5_u8; CHUNK];
    let t0 = Instant::now();
    stream
        .write_all(&head)
        .await
        .map_err(|e| format!("send the request: {e}"))?;
    match dir {
        Direction::Down => {
            let mut got = 0u64;
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(k) => got += k as u64,
                    Err(e) => return Err(format!("read after {got} bytes: {e}")),
                }
            }
            if got != n {
                return Err(format!("received {got} of {n} bytes"));
            }
        }
        Direction::Up => {
            let mut left = n;
            while left > 0 {
                let k = left.min(CHUNK as u64) as usize;
                stream
                    .write_all(&buf[..k])
                    .await
                    .map_err(|e| format!("write with {left} bytes left: {e}"))?;
                left -= k as u64;
            }
            let mut count = [0u8; 8];
            stream
                .read_exact(&mut count)
                .await
                .map_err(|e| format!("read the sink's count: {e}"))?;
            let got = u64::from_be_bytes(count);
            if got != n {
                return Err(format!("the sink received {got} of {n} bytes"));
            }
        }
    }
    Ok(t0.elapsed())
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn tunnel_section(s: &Settings, client: &Runtime, sink: SocketAddr, proxy: SocketAddr) {
    println!();
    println!(
        "== tunnel: {} MiB over one stream, {} round(s) each; MB/s = 10^6 bytes/s, median (min-max) ==",
        s.tunnel_bytes / (1024 * 1024),
        s.tunnel_rounds
    );
    println!(
        "{:<6} {:<8} {:>10} {:>22} {:>14}",
        "dir", "route", "MB/s", "range", "CONNECT setup"
    );
    for dir in [Direction::Down, Direction::Up] {
        let mut medians = Vec::new();
        for route in [Route::Direct, Route::Proxy] {
            let mut rates = Vec::new();
            let mut setup = Vec::new();
            for _ in 0..s.tunnel_rounds {
                let (rate, took) = client.block_on(async {
                    let t0 = Instant::now();
                    let stream = match route {
                        Route::Direct => TcpStream::connect(sink)
                            .await
                            .map_err(|e| format!("connect: {e}")),
                        Route::Proxy => connect_tunnel(proxy, sink.port()).await,
                    }
                    .unwrap_or_else(|e| panic!("{} tunnel: {e}", route.name()));
                    let took = t0.elapsed();
                    let d = transfer(stream, dir, s.tunnel_bytes)
                        .await
                        .unwrap_or_else(|e| panic!("{} transfer: {e}", route.name()));
                    (mb_per_s(s.tunnel_bytes, d), took)
                });
                rates.push(rate);
                setup.push(took);
            }
            rates.sort_by(f64::total_cmp);
            setup.sort();
            let median = rates[rates.len() / 2];
            medians.push(median);
            println!(
                "{:<6} {:<8} {:>10.0} {:>22} {:>14}",
                match dir {
                    Direction::Down => "down",
                    Direction::Up => "up",
                },
                route.name(),
                median,
                format!("{:.0}-{:.0}", rates[0], rates[rates.len() - 1]),
                match route {
                    Route::Direct => format!("({} connect)", fmt_ns(nanos(setup[setup.len() / 2]))),
                    Route::Proxy => fmt_ns(nanos(setup[setup.len() / 2])),
                }
            );
        }
        println!(
            "{:<6} {:<8} {:>10}",
            "",
            "p/d",
            ratio(medians[1], medians[0])
        );
    }
    println!(
        "(down: upstream to client, through the proxy's size-metered side; up: client to \
         upstream. CONNECT setup: connect + CONNECT + 200, i.e. the decision and its durable \
         audit entry)"
    );
}

// ---------------------------------------------------------------------------------------------
// inspect: new TLS connections, terminated by clawgate or straight to the upstream
// ---------------------------------------------------------------------------------------------

/// An HTTPS upstream on 127.0.0.2 with a certificate for UPSTREAM_NAME from `ca`.
async fn https_upstream(listener: TcpListener, ca: &clawgate::tls::ca::CertificateAuthority) {
    let issued = ca
        .issue_server(&[UPSTREAM_NAME.to_string()], 1)
        .expect("upstream certificate");
    let config = rustls::ServerConfig::builder_with_provider(clawgate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![issued.cert_der, ca.cert_der().clone()], issued.key_der)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|req: Request<Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(SMALL_BODY))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

/// One new connection: (CONNECT through the proxy, when given), TLS handshake trusting
/// `roots`, one GET, close. Returns (handshake time, whole time).
async fn tls_connection(
    connector: &tokio_rustls::TlsConnector,
    upstream: SocketAddr,
    proxy: Option<SocketAddr>,
) -> Result<(Duration, Duration), String> {
    let t0 = Instant::now();
    let tcp = match proxy {
        Some(proxy) => connect_tunnel(proxy, upstream.port()).await?,
        None => TcpStream::connect(upstream)
            .await
            .map_err(|e| format!("connect: {e}"))?,
    };
    let _ = tcp.set_nodelay(true);
    let t1 = Instant::now();
    let name = rustls::pki_types::ServerName::try_from(UPSTREAM_NAME).expect("server name");
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let handshake = t1.elapsed();
    let (mut sender, conn) = client_http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    let req = Request::get(SMALL_PATH)
        .header(header::HOST, format!("{UPSTREAM_NAME}:{}", upstream.port()))
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != StatusCode::OK || body.as_ref() != SMALL_BODY {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    Ok((handshake, t0.elapsed()))
}

fn connector_trusting(ca: &clawgate::tls::ca::CertificateAuthority) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(clawgate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection is new: no session resumption, so each one pays a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

fn inspect_section(s: &Settings, client: &Runtime, upstream_rt: &Runtime) {
    use clawgate::tls::ca::CertificateAuthority;
    let dir = bench_tempdir();
    let clawgate_ca = CertificateAuthority::create("clawgate bench CA", 1).expect("CA");
    let upstream_ca = CertificateAuthority::create("upstream bench CA", 1).expect("CA");
    let files = InspectionFiles {
        ca_cert: dir.path().join("ca.pem"),
        ca_key: dir.path().join("ca.key"),
        upstream_ca: dir.path().join("upstream-ca.pem"),
    };
    std::fs::write(&files.ca_cert, clawgate_ca.cert_pem()).expect("write");
    std::fs::write(&files.ca_key, clawgate_ca.key_pem()).expect("write");
    std::fs::write(&files.upstream_ca, upstream_ca.cert_pem()).expect("write");
    let upstream = upstream_rt.block_on(async {
        let listener = TcpListener::bind(SocketAddr::from((UPSTREAM_IP, 0)))
            .await
            .expect("bind 127.0.0.2");
        let addr = listener.local_addr().expect("addr");
        https_upstream(listener, &upstream_ca).await;
        addr
    });
    let claw = Clawgate::start_with(s, Some(&files));
    let proxy = claw.running().egress_addr;
    let direct = connector_trusting(&upstream_ca);
    let inspected = connector_trusting(&clawgate_ca);
    println!();
    println!(
        "== inspect: new connections (TCP or CONNECT, full TLS handshake without resumption, one GET, close), {:.1} s each ==",
        s.secs.as_secs_f64()
    );
    println!(
        "{:<3} {:<10} {:>12} {:>14} {:>14} {:>12} {:>8}",
        "c", "route", "conns/s", "TLS p50", "TLS p99", "whole p50", "errors"
    );
    for &c in &s.concurrency {
        let mut rates = Vec::new();
        for (name, connector, via) in [
            ("direct", &direct, None),
            ("inspected", &inspected, Some(proxy)),
        ] {
            // Warm up (mints and caches the leaf for the host).
            client
                .block_on(tls_connection(connector, upstream, via))
                .unwrap_or_else(|e| panic!("{name} probe: {e}"));
            let deadline = Instant::now() + s.secs;
            let started = Instant::now();
            let (handshakes, wholes, errors) = client.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..c {
                    let connector = connector.clone();
                    tasks.spawn(async move {
                        let (mut hs, mut whole, mut errors) =
                            (new_histogram(), new_histogram(), 0u64);
                        while Instant::now() < deadline {
                            match tls_connection(&connector, upstream, via).await {
                                Ok((h, w)) => {
                                    let _ = hs.record(nanos(h));
                                    let _ = whole.record(nanos(w));
                                }
                                Err(_) => errors += 1,
                            }
                        }
                        (hs, whole, errors)
                    });
                }
                let (mut hs, mut whole, mut errors) = (new_histogram(), new_histogram(), 0u64);
                while let Some(Ok((h, w, e))) = tasks.join_next().await {
                    let _ = hs.add(h);
                    let _ = whole.add(w);
                    errors += e;
                }
                (hs, whole, errors)
            });
            let rate = handshakes.len() as f64 / started.elapsed().as_secs_f64();
            rates.push(rate);
            println!(
                "{:<3} {:<10} {:>12} {:>14} {:>14} {:>12} {:>8}",
                c,
                name,
                fmt_rate(rate),
                fmt_ns(handshakes.value_at_quantile(0.5)),
                fmt_ns(handshakes.value_at_quantile(0.99)),
                fmt_ns(wholes.value_at_quantile(0.5)),
                errors
            );
        }
        println!("{:<3} {:<10} {:>12}", "", "i/d", ratio(rates[1], rates[0]));
    }
    println!(
        "(TLS: the handshake alone — direct with the upstream; inspected with clawgate's minted leaf, after CONNECT's decision. whole: connect + CONNECT + handshake + GET, i.e. two durable decisions per inspected connection: the CONNECT and the GET inside)"
    );
    drop(claw);
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let s = Settings::from_env();

    let upstream_rt = named_runtime("upstream-srv", s.upstream_threads);
    let (upstream, sink) = upstream_rt.block_on(async {
        let bind = || async {
            TcpListener::bind(SocketAddr::from((UPSTREAM_IP, 0)))
                .await
                .expect("bind 127.0.0.2 (loopback alias)")
        };
        let http = bind().await;
        let tcp = bind().await;
        let addrs = (
            http.local_addr().expect("addr"),
            tcp.local_addr().expect("addr"),
        );
        tokio::spawn(http_upstream(http));
        tokio::spawn(tcp_upstream(tcp));
        addrs
    });
    let claw = Clawgate::start(&s);
    let proxy = claw.running().egress_addr;
    let client = named_runtime("bench-client", s.client_threads);

    println!("clawgate egress proxy benchmark");
    println!(
        "  cores: {}; clawgate: {} worker threads; upstreams: {} thread(s); load generator: {} \
         threads (same machine)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.server_threads,
        s.upstream_threads,
        s.client_threads
    );
    println!(
        "  clawgate: egress proxy on {proxy}, policy revision {} (embedded bundle copy: \
         127.0.0.2/32 allowed, any port, rate limits raised), decision cache {}, durable audit \
         in a temp dir ({}); {UPSTREAM_NAME} pinned to 127.0.0.2",
        claw.running().gate.policy_bundle().revision,
        s.decision_cache
            .map_or_else(|| "config default".to_string(), |n| n.to_string()),
        std::env::var_os("CLAWGATE_BENCH_DIR")
            .map_or_else(std::env::temp_dir, PathBuf::from)
            .display()
    );
    println!("  upstream: http on {upstream}, TCP source/sink on {sink}");
    println!(
        "  per http scenario: {:.1} s warm-up (checked, not timed), then {:.1} s measured",
        s.warmup.as_secs_f64(),
        s.secs.as_secs_f64()
    );

    // One of each first: fail early with the proxy's own answer.
    client.block_on(async {
        for route in [Route::Direct, Route::Proxy] {
            let mut conn = Conn::open(route, upstream, proxy)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", route.name()));
            conn.get()
                .await
                .unwrap_or_else(|e| panic!("{} probe GET failed: {e}", route.name()));
        }
        let stream = connect_tunnel(proxy, sink.port())
            .await
            .unwrap_or_else(|e| panic!("probe tunnel: {e}"));
        transfer(stream, Direction::Down, 1024)
            .await
            .unwrap_or_else(|e| panic!("probe tunnel transfer: {e}"));
    });

    if s.sections.contains(&Section::Http) {
        http_section(&s, &client, upstream, proxy);
    }
    if s.sections.contains(&Section::Tunnel) {
        tunnel_section(&s, &client, sink, proxy);
    }
    if s.sections.contains(&Section::Inspect) {
        inspect_section(&s, &client, &upstream_rt);
    }

    drop(client);
    drop(claw);
    drop(upstream_rt);
}
