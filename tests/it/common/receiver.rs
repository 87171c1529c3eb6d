//! A scriptable HTTP receiver on loopback: it stands in for Slack's incoming webhook, a
//! Slack `response_url` and a generic webhook consumer, and records what it receives.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: &'static str,
    /// Answer only after this long.
    pub delay: Duration,
    /// Answer only once the test calls `release` (or after 10 s, so nothing hangs forever).
    pub hold: bool,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            body: "ok",
            delay: Duration::ZERO,
            hold: false,
        }
    }
    pub fn ok() -> Reply {
        Reply::status(200)
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

pub struct Shared {
    pub requests: Mutex<Vec<Recorded>>,
    /// Replies for the next requests, in order; then `default`.
    pub script: Mutex<VecDeque<Reply>>,
    pub default: Reply,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub answered: AtomicUsize,
    pub release: watch::Sender<bool>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start(default: Reply, script: &[Reply]) -> Receiver {
        Receiver::start_on("127.0.0.1", default, script).await
    }

    /// A receiver on another loopback address (e.g. 127.0.0.2), for tests that tell
    /// destinations apart by address.
    pub async fn start_on(ip: &str, default: Reply, script: &[Reply]) -> Receiver {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(script.iter().copied().collect()),
            default,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            release: watch::channel(false).0,
        });
        let accept = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accept.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    pub fn answered(&self) -> usize {
        self.shared.answered.load(Ordering::SeqCst)
    }

    pub fn release(&self) {
        self.shared.release.send_replace(true);
    }

    pub async fn wait_for_requests(&self, n: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests arrived",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.requests()
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let reply = {
        let next = shared.script.lock().unwrap().pop_front();
        next.unwrap_or(shared.default)
    };
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    shared.requests.lock().unwrap().push(Recorded {
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    if reply.hold {
        let mut released = shared.release.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(10), released.wait_for(|r| *r)).await;
    }
    tokio::time::sleep(reply.delay).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    shared.answered.fetch_add(1, Ordering::SeqCst);
    let mut resp = Response::builder().status(reply.status);
    if let Some(secs) = reply.retry_after {
        resp = resp.header("retry-after", secs);
    }
    Ok(resp.body(Full::new(Bytes::from(reply.body))).unwrap())
}
