//! The egress listener: the HTTP/1.1 forward proxy OpenClaw's `proxy.proxyUrl` points at.
//!
//! An absolute-form request becomes an Action of kind `http`, a `CONNECT` one of kind
//! `connect`; both carry `dest.ips` resolved by clawgate ([`destination`]). Allowed traffic
//! goes to an address policy judged; everything else gets a 403 with a JSON body. Tunnels to
//! inspected hosts are terminated ([`inspect`]) so that each request inside is an `http` action.

pub(crate) mod destination;
pub(crate) mod inspect;
mod pool;
mod settings;
pub(crate) mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::action::{Action, AgentIdentity, Destination, HttpRequest};
use crate::config::Config;
use crate::gate::{CheckRequest, Decision, Gate, Outcome, Permit, Ruling};
use crate::http_api::{BodyError, BoxError, ResponseBody, collect_limited, json_response};
use crate::identity::Authenticated;
use crate::intercept::forward::{self, BodyLimits, MeteredBody};
use destination::{DestinationError, Resolved, Resolver};
use inspect::{Inspector, TunnelUpstream};
pub use settings::EgressConfig;

/// The egress proxy's settings and its shared state.
pub struct EgressProxy {
    gate: Arc<Gate>,
    resolver: Resolver,
    connect_timeout: Duration,
    upstream_timeout: Duration,
    hold: Duration,
    max_request_body: usize,
    keep_bytes: usize,
    inspector: Option<Inspector>,
    /// Idle upstream connections of the plain-HTTP path.
    upstreams: Arc<pool::UpstreamPool>,
}

/// Where an allowed request goes.
pub(crate) enum Route<'a> {
    /// A new connection to an address policy judged (plain `http://` proxying).
    Direct,
    /// The upstream connection of an inspected tunnel.
    Tunnel(&'a TunnelUpstream),
}

