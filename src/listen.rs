//! Binding, TLS termination and accepting: a listener turns connections into requests that
//! carry the connection's `PeerInfo`, and hands them to a handler until shutdown. It knows
//! nothing about what the requests mean.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Listener;
use crate::http_api::ResponseBody;
use crate::identity::PeerInfo;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr} for the {listener} listener: {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS for the {listener} listener: {source}")]
    Tls {
        listener: &'static str,
        #[source]
        source: crate::tls::TlsError,
    },
}

/// What one client may hold of a listener (`[listeners.NAME.connections]`): a client that
/// sends its headers a byte at a time, goes quiet, or opens connection after connection is cut
/// off instead of holding the listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers, counted from when the connection waits
    /// for them (so it also ends an HTTP/1 keep-alive connection left unused that long).
    pub header_read_timeout_ms: u64,
    /// A connection that moved no bytes for this long, with no request being answered, is
    /// closed (HTTP/2 included). A request body has 30 s to arrive, whatever this says.
    pub idle_timeout_s: u64,
    /// Largest request head (request line and headers) accepted; at least 8192.
    pub max_header_bytes: usize,
    /// Connections open at once on this listener; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_peer: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout_ms: 15_000,
            idle_timeout_s: 120,
            max_header_bytes: 65_536,
            max_connections: 4_096,
            max_connections_per_peer: 1_024,
        }
    }
}

impl ConnectionLimits {
    /// Why these limits cannot be served, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.header_read_timeout_ms == 0 || self.idle_timeout_s == 0 {
            return Some("header_read_timeout_ms and idle_timeout_s must be above 0".into());
        }
        if self.max_header_bytes < 8_192 {
            return Some(format!(
                "max_header_bytes is {}; it must be at least 8192",
                self.max_header_bytes
            ));
        }
        if self.max_connections == 0 || self.max_connections_per_peer == 0 {
            return Some("max_connections and max_connections_per_peer must be above 0".into());
        }
        None
    }
}

/// A bound listener: TCP, and TLS on top when configured.
pub(crate) struct Acceptor {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
}

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn bind(name: &'static str, listener: &Listener) -> Result<Acceptor, ListenError> {
    // Load certificates before binding, so a bad file is reported before the port is taken.
    let tls = match &listener.tls {
        Some(tls) => Some(TlsAcceptor::from(
            crate::tls::listener::server_config(tls).map_err(|source| ListenError::Tls {
                listener: name,
                source,
            })?,
        )),
        None => None,
    };
    let addr = listener.addr;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind {
            listener: name,
            addr,
            source,
        })?;
    Ok(Acceptor {
        tcp,
        tls,
        limits: listener.connections.clone(),
    })
}

impl Acceptor {
    /// The bound address (the real port when port 0 was asked for).
    pub(crate) fn local_addr(&self, listener: &'static str) -> Result<SocketAddr, ListenError> {
        self.tcp.local_addr().map_err(|source| ListenError::Bind {
            listener,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })
    }
}

