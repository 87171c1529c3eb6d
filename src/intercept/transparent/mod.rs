//! Transparent interception (`[listeners.transparent]`): the agent's TCP connections arrive
//! here because the kernel redirected them (`clawgate net rules`), not because the agent
//! chose a proxy. Each one is judged by the same gate as the egress proxy's:
//!
//! - the original destination comes from the kernel ([`origdst`]); it is `dest.ips`, never a
//!   name the client chose;
//! - the opening is peeked without consuming it ([`peek`]): a TLS ClientHello's server name
//!   or a plain HTTP request's `Host` becomes `dest.host` only as a claim, with
//!   `dest.host_from` and `dest.host_resolves` saying where it came from and whether it
//!   resolves to the dialled address;
//! - plain HTTP is served request by request and each request is an `http` action, judged
//!   and relayed by the egress proxy's own code; TLS and anything else is a `connect` action,
//!   carried as a CONNECT tunnel is (terminated and inspected when TLS inspection covers it).
//!
//! The agent is the identity whose `uid` owns the connecting socket ([`owner`]), for DNS
//! queries too; a user no identity names is judged as the unnamed agent `uid:N`.
//!
//! Refusals close the connection (403 on plain HTTP). DNS queries go to [`dns`].

pub mod dns;
pub mod origdst;
pub mod owner;
pub mod peek;
pub mod settings;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::action::AgentIdentity;
use crate::gate::Ruling;
use crate::http_api::ResponseBody;
use crate::identity::Identities;
use crate::intercept::egress::destination::{Resolved, normalize_host};
use crate::intercept::egress::{EgressProxy, Route, names_only};
use peek::Opening;
pub use settings::TransparentConfig;

/// The transparent listener's shared state.
pub struct Transparent {
    proxy: Arc<EgressProxy>,
    identities: Arc<Identities>,
    peek_timeout: Duration,
    slots: Arc<Semaphore>,
    /// The listener's own bound addresses: a connection whose original destination is one of
    /// them was not redirected (or would loop) and is refused.
    own: Vec<SocketAddr>,
}

/// Bind every address of `[listeners.transparent] addrs`; an IPv6 address that cannot be
/// bound (IPv6 off) is skipped when another address is bound.
pub async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut bound = Vec::new();
    let mut skipped = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => bound.push(l),
            Err(e) if addr.is_ipv6() && e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tracing::warn!(%addr, error = %e, "IPv6 address not available; skipped");
                skipped = Some(e);
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot bind {addr}: {e}"),
                ));
            }
        }
    }
    match (bound.is_empty(), skipped) {
        (true, Some(e)) => Err(e),
        _ => Ok(bound),
    }
}

impl Transparent {
    pub fn new(
        config: &TransparentConfig,
        proxy: Arc<EgressProxy>,
        identities: Arc<Identities>,
        own: Vec<SocketAddr>,
    ) -> Transparent {
        Transparent {
            proxy,
            identities,
            peek_timeout: Duration::from_millis(config.peek_timeout_ms),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            own: own.into_iter().map(origdst::canonical).collect(),
        }
    }