/// Why the egress proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EgressSetupError {
    #[error(
        "egress.tls_inspect needs egress.ca_cert and egress.ca_key (`clawgate certs init --dir certs` writes them)"
    )]
    MissingCa,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl EgressProxy {
    pub fn new(config: &Config, gate: Arc<Gate>) -> Result<EgressProxy, EgressSetupError> {
        let egress = &config.egress;
        let inspector = match (egress.tls_inspect, &egress.ca_cert, &egress.ca_key) {
            (false, _, _) => None,
            (true, Some(cert), Some(key)) => Some(Inspector::new(
                cert,
                key,
                &egress.extra_roots,
                egress.pass_through.clone(),
            )?),
            // Inspection asked for but impossible: refuse to start rather than tunnel blind.
            (true, _, _) => return Err(EgressSetupError::MissingCa),
        };
        Ok(EgressProxy {
            gate,
            resolver: Resolver::new(
                egress.resolve.clone(),
                Duration::from_millis(egress.resolve_timeout_ms),
            ),
            connect_timeout: Duration::from_millis(egress.connect_timeout_ms),
            upstream_timeout: Duration::from_millis(egress.upstream_timeout_ms),
            hold: Duration::from_secs(config.approval.hold_s),
            max_request_body: egress.max_request_body_bytes,
            keep_bytes: config.audit.blob_max_bytes,
            inspector,
            upstreams: Arc::default(),
        })
    }

    /// One request on the egress listener, from a peer that already authenticated.
    pub async fn handle(
        self: &Arc<Self>,
        auth: &Authenticated,
        req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let agent = agent_identity(auth);
        if req.method() == Method::CONNECT {
            self.connect(agent, req).await
        } else {
            self.forward_http(agent, req).await
        }
    }

    /// `CONNECT host:port`: decide the tunnel, open it to a judged address, then splice.
    async fn connect(
        self: &Arc<Self>,
        agent: AgentIdentity,
        mut req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let Some((host, port)) = connect_target(req.uri()) else {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                "bad_connect_target",
                "CONNECT needs host:port (e.g. CONNECT api.example.com:443)".into(),
            );
        };
        let dest = match self.resolver.resolve(&host, port).await {
            Ok(d) => d,
            Err(e) => return destination_error(e),
        };
        let permit = match self.rule_connect(&agent, &dest, "egress CONNECT").await {
            Ruling::Allowed(permit) => permit,
            Ruling::Refused(decision) => return refusal(&decision),
        };
        let upstream = match self.dial(&permit, &dest).await {
            Ok(s) => s,
            Err(e) => {
                let message = e.to_string();
                forward::fail(permit, message.clone());
                return proxy_error(StatusCode::BAD_GATEWAY, "upstream_unreachable", message);
            }
        };
        let upgrade = hyper::upgrade::on(&mut req);
        let proxy = self.clone();
        tokio::spawn(async move {
            let client = match upgrade.await {
                Ok(u) => TokioIo::new(u),
                Err(e) => {
                    permit
                        .fail(format!("the client did not start the tunnel: {e}"))
                        .await;
                    return;
                }
            };
            proxy
                .carry_tunnel(permit, agent, client, dest, upstream)
                .await;
        });
        let mut resp = Response::new(empty_body());
        *resp.status_mut() = StatusCode::OK;
        resp
    }

    /// Decide a `connect` action to `dest`: a CONNECT tunnel, or a connection the kernel
    /// redirected to the transparent listener (`front` says which, for the log).
    pub(crate) async fn rule_connect(
        &self,
        agent: &AgentIdentity,
        dest: &Resolved,
        front: &'static str,
    ) -> Ruling {
        let request = CheckRequest {
            action: Action::connect(destination(dest)),
            agent: agent.clone(),
            requester: None,
        };
        let ruling = self.gate.rule(&request, self.hold).await;
        let decision = ruling.decision();
        tracing::info!(action_id = %decision.id, run_id = "", decision = decision.outcome.as_str(),
            host = %dest.host, port = dest.port, host_from = dest.host_from.unwrap_or(""), front);
        ruling
    }

    /// Open the upstream connection of an allowed tunnel, to an address policy judged.
    pub(crate) async fn dial(
        &self,
        permit: &Permit,
        dest: &Resolved,
    ) -> Result<tokio::net::TcpStream, DestinationError> {
        let (timeout, _) = self.limits(permit.decision());
        destination::connect(dest, self.connect_timeout.min(timeout)).await
    }

    /// Carry an allowed tunnel until it closes: terminated and inspected when TLS inspection
    /// covers its host, else spliced as bytes; then its result pointer. The action runs (for
    /// concurrency limits) until the tunnel closes.
    pub(crate) async fn carry_tunnel<IO>(
        self: &Arc<Self>,
        permit: Permit,
        agent: AgentIdentity,
        client: IO,
        dest: Resolved,
        upstream: tokio::net::TcpStream,
    ) where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (timeout, max_bytes) = self.limits(permit.decision());
        // A redirected connection without a server name has nothing to mint a leaf for.
        let named = dest.host_from.is_none_or(|from| from == "sni");
        let report = match &self.inspector {
            Some(inspector) if named && inspector.inspects(&dest.host) => {
                self.serve_inspected(inspector, agent, client, dest, upstream)
                    .await
            }
            _ => {
                let deadline = tokio::time::Instant::now() + timeout;
                tunnel::splice(client, upstream, max_bytes, deadline).await
            }
        };
        tunnel::finish(permit, report).await;
    }

    /// The name resolver the proxy judges destinations with.
    pub(crate) fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// An absolute-form `http://` request: decide it with its method, path, headers and body,
    /// then send it to a judged address and stream the answer back.
    async fn forward_http(
        self: &Arc<Self>,
        agent: AgentIdentity,
        req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let (parts, body) = req.into_parts();
        let uri = parts.uri.clone();
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return proxy_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_scheme",
                    format!(
                        "{other}:// requests go through CONNECT; only plain http:// is proxied in absolute form"
                    ),
                );
            }
            None => {
                return proxy_error(
                    StatusCode::BAD_REQUEST,
                    "not_a_proxy_request",
                    "this is clawgate's egress proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port".into(),
                );
            }
        }
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                "bad_request_target",
                "the request URI names no host".into(),
            );
        };
        let port = uri.port_u16().unwrap_or(80);
        if let Err(e) = names_only(&uri, &parts.headers, "http", host, port) {
            return e.into_response();
        }
        let dest = match self.resolver.resolve(host, port).await {
            Ok(d) => d,
            Err(e) => return destination_error(e),
        };
        self.relay(
            agent,
            "http",
            Request::from_parts(parts, body),
            &dest,
            Route::Direct,
        )
        .await
    }

    /// Serve the HTTP/1.1 requests inside an inspected tunnel, each decided on its own.
    async fn serve_inspected<IO>(
        self: &Arc<Self>,
        inspector: &Inspector,
        agent: AgentIdentity,
        client: IO,
        dest: Resolved,
        first: tokio::net::TcpStream,
    ) -> tunnel::TunnelReport
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let failed = |error: String| tunnel::TunnelReport {
            bytes_up: 0,
            bytes_down: 0,
            error: Some(error),
        };
        let tls = match inspector.accept(&dest.host, client).await {
            Ok(tls) => tls,
            Err(e) => {
                tracing::info!(host = %dest.host, error = %e, "inspected tunnel not established");
                return failed(e);
            }
        };
        let upstream = match inspector.upstream(dest.clone(), first, self.connect_timeout) {
            Ok(u) => Arc::new(u),
            Err(e) => return failed(e),
        };
        let proxy = self.clone();
        let dest = Arc::new(dest);
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (proxy, agent, dest, upstream) =
                (proxy.clone(), agent.clone(), dest.clone(), upstream.clone());
            async move {
                // The request must go where the tunnel goes: it is judged as that host.
                if let Err(e) = names_only(req.uri(), req.headers(), "https", &dest.host, dest.port)
                {
                    return Ok(e.into_response());
                }
                let resp = proxy
                    .relay(agent, "https", req, &dest, Route::Tunnel(&upstream))
                    .await;
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .await;
        tunnel::TunnelReport {
            bytes_up: 0,
            bytes_down: 0,
            error: served.err().map(|e| e.to_string()),
        }
    }

    /// Decide one request with its method, path, headers and body; send an allowed one along
    /// `route` and stream the answer back, metered and recorded.
    pub(crate) async fn relay(
        self: &Arc<Self>,
        agent: AgentIdentity,
        scheme: &'static str,
        req: Request<Incoming>,
        dest: &Resolved,
        route: Route<'_>,
    ) -> Response<ResponseBody> {
        let (parts, body) = req.into_parts();
        let uri = parts.uri.clone();
        let body = match collect_limited(body, &parts.headers, self.max_request_body).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return proxy_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "request body is larger than the limit of {} bytes (egress.max_request_body_bytes)",
                        self.max_request_body
                    ),
                );
            }
            Err(BodyError::Unreadable(why)) => {
                return proxy_error(
                    StatusCode::BAD_REQUEST,
                    "body_unreadable",
                    format!("could not read the request body: {why}"),
                );
            }
        };
        // Policy reads the body as serde_json parses it, the upstream gets the bytes: a JSON
        // body must not be readable two ways.
        if is_json(&parts.headers)
            && let Some(why) = crate::http_api::repeated_key(&body)
        {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                "repeated_json_key",
                format!(
                    "the JSON body repeats a key, so it can be read as two different requests: {why}"
                ),
            );
        }
        let http = describe_request(&parts.method, scheme, &uri, &parts.headers, &body, dest);
        let request = CheckRequest {
            action: Action::http(http, destination(dest)),
            agent,
            requester: None,
        };
        let ruling = self.gate.rule(&request, self.hold).await;
        let decision = ruling.decision();
        tracing::info!(action_id = %decision.id, run_id = "", decision = decision.outcome.as_str(),
            method = %parts.method, host = %dest.host, scheme, "egress http");
        let permit = match ruling {
            Ruling::Allowed(permit) => permit,
            Ruling::Refused(decision) => return refusal(&decision),
        };
        let (timeout, max_bytes) = self.limits(permit.decision());
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = async {
            let outgoing = upstream_request(&parts.method, &uri, &parts.headers, body)?;
            match route {
                Route::Tunnel(upstream) => upstream.send(outgoing).await,
                Route::Direct => {
                    let key = pool::PoolKey::of(dest);
                    let (mut sender, outgoing) = match self.upstreams.take(&key) {
                        Some(mut kept) => match kept.try_send_request(outgoing).await {
                            Ok(resp) => {
                                self.upstreams.keep(key, kept);
                                return Ok(resp);
                            }
                            // The upstream closed the kept connection before reading the
                            // request: send it again on a new one.
                            Err(mut e) => match e.take_message() {
                                Some(again) => (self.connect_direct(dest, timeout).await?, again),
                                None => {
                                    return Err(format!(
                                        "the upstream did not answer: {}",
                                        e.into_error()
                                    ));
                                }
                            },
                        },
                        None => (self.connect_direct(dest, timeout).await?, outgoing),
                    };
                    let resp = sender
                        .send_request(outgoing)
                        .await
                        .map_err(|e| format!("the upstream did not answer: {e}"))?;
                    self.upstreams.keep(key, sender);
                    Ok(resp)
                }
            }
        };
        // Sending runs in its own allocation: the future that holds a request for its
        // approval does not carry the upstream exchange's state as well.
        let failed = match tokio::time::timeout_at(deadline, Box::pin(sent)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(message)) => Err((StatusCode::BAD_GATEWAY, "upstream_failed", message)),
            Err(_) => Err((
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "the upstream did not answer within the time limit of {} ms",
                    timeout.as_millis()
                ),
            )),
        };
        let resp = match failed {
            Ok(r) => r,
            Err((status, code, message)) => {
                forward::fail(permit, message.clone());
                return proxy_error(status, code, message);
            }
        };
        let (mut head, body) = resp.into_parts();
        strip_hop_by_hop(&mut head.headers);
        let body: ResponseBody = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
        let (metered, report) = MeteredBody::new(
            body,
            BodyLimits {
                max_bytes,
                deadline: Some(deadline),
                keep_bytes: self.keep_bytes,
            },
        );
        forward::finish_when_done(permit, head.status.as_u16(), report);
        Response::from_parts(head, metered.boxed())
    }

    /// A new HTTP/1.1 connection to an address policy judged.
    async fn connect_direct(
        &self,
        dest: &Resolved,
        timeout: Duration,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
        let stream = destination::connect(dest, self.connect_timeout.min(timeout))
            .await
            .map_err(|e| e.to_string())?;
        http1_sender(stream).await
    }

    /// The verdict's time limit (or the configured one) and its size limit.
    fn limits(&self, d: &Decision) -> (Duration, Option<u64>) {
        let limits = d.upstream_limits();
        (
            limits.timeout.unwrap_or(self.upstream_timeout),
            limits.max_response_bytes,
        )
    }
}

