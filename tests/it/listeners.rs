//! Slow and greedy clients (issue 15, finding 10): a client that trickles its headers, goes
//! quiet, sends huge headers or opens connection after connection is cut off, over real TCP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clawgate::config::ConnectionLimits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::start_with;

/// Read until the server closes the connection (or `within` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(stream, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let s = start_with(|c, _| {
        c.listeners.agent.connections = ConnectionLimits {
            header_read_timeout_ms: 400,
            ..ConnectionLimits::default()
        };
    })
    .await;
    let mut stream = TcpStream::connect(s.running.agent_addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /v1/check HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Keep trickling header bytes well past the timeout; the server must close anyway.
    let closed = async {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b"X-Slow: y\r\n").await.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .unwrap();
    let got = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(got.is_some(), "the connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The listener still serves everyone else.
    let (code, _) = s.check("read", json!({"path": "README.md"})).await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_but_a_long_poll_is_not() {
    let s = start_with(|c, _| {
        c.listeners.agent.connections = ConnectionLimits {
            header_read_timeout_ms: 30_000,
            idle_timeout_s: 1,
            ..ConnectionLimits::default()
        };
    })
    .await;
    // HTTP/2 (prior knowledge) has no header timer: only the idle timeout ends a silent client.
    let mut stream = TcpStream::connect(s.running.agent_addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        read_until_closed(&mut stream, Duration::from_secs(8))
            .await
            .is_some(),
        "an idle HTTP/2 connection stayed open"
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // A request being answered is not idle: a 3 s long poll on an approval outlives the 1 s
    // idle timeout and gets its answer.
    let (code, held) = s.check("exec", json!({"command": "rm -rf target"})).await;
    assert_eq!(
        (code, held["decision"].as_str()),
        (200, Some("pending")),
        "{held}"
    );
    let wait = held["wait_url"].as_str().unwrap().to_string();
    let url = if wait.starts_with("http") {
        format!("{wait}?timeout=3")
    } else {
        s.agent(&format!("{wait}?timeout=3"))
    };
    let started = Instant::now();
    let resp = s.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["decision"], "pending", "{body}");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let s = start_with(|c, _| {
        c.listeners.admin.connections = ConnectionLimits {
            max_header_bytes: 8_192,
            ..ConnectionLimits::default()
        };
    })
    .await;
    let mut stream = TcpStream::connect(s.running.admin_addr).await.unwrap();
    let big = "a".repeat(20_000);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let got = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // An ordinary request on a new connection is served.
    let mut ok = TcpStream::connect(s.running.admin_addr).await.unwrap();
    assert!(healthz(&mut ok).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_peer_and_in_total() {
    let s = start_with(|c, _| {
        c.listeners.admin.connections = ConnectionLimits {
            max_connections: 3,
            max_connections_per_peer: 2,
            ..ConnectionLimits::default()
        };
    })
    .await;
    let admin = s.running.admin_addr;
    // Two idle connections from 127.0.0.1 use up that peer's share.
    let held = [
        connect_from("127.0.0.1", admin).await,
        connect_from("127.0.0.1", admin).await,
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect_from("127.0.0.1", admin).await;
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let got = read_until_closed(&mut third, Duration::from_secs(5))
        .await
        .expect("refused at once");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));

    // Another peer still gets in, up to the listener's total of 3.
    let mut other = connect_from("127.0.0.2", admin).await;
    let _parked = connect_from("127.0.0.3", admin).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect_from("127.0.0.4", admin).await;
    let got = read_until_closed(&mut fourth, Duration::from_secs(5))
        .await
        .expect("refused at once");
    assert!(got.is_empty());
    assert!(healthz(&mut other).await.starts_with("HTTP/1.1 200"));

    // Closing connections frees their places.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_from("127.0.0.1", admin).await;
    assert!(healthz(&mut again).await.starts_with("HTTP/1.1 200"));
}

#[test]
fn limits_that_cannot_be_served_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path());
    config.listeners.egress.connections.max_header_bytes = 1_024;
    config.listeners.admin.connections.max_connections_per_peer = 0;
    let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
    assert!(
        keys.contains(&"listeners.egress.connections".to_string())
            && keys.contains(&"listeners.admin.connections".to_string()),
        "{keys:?}"
    );
}
