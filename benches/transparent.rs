//! Benchmark for transparent interception: what the transparent listener adds to a new TCP
//! connection and to a stream's throughput, each against the same traffic sent directly in
//! the same run (the method of `benches/egress.rs`).
//!
//! Needs root: it makes two network namespaces (`tests/it/common/netns.rs`, deleted at the
//! end), applies `clawgate net rules --uid 0` in the agent namespace, starts clawgate in
//! process on a runtime whose threads live in that namespace (uid 0: exempt), and a TCP server
//! in the upstream namespace. Client sockets are made in the agent namespace by a thread
//! whose filesystem uid is the agent's (61002: redirected) or root's (0: direct), so both
//! routes cross the same veth to the same server:
//!
//! * **setup**: closed loop at c = 1 of a new connection, `ping\n`, the server's `pong`, close;
//!   through clawgate each connection is one `connect` decision with its durable audit entry
//!   and its result entry;
//! * **stream**: one connection moving a fixed number of bytes (default 256 MiB) down, 3
//!   rounds each, in MB/s.
//!
//! Run: `cargo bench --bench transparent` (as root); knobs in `benches/README.md`.

#[global_allocator]
static GLOBAL: clawgate::alloc::Allocator = clawgate::alloc::Allocator::new();

#[allow(dead_code)]
mod support;
use support::*;

#[allow(dead_code)]
#[path = "../tests/it/common/netns.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

const AGENT_UID: u32 = 61_002;
const PORT: u16 = 7000;
const CHUNK: usize = 64 * 1024;

/// The upstream: `ping\n` answers `pong`; `down N\n` writes N bytes and closes.
fn serve_upstream(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut line = Vec::new();
                let mut b = [0u8; 1];
                while s.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != b'\n' {
                    line.push(b[0]);
                }
                let line = String::from_utf8_lossy(&line).into_owned();
                if line == "ping" {
                    let _ = s.write_all(b"pong");
                } else if let Some(n) = line.strip_prefix("down ") {
                    let mut left: u64 = n.parse().unwrap_or(0);
                    let buf = vec![7u8; CHUNK];
                    while left > 0 {
                        let k = left.min(CHUNK as u64) as usize;
                        if s.write_all(&buf[..k]).is_err() {
                            break;
                        }
                        left -= k as u64;
                    }
                }
            });
        }
    });
}

/// One connection as `uid` from the agent namespace: connect, ping, pong, close.
fn ping(lab: &netns::NetLab, uid: u32, to: SocketAddr, n: usize) -> Vec<Duration> {
    lab.within(&lab.agent, Some(uid), move || {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let mut s = TcpStream::connect(to).expect("connect");
            s.set_nodelay(true).unwrap();
            s.write_all(b"ping\n").unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"pong", "the answer came back");
            out.push(started.elapsed());
        }
        out
    })
}

/// Download `bytes` as `uid`; MB/s.
fn stream(lab: &netns::NetLab, uid: u32, to: SocketAddr, bytes: u64) -> f64 {
    lab.within(&lab.agent, Some(uid), move || {
        let started = Instant::now();
        let mut s = TcpStream::connect(to).expect("connect");
        s.write_all(format!("down {bytes}\n").as_bytes()).unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n as u64,
                Err(e) => panic!("stream: {e}"),
            }
        }
        assert_eq!(got, bytes, "the whole stream arrived");
        bytes as f64 / started.elapsed().as_secs_f64() / 1e6
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let secs = env_f64("CLAWGATE_BENCH_SECS", 3.0);
    let mib = env_usize("CLAWGATE_BENCH_TUNNEL_MIB", 256) as u64;
    let rounds = env_usize("CLAWGATE_BENCH_TUNNEL_ROUNDS", 3);
    let lab = netns::NetLab::new();
    let listener = lab.within(&lab.up, None, || {
        std::net::TcpListener::bind(("0.0.0.0", PORT)).expect("upstream bind")
    });
    serve_upstream(listener);
    let to = SocketAddr::new(IpAddr::V4(netns::UP), PORT);

    let rules = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.agent, env!("CARGO_BIN_EXE_clawgate")])
        .args(["net", "rules", "--uid", "0", "--apply"])
        .output()
        .expect("net rules");
    assert!(
        rules.status.success(),
        "{}",
        String::from_utf8_lossy(&rules.stderr)
    );

    // clawgate on runtime threads that live in the agent namespace (created from a thread that
    // entered it), as root: exempt from the rules.
    let state = bench_tempdir();
    let policy = copy_bundle(
        &source_bundle(),
        &state.path().join("policy"),
        |name, text| {
            if name != "data.json" {
                return text;
            }
            patch_data(&text, |data| {
                let network = &mut data["clawgate"]["network"];
                network["allowed_cidrs"] = json!([format!("{}/32", netns::UP)]);
                network["unusual_port_rule"]["effect"] = json!("allow");
                raise_rate_limits(data);
            })
        },
    );
    let mut config = clawgate::config::Config {
        data_dir: state.path().join("data"),
        ..Default::default()
    };
    config.policy.dir = Some(policy);
    config.policy.watch = false;
    config.listeners.transparent = Some(clawgate::config::TransparentConfig {
        dns_addrs: Vec::new(),
        ..Default::default()
    });
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sidecar = lab.within(&lab.agent, None, move || {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("clawgate-srv")
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let running = clawgate::app::start(config).await.expect("clawgate starts");
                ready_tx.send(()).unwrap();
                let _ = stop_rx.await;
                running.shutdown(Duration::from_secs(2)).await;
            });
        })
    });
    ready_rx.recv().expect("clawgate ready");

    // Probes: both routes answer.
    ping(&lab, 0, to, 1);
    ping(&lab, AGENT_UID, to, 1);

    println!("transparent: setup (connect, ping, pong, close; c=1, {secs} s each)");
    let mut rates = Vec::new();
    for (label, uid) in [("direct", 0u32), ("transparent", AGENT_UID)] {
        let started = Instant::now();
        let mut lat = new_histogram();
        let mut n = 0u64;
        while started.elapsed().as_secs_f64() < secs {
            for d in ping(&lab, uid, to, 50) {
                lat.record(nanos(d)).unwrap();
                n += 1;
            }
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        rates.push(rate);
        println!(
            "  {label:<12} {:>8} conns/s  p50 {:>9}  p99 {:>9}",
            fmt_rate(rate),
            fmt_ns(lat.value_at_quantile(0.5)),
            fmt_ns(lat.value_at_quantile(0.99))
        );
    }
    println!("  t/d {}", ratio(rates[1], rates[0]));

    println!("transparent: stream ({mib} MiB down, {rounds} rounds, median (min-max))");
    let bytes = mib * 1024 * 1024;
    let mut medians = Vec::new();
    for (label, uid) in [("direct", 0u32), ("transparent", AGENT_UID)] {
        let runs: Vec<f64> = (0..rounds).map(|_| stream(&lab, uid, to, bytes)).collect();
        let (lo, hi) = runs
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), x| (l.min(*x), h.max(*x)));
        let m = median(runs);
        medians.push(m);
        println!("  {label:<12} {m:>8.0} MB/s ({lo:.0}-{hi:.0})");
    }
    println!("  t/d {}", ratio(medians[1], medians[0]));

    let _ = stop_tx.send(());
    let _ = sidecar.join();
    drop(lab);
}