/// An HTTP/1.1 client connection over `io` (a judged TCP stream, or TLS on one), its
/// connection task running in the background.
pub async fn http1_sender<IO>(
    io: IO,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake with the upstream failed: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "egress upstream connection ended");
        }
    });
    Ok(sender)
}

/// `host:port` of a CONNECT request (authority form; the port is required).
fn connect_target(uri: &Uri) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    let port = authority.port_u16()?;
    let host = authority.host();
    (!host.is_empty()).then(|| (host.to_string(), port))
}

fn destination(dest: &Resolved) -> Destination {
    Destination {
        host: dest.host.clone(),
        port: dest.port,
        ips: dest.policy_ips(),
        host_from: dest.host_from.map(str::to_string),
        host_resolves: dest.host_resolves,
    }
}

/// The `http` part of an action: what policy reads about one request.
pub fn describe_request(
    method: &Method,
    scheme: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    dest: &Resolved,
) -> HttpRequest {
    let mut shown = serde_json::Map::new();
    for name in headers.keys() {
        if is_hop_by_hop(name) {
            continue;
        }
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        shown.insert(name.as_str().to_string(), Value::String(joined));
    }
    let parsed = if is_json(headers) && !body.is_empty() {
        serde_json::from_slice::<Value>(body).ok()
    } else {
        None
    };
    HttpRequest {
        method: method.as_str().to_string(),
        scheme: scheme.to_string(),
        // The host clawgate connects to; [`names_only`] refused requests naming another.
        host: dest.host.clone(),
        port: dest.port,
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: shown,
        body: parsed,
        body_sha256: (!body.is_empty()).then(|| hex::encode(Sha256::digest(body))),
    }
}