    /// Accept redirected connections until shutdown.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let slot = tokio::select! {
                s = self.slots.clone().acquire_owned() => match s {
                    Ok(s) => s,
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "transparent listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let this = self.clone();
            tokio::spawn(async move {
                this.handle(stream, peer).await;
                drop(slot);
            });
        }
    }

    async fn handle(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let orig = match origdst::original_destination(&stream) {
            Ok(a) => origdst::canonical(a),
            Err(e) => {
                // Fail closed: a connection whose destination is unknown goes nowhere.
                tracing::warn!(%peer, error = %e, "transparent connection refused: original destination unknown");
                return;
            }
        };
        let local = stream.local_addr().ok().map(origdst::canonical);
        if Some(orig) == local || self.is_own(orig) {
            tracing::warn!(%peer, dest = %orig, "transparent connection refused: it was not redirected (its destination is this listener)");
            return;
        }
        let opening = match peek::peek_opening(&stream, self.peek_timeout).await {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(%peer, dest = %orig, error = %e, "transparent connection refused before it was judged");
                return;
            }
        };
        let agent = owner::connection_agent(&self.identities, peer, orig).await;
        match opening {
            Opening::Http => self.serve_http(stream, orig, agent).await,
            Opening::Tls { sni: Some(name) } => self.tunnel(stream, orig, Some(name), agent).await,
            Opening::Tls { sni: None } | Opening::Raw => {
                self.tunnel(stream, orig, None, agent).await
            }
        }
    }

    fn is_own(&self, orig: SocketAddr) -> bool {
        self.own
            .iter()
            .any(|a| a.port() == orig.port() && (a.ip() == orig.ip() || a.ip().is_unspecified()))
    }

    /// The destination policy judges: the dialled address, and the name the client claimed
    /// (SNI or Host) with whether it resolves to that address.
    async fn destination(&self, orig: SocketAddr, claim: Option<(&str, &'static str)>) -> Resolved {
        let (host, host_from, host_resolves) = match claim {
            None => (orig.ip().to_string(), "address", None),
            Some((name, from)) => {
                let name = normalize_host(name);
                let resolves = match self.proxy.resolver().resolve(&name, orig.port()).await {
                    Ok(r) => r.addrs.iter().any(|a| same_ip(*a, orig.ip())),
                    Err(_) => false,
                };
                (name, from, Some(resolves))
            }
        };
        Resolved {
            host,
            port: orig.port(),
            addrs: vec![orig.ip()],
            host_from: Some(host_from),
            host_resolves,
        }
    }

    /// TLS or raw TCP: one `connect` action; allowed, carried like a CONNECT tunnel.
    async fn tunnel(
        &self,
        stream: TcpStream,
        orig: SocketAddr,
        sni: Option<String>,
        agent: AgentIdentity,
    ) {
        let dest = self
            .destination(orig, sni.as_deref().map(|s| (s, "sni")))
            .await;
        let permit = match self.proxy.rule_connect(&agent, &dest, "transparent").await {
            Ruling::Allowed(p) => p,
            // Dropped with its opening unread: the client gets a reset.
            Ruling::Refused(_) => return,
        };
        let upstream = match self.proxy.dial(&permit, &dest).await {
            Ok(u) => u,
            Err(e) => {
                permit.fail(e.to_string()).await;
                return;
            }
        };
        self.proxy
            .carry_tunnel(permit, agent, stream, dest, upstream)
            .await;
    }

    /// Plain HTTP: serve the connection, each request decided on its own as on the proxy.
    async fn serve_http(
        self: &Arc<Self>,
        stream: TcpStream,
        orig: SocketAddr,
        agent: AgentIdentity,
    ) {
        let this = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let this = this.clone();
            let agent = agent.clone();
            async move { Ok::<_, std::convert::Infallible>(this.http_request(req, orig, agent).await) }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(15))
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(e) = served {
            tracing::debug!(dest = %orig, error = %e, "transparent HTTP connection ended");
        }
    }

    async fn http_request(
        &self,
        req: Request<Incoming>,
        orig: SocketAddr,
        agent: AgentIdentity,
    ) -> Response<ResponseBody> {
        // The claim: the absolute-form URL's host, else the Host field.
        let claim = req
            .uri()
            .host()
            .map(str::to_string)
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<http::uri::Authority>().ok())
                    .map(|a| a.host().to_string())
            })
            .unwrap_or_else(|| orig.ip().to_string());
        // Every name the request gives must be that one claim on the dialled port.
        if let Err(e) = names_only(req.uri(), req.headers(), "http", &claim, orig.port()) {
            return e.into_response();
        }
        let dest = self.destination(orig, Some((&claim, "http_host"))).await;
        let proxy = self.proxy.clone();
        proxy.relay(agent, "http", req, &dest, Route::Direct).await
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    canon(a) == canon(b)
}