/// Accept connections (TLS when configured) and serve HTTP/1.1 and HTTP/2 on them until
/// shutdown, then drain. Every request carries the connection's `PeerInfo` as an extension.
pub(crate) async fn serve<F, Fut>(
    listener: Acceptor,
    mut shutdown: watch::Receiver<bool>,
    up: Arc<AtomicBool>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let limits = listener.limits.clone();
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_buf_size(limits.max_header_bytes);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builders = Arc::new(Builders { http1, http2 });
    let idle = Duration::from_secs(limits.idle_timeout_s);
    let counts = ConnectionCounts::new(&limits);
    up.store(true, Ordering::Relaxed);
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => {
                let (stream, remote) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = counts.admit(remote.ip()) else {
                    tracing::debug!(%remote, "connection refused: the listener's connection limits are reached");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let activity = Arc::new(Activity::new());
                let stream = Watched { inner: stream, activity: activity.clone() };
                let (handler, builders, watcher) = (handler.clone(), builders.clone(), graceful.watcher());
                let (tls, stopping) = (listener.tls.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let conn = Conn { watcher, stopping, activity, idle };
                    let result = match tls {
                        None => {
                            let peer = PeerInfo { remote, client_cert: None };
                            serve_connection(&builders, conn, stream, peer, handler).await
                        }
                        // Boxed: a TLS connection's state (handshake, rustls, its own
                        // instance of the connection future) is ~6 KB larger, and inline it
                        // made every plain connection's task as large (8.4 KB, not 2.4).
                        Some(tls) => Box::pin(async move {
                            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                                    return Ok(());
                                }
                                Err(_) => {
                                    tracing::debug!(%remote, "TLS handshake timed out");
                                    return Ok(());
                                }
                            };
                            let client_cert = crate::tls::listener::client_certificate(stream.get_ref().1);
                            let peer = PeerInfo { remote, client_cert };
                            serve_connection(&builders, conn, stream, peer, handler).await
                        }).await,
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    up.store(false, Ordering::Relaxed);
    drop(listener);
    graceful.shutdown().await;
}

/// How a listener serves HTTP/1.1 and HTTP/2, shared by its connections.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

/// What a connection's task needs besides its IO.
struct Conn {
    watcher: hyper_util::server::graceful::Watcher,
    /// The listener's shutdown: a connection still waiting for its opening bytes ends then.
    stopping: watch::Receiver<bool>,
    activity: Arc<Activity>,
    idle: Duration,
}

/// Serve one connection (plain or TLS), inserting `peer` into every request, until it ends
/// or has been idle (no bytes, no request being answered) for `conn.idle`. A connection
/// that opens with the HTTP/2 preface is served as HTTP/2, any other as HTTP/1.1 (with
/// upgrades), as `hyper_util`'s `auto` builder would, but without its rewinding reader (see
/// [`Opened`]).
async fn serve_connection<S, F, Fut>(
    builders: &Builders,
    conn: Conn,
    stream: S,
    peer: PeerInfo,
    handler: F,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let activity = conn.activity.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let busy = InFlight::start(&activity);
        // Started here, not inside the box below, so that the box does not keep the request.
        let answer = handler(req);
        // hyper keeps room for the service's future in every connection (`in_flight`), from
        // the first request until the connection closes. Boxed, that room is a pointer, and
        // the future itself is freed once answered: an idle keep-alive connection no longer
        // keeps a handler's state (it was ~11 KB on the agent listener).
        Box::pin(async move {
            let response = answer.await;
            drop(busy);
            Ok::<_, Infallible>(response.map(Sent))
        })
    });
    let Conn {
        watcher,
        mut stopping,
        activity,
        idle,
    } = conn;
    let served = async move {
        // The listener's drain (`GracefulShutdown`) waits for this connection until it ends.
        let _watcher = watcher;
        let opened = tokio::select! {
            opened = Opened::read(stream) => match opened {
                Ok(opened) => opened,
                Err(e) => return Err(boxed(e)),
            },
            // Shutting down before the client said anything: nothing to drain.
            _ = stopping.wait_for(|stop| *stop) => return Ok(()),
        };
        if opened.http2 {
            // Boxed: the HTTP/2 state does not make every HTTP/1 connection's task larger.
            let conn = builders
                .http2
                .serve_connection(TokioIo::new(opened), service);
            Box::pin(until_stopped(conn, stopping, |c| c.graceful_shutdown()))
                .await
                .map_err(boxed)
        } else {
            let conn = builders
                .http1
                .serve_connection(TokioIo::new(opened), service)
                .with_upgrades();
            until_stopped(conn, stopping, |c| c.graceful_shutdown())
                .await
                .map_err(boxed)
        }
    };
    tokio::pin!(served);
    let check = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::select! {
            result = &mut served => return result,
            _ = tokio::time::sleep(check) => {
                if activity.idle_for() >= idle {
                    tracing::debug!(idle_s = idle.as_secs(), "closing an idle connection");
                    return Ok(());
                }
            }
        }
    }
}

/// A response body as hyper gets it: the same frames, its error a named type. With the
/// boxed `dyn Error` of [`ResponseBody`] as the body's error, rustc cannot prove the
/// connection's future `Send` once hyper's connection is awaited inside this generic
/// function ("implementation of `From` is not general enough").
struct Sent(ResponseBody);