/// Whether a request says its body is JSON (`application/json`, `…+json`, …).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

/// Why a request names a host other than the one clawgate sends it to.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("more than one Host header field; send exactly one")]
    Duplicate,
    #[error("the request has no Host header field; HTTP/1.1 requests name their host")]
    Missing,
    #[error("the Host header field {0:?} is not host[:port]")]
    Malformed(String),
    #[error(
        "the request URL carries userinfo ({0:?}); send credentials in a header, never before the host"
    )]
    Userinfo(String),
    #[error(
        "the request names {named:?} but goes to {host}:{port}; a request is judged as the host it is sent to, so the two must agree"
    )]
    Mismatch {
        named: String,
        host: String,
        port: u16,
    },
}

impl HostError {
    fn code(&self) -> &'static str {
        match self {
            HostError::Duplicate => "duplicate_host",
            HostError::Missing => "missing_host",
            HostError::Malformed(_) => "bad_host",
            HostError::Userinfo(_) => "userinfo_in_url",
            HostError::Mismatch { .. } => "host_mismatch",
        }
    }

    /// 400 with the reason: the request reaches nobody and is not decided.
    pub(crate) fn into_response(self) -> Response<ResponseBody> {
        proxy_error(StatusCode::BAD_REQUEST, self.code(), self.to_string())
    }
}

