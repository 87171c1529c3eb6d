//! Binding, TLS termination and accepting: a listener turns connections into requests that
//! carry the connection's `PeerInfo`, and hands them to a handler until shutdown. It knows
//! nothing about what the requests mean.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
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

/// A bound listener: TCP, and TLS on top when configured.
pub(crate) struct Acceptor {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
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
    Ok(Acceptor { tcp, tls })
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
    let builder = auto::Builder::new(TokioExecutor::new());
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
                let _ = stream.set_nodelay(true);
                let (handler, builder, watcher) = (handler.clone(), builder.clone(), graceful.watcher());
                let tls = listener.tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        None => {
                            let peer = PeerInfo { remote, client_cert: None };
                            serve_connection(&builder, watcher, TokioIo::new(stream), peer, handler).await
                        }
                        Some(tls) => {
                            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%remote, "TLS handshake timed out");
                                    return;
                                }
                            };
                            let client_cert = crate::tls::listener::client_certificate(stream.get_ref().1);
                            let peer = PeerInfo { remote, client_cert };
                            serve_connection(&builder, watcher, TokioIo::new(stream), peer, handler).await
                        }
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

/// Serve one connection (plain or TLS), inserting `peer` into every request.
async fn serve_connection<I, F, Fut>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    peer: PeerInfo,
    handler: F,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    watcher
        .watch(
            builder
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        )
        .await
}