impl http_body::Body for Sent {
    type Data = bytes::Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, BodyError>>> {
        Pin::new(&mut self.0).poll_frame(cx).map_err(BodyError)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The error of a response body; the original is its source (hyper looks there for an
/// HTTP/2 reset reason).
#[derive(Debug)]
struct BodyError(crate::http_api::BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Why a connection ended early (logged at debug level).
type ConnError = Box<dyn std::error::Error + Send + Sync>;

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> ConnError {
    Box::new(e)
}

/// Drive a connection until it ends; once the listener stops, ask it (`stop`) to finish the
/// requests it is answering and close, and drive it until it has.
async fn until_stopped<C: Future>(
    conn: C,
    mut stopping: watch::Receiver<bool>,
    stop: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => return done,
        _ = stopping.wait_for(|stop| *stop) => stop(conn.as_mut()),
    }
    conn.await
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection whose opening bytes were read to tell HTTP/2 from HTTP/1: it reads them
/// again first, then the stream.
///
/// Unlike `hyper_util`'s rewinding reader, the read that returns the opening bytes also
/// takes whatever else has arrived. hyper's HTTP/1 read buffer starts at 8 KiB for one
/// read; a first read of only the opening bytes made it grow to 16 KiB for the life of
/// every connection.
struct Opened<S> {
    inner: S,
    opening: [u8; H2_PREFACE.len()],
    /// `opening[at..len]` is still to be read.
    at: usize,
    len: usize,
    /// Whether the opening bytes are the HTTP/2 preface.
    http2: bool,
    /// An error of the stream met after the opening bytes were returned; the next read gets it.
    error: Option<std::io::Error>,
}

impl<S: AsyncRead + Unpin> Opened<S> {
    /// Read until the bytes are the HTTP/2 preface or cannot be (as `hyper_util`'s `auto`
    /// builder does: the end of the stream, or a byte off the preface, means HTTP/1).
    async fn read(mut inner: S) -> std::io::Result<Opened<S>> {
        let mut opening = [0u8; H2_PREFACE.len()];
        let mut len = 0;
        let mut http2 = true;
        while len < opening.len() {
            let n = inner.read(&mut opening[len..]).await?;
            let before = len;
            len += n;
            if n == 0 || opening[before..len] != H2_PREFACE[before..len] {
                http2 = false;
                break;
            }
        }
        Ok(Opened {
            inner,
            opening,
            at: 0,
            len,
            http2,
            error: None,
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Opened<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.error.take() {
            return Poll::Ready(Err(e));
        }
        if this.at == this.len {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let rest = &this.opening[this.at..this.len];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.at += n;
        if this.at == this.len && buf.remaining() > 0 {
            // The bytes that came with the opening ones, in the same read; none yet is fine.
            if let Poll::Ready(Err(e)) = Pin::new(&mut this.inner).poll_read(cx, buf) {
                this.error = Some(e);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Opened<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// When a connection last moved bytes, and how many of its requests are being answered.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Zero while a request is being answered (a long poll or a slow upstream is not idle).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A request being answered; the connection is not idle until it is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes moved through it.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections, in total and per peer address, against the listener's caps.
#[derive(Clone)]
struct ConnectionCounts {
    inner: Arc<Mutex<Counts>>,
}

struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
    max_total: usize,
    max_per_peer: usize,
}

impl ConnectionCounts {
    fn new(limits: &ConnectionLimits) -> ConnectionCounts {
        ConnectionCounts {
            inner: Arc::new(Mutex::new(Counts {
                total: 0,
                per_peer: HashMap::new(),
                max_total: limits.max_connections,
                max_per_peer: limits.max_connections_per_peer,
            })),
        }
    }

    /// A slot for one more connection from `ip`, or `None` past a cap.
    fn admit(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut c = self.inner.lock().ok()?;
        let from_peer = c.per_peer.get(&ip).copied().unwrap_or(0);
        if c.total >= c.max_total || from_peer >= c.max_per_peer {
            return None;
        }
        c.total += 1;
        c.per_peer.insert(ip, from_peer + 1);
        Some(ConnectionSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One admitted connection; dropping it frees its place.
struct ConnectionSlot {
    counts: ConnectionCounts,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.inner.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_peer.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    c.per_peer.remove(&self.ip);
                }
            }
        }
    }
}