/// Check that a request names only the destination `host:port` it is sent to over `scheme`:
/// the URL's authority (absolute form) and the one Host field must both denote it (host
/// compared case-insensitively without a trailing dot; a missing port is the scheme's
/// default). A request without an authority in its URL (inside a tunnel) needs a Host field.
/// Userinfo in either is refused: it is how a URL hides its real host from a reader.
pub fn names_only(
    uri: &Uri,
    headers: &HeaderMap,
    scheme: &str,
    host: &str,
    port: u16,
) -> Result<(), HostError> {
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host = destination::normalize_host(host);
    let names_it = |a: &http::uri::Authority| {
        destination::normalize_host(a.host()) == host
            && a.port_u16().unwrap_or(default_port) == port
    };
    let mismatch = |named: &str| HostError::Mismatch {
        named: named.to_string(),
        host: host.clone(),
        port,
    };
    if let Some(authority) = uri.authority() {
        if authority.as_str().contains('@') {
            return Err(HostError::Userinfo(authority.as_str().to_string()));
        }
        if uri.scheme_str() != Some(scheme) || !names_it(authority) {
            let named = format!("{}://{authority}", uri.scheme_str().unwrap_or(""));
            return Err(mismatch(&named));
        }
    }
    let mut fields = headers.get_all(header::HOST).iter();
    let field = match (fields.next(), fields.next()) {
        (Some(_), Some(_)) => return Err(HostError::Duplicate),
        (None, _) if uri.authority().is_some() => return Ok(()),
        (None, _) => return Err(HostError::Missing),
        (Some(field), None) => field,
    };
    let text = String::from_utf8_lossy(field.as_bytes()).into_owned();
    let authority = text
        .parse::<http::uri::Authority>()
        .ok()
        .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
        .ok_or_else(|| HostError::Malformed(text.clone()))?;
    if names_it(&authority) {
        Ok(())
    } else {
        Err(mismatch(&text))
    }
}

/// The request as the upstream gets it: origin-form target, end-to-end headers only.
pub fn upstream_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = Request::builder()
        .method(method.clone())
        .uri(target)
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the upstream request: {e}"))?;
    let h = out.headers_mut();
    for (name, value) in headers {
        if !is_hop_by_hop(name) {
            h.append(name, value.clone());
        }
    }
    // Absolute form: the Host field is made from the URL (RFC 9112 §3.2.2), so the upstream
    // reads the authority that was judged, in the spelling that was judged.
    if let Some(authority) = uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        h.insert(header::HOST, v);
    }
    Ok(out)
}

/// Headers that belong to one hop (RFC 9110 §7.6.1) plus the proxy's own credentials: never
/// forwarded, never part of the action.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "proxy-connection"
            | "keep-alive"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Names listed in Connection are hop-by-hop too.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    let fixed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for n in fixed {
        headers.remove(n);
    }
}

/// Who is behind the proxy request. OpenClaw's proxy routing sends no agent headers, so the
/// authenticated identity (`Proxy-Authorization`, or the client certificate) names the agent;
/// without identities the agent stays unnamed.
pub(crate) fn agent_identity(auth: &Authenticated) -> AgentIdentity {
    let mut agent = AgentIdentity {
        id: auth.name().map(str::to_string),
        ..AgentIdentity::default()
    };
    auth.apply_to(&mut agent);
    agent
}

/// 403 for a denied or still-pending action, with everything an operator needs in the body.
pub fn refusal(d: &Decision) -> Response<ResponseBody> {
    let (code, message) = match (d.outcome, &d.approval_id) {
        (Outcome::Pending, Some(id)) => (
            "approval_pending",
            format!(
                "clawgate is holding this request for approval {id} (expires {}); it was not sent. Retry the identical request once approved.",
                d.approval_expires_at.as_deref().unwrap_or("?")
            ),
        ),
        _ => (
            "denied_by_policy",
            format!(
                "clawgate denied this request (decision {}); it was not sent.",
                d.id
            ),
        ),
    };
    let mut body = json!({
        "error": {"code": code, "message": message},
        "decision": d.outcome,
        "decision_id": d.id,
        "risk": d.risk,
        "reasons": d.reasons,
        "policy_revision": d.policy_revision,
    });
    if let Some(id) = &d.approval_id {
        body["approval_id"] = json!(id);
        body["approval_expires_at"] = json!(d.approval_expires_at);
    }
    let mut resp = json_response(StatusCode::FORBIDDEN, &body);
    if let Ok(v) = HeaderValue::from_str(&d.id) {
        resp.headers_mut().insert("x-clawgate-decision-id", v);
    }
    resp
}

/// An error of the proxy itself (not a policy decision): `{"error": {"code", "message"}}`.
fn proxy_error(status: StatusCode, code: &'static str, message: String) -> Response<ResponseBody> {
    crate::http_api::ApiError::new(status, code, message).into_response()
}

fn destination_error(e: DestinationError) -> Response<ResponseBody> {
    proxy_error(
        StatusCode::BAD_GATEWAY,
        "unresolvable_destination",
        e.to_string(),
    )
}

fn empty_body() -> ResponseBody {
    crate::http_api::full_body(Bytes::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_fields(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn requests_name_only_their_destination() {
        let (origin, abs) = ("/x", "http://a.test:8080/x");
        let (ok, bad) = (Ok(()), Err("host_mismatch"));
        // (request target, Host fields, scheme, destination host, port, expected)
        type Case = (
            &'static str,
            &'static [&'static str],
            &'static str,
            &'static str,
            u16,
            Result<(), &'static str>,
        );
        let cases: &[Case] = &[
            // The same host in other spellings, default ports, IPv6 literals.
            (origin, &["A.Test."], "https", "a.test", 443, ok),
            (origin, &["a.test:443"], "https", "a.test", 443, ok),
            (origin, &["[::1]:8443"], "https", "::1", 8443, ok),
            (abs, &[], "http", "a.test", 8080, ok),
            // Another host, another port, a missing port that is not the default.
            (origin, &["b.test"], "https", "a.test", 443, bad),
            (origin, &["a.test:444"], "https", "a.test", 443, bad),
            (origin, &["a.test"], "https", "a.test", 8443, bad),
            (abs, &["a.test"], "http", "a.test", 8080, bad),
            // An absolute URL inside a tunnel names the tunnel's target and scheme.
            (abs, &[], "https", "a.test", 8080, bad),
            (
                "http://b.test@a.test/",
                &[],
                "http",
                "a.test",
                80,
                Err("userinfo_in_url"),
            ),
            (origin, &[], "https", "a.test", 443, Err("missing_host")),
            (
                origin,
                &["a.test", "a.test"],
                "https",
                "a.test",
                443,
                Err("duplicate_host"),
            ),
            (origin, &[""], "https", "a.test", 443, Err("bad_host")),
            (
                origin,
                &["b@a.test"],
                "https",
                "a.test",
                443,
                Err("bad_host"),
            ),
            (origin, &["a b"], "https", "a.test", 443, Err("bad_host")),
            (origin, &["a:b:c"], "https", "a.test", 443, Err("bad_host")),
            (origin, &[":443"], "https", "a.test", 443, Err("bad_host")),
        ];
        for (target, hosts, scheme, host, port, expected) in cases {
            let uri: Uri = target.parse().unwrap();
            let got =
                names_only(&uri, &host_fields(hosts), scheme, host, *port).map_err(|e| e.code());
            assert_eq!(got, *expected, "{target} {hosts:?} to {host}:{port}");
        }
    }

    #[test]
    fn hop_by_hop_and_proxy_credentials_never_leave() {
        let mut h = HeaderMap::new();
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("authorization"));
    }
}
