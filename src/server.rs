//! `clawgate serve`: builds the gate from config, binds the listeners and serves them until
//! shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
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
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::admin::auth::AdminToken;
use crate::audit::redact::Redactor;
use crate::audit::{AuditError, AuditEvent, AuditLog, AuditOptions};
use crate::config::{Config, Listener};
use crate::gate::Gate;
use crate::gate::approval::notify::NotifyError;
use crate::gate::approval::signature::WebhookSecret;
use crate::gate::approval::{ApprovalSettings, Approvals, Notifier};
use crate::gate::policy::watch::{ReloadOutcome, ReloadTrigger, reload, watch_dir};
use crate::gate::policy::{PolicyEngine, PolicyError};
use crate::http_api::{ApiError, ResponseBody};
use crate::identity::{CredentialHeader, Identities, PeerInfo};
use crate::intercept::egress::EgressProxy;
use crate::intercept::mcp::McpGateway;
use crate::metrics::Metrics;
use crate::{admin, intercept};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for the {listener} listener: {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("egress proxy: {0}")]
    Egress(#[from] crate::intercept::egress::EgressSetupError),
    #[error("TLS for the {listener} listener: {source}")]
    Tls {
        listener: &'static str,
        source: crate::tls::TlsError,
    },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("invalid redaction rules: {0}")]
    Redact(#[from] crate::audit::redact::RedactError),
    #[error(transparent)]
    Approval(#[from] crate::gate::approval::ApprovalError),
    #[error(transparent)]
    AdminToken(#[from] crate::admin::auth::AdminTokenError),
    #[error(transparent)]
    Identity(#[from] crate::identity::BadIdentityHash),
    #[error(transparent)]
    Mcp(#[from] crate::intercept::mcp::McpSetupError),
    #[error("approval notifications: {0}")]
    Notify(#[from] NotifyError),
    #[error("notify.webhook.secret: {0}")]
    WebhookSecret(crate::gate::approval::signature::SignatureError),
    #[error("cannot watch policy directory {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// Everything a request handler may need.
pub struct AppState {
    pub gate: Arc<Gate>,
    pub config: Arc<Config>,
    pub admin_token: AdminToken,
    /// Verifies signed generic approval callbacks (`notify.webhook.secret`).
    pub webhook_secret: Option<WebhookSecret>,
    pub mcp: McpGateway,
    pub egress: Arc<EgressProxy>,
    /// Each listener's name and whether its accept loop is running (readiness).
    pub listeners: Vec<(&'static str, Arc<AtomicBool>)>,
    /// The agent identities every agent-listener request authenticates against.
    pub identities: Identities,
}

impl AppState {
    pub fn audit(&self) -> &Arc<AuditLog> {
        self.gate.audit()
    }

    pub fn data_dir_writable(&self) -> bool {
        let probe = self.config.data_dir.join(".ready-probe");
        let ok = std::fs::write(&probe, b"ok").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    }

    fn listener_flag(&self, name: &str) -> Arc<AtomicBool> {
        let found = self.listeners.iter().find(|(n, _)| *n == name);
        found.map(|(_, up)| up.clone()).unwrap_or_default()
    }
}

/// A running sidecar: its bound addresses and the handle that stops it.
pub struct Running {
    pub agent_addr: SocketAddr,
    pub egress_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Running {
    /// Stop accepting, let in-flight requests finish (up to `grace`), record the shutdown,
    /// sign a final checkpoint and close the audit log.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        self.state.gate.approvals().stop_holding();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("in-flight requests did not finish within the grace period");
            self.tasks.abort_all();
        }
        let audit = self.state.audit();
        if let Err(e) = audit
            .append(AuditEvent::new(
                "lifecycle",
                serde_json::json!({"event": "shutdown", "version": env!("CARGO_PKG_VERSION")}),
            ))
            .await
        {
            tracing::error!(error = %e, "could not record the shutdown");
        }
        audit.close().await;
    }
}

/// Build the gate and start every listener.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let metrics = Arc::new(Metrics::new());
    let audit = Arc::new(open_audit(&config, metrics.clone()).await?);
    let budget = Duration::from_millis(config.policy.eval_timeout_ms);
    let policy = match PolicyEngine::load(config.policy.dir.as_deref(), budget) {
        Ok(p) => Arc::new(p.with_decision_cache(config.policy.decision_cache_entries)),
        Err(e) => {
            let source = config.policy.dir.as_ref().map(|d| d.display().to_string());
            let _ = audit
                .append(AuditEvent::new(
                    "policy",
                    serde_json::json!({"event": "rejected", "source": source.unwrap_or_else(|| "embedded".into()), "error": e.to_string()}),
                ))
                .await;
            metrics.policy_load("rejected");
            audit.close().await;
            return Err(e.into());
        }
    };
    metrics.policy_load("loaded");
    let bundle = policy.bundle();
    tracing::info!(
        revision = %bundle.revision,
        source = %bundle.source,
        files = bundle.file_count,
        "policy bundle loaded"
    );
    audit
        .append(AuditEvent::new(
            "policy",
            serde_json::json!({"event": "loaded", "revision": bundle.revision, "source": bundle.source.to_string()}),
        ))
        .await?;
    let watcher = match (&config.policy.dir, config.policy.watch) {
        (Some(dir), true) => {
            let audit = audit.clone();
            let on_reload = move |trigger, outcome| record_reload(&audit, trigger, outcome);
            Some(
                watch_dir(policy.clone(), dir, Duration::from_millis(200), on_reload).map_err(
                    |source| ServeError::Watch {
                        path: dir.clone(),
                        source,
                    },
                )?,
            )
        }
        _ => None,
    };
    // Bind before building the approval service: its callback links need the real admin
    // address when port 0 was asked for.
    let agent = bind("agent", &config.listeners.agent).await?;
    let egress = bind("egress", &config.listeners.egress).await?;
    let admin = bind("admin", &config.listeners.admin).await?;
    let agent_addr = local_addr("agent", &agent.tcp)?;
    let egress_addr = local_addr("egress", &egress.tcp)?;
    let admin_addr = local_addr("admin", &admin.tcp)?;
    let admin_token = AdminToken::load(
        config.admin.token_sha256.as_deref(),
        &config.admin_token_path(),
    )?;
    let webhook_secret = config
        .notify
        .webhook
        .secret
        .as_deref()
        .map(WebhookSecret::parse)
        .transpose()
        .map_err(ServeError::WebhookSecret)?;
    if config.approval.groups.is_empty() {
        // Verdicts name approvers mostly as groups; with none configured only approvers named
        // by id can answer, and everything else waits until it expires (fail closed).
        tracing::warn!(
            "no [approval.groups] configured: approvals that name group:NAME approvers can only expire"
        );
    }
    let approvals = Arc::new(
        Approvals::open(
            &config.approvals_path(),
            ApprovalSettings::from(&config.approval),
            audit.clone(),
            Notifier::new(
                &config.notify,
                audit.clone(),
                admin_public_url(&config, admin_addr),
            )?,
        )
        .await?,
    );
    let gate = Arc::new(
        Gate::new(
            policy,
            config.mode,
            config.environment.clone(),
            audit.clone(),
            approvals.clone(),
        )
        .with_facts(facts_context(&config), &identity_homes(&config)),
    );
    audit
        .append(AuditEvent::new(
            "lifecycle",
            serde_json::json!({"event": "startup", "version": env!("CARGO_PKG_VERSION"),
                "mode": config.mode, "environment": config.environment}),
        ))
        .await?;
    let mcp = McpGateway::new(&config)?;
    let egress_proxy = Arc::new(EgressProxy::new(&config, gate.clone())?);
    let identities = Identities::new(&config.identities)?;
    if identities.is_empty() {
        tracing::info!("no [identities] configured: the agent listener serves loopback peers only");
    }
    let state = Arc::new(AppState {
        gate,
        config: Arc::new(config),
        admin_token,
        webhook_secret,
        mcp,
        egress: egress_proxy,
        listeners: vec![
            ("agent", Arc::default()),
            ("egress", Arc::default()),
            ("admin", Arc::default()),
        ],
        identities,
    });

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let expiry = approvals.spawn_expiry(Duration::from_millis(500), shutdown_rx.clone());
    tasks.spawn(async move {
        let _ = expiry.await;
    });
    let s = state.clone();
    let up = state.listener_flag("agent");
    tasks.spawn(serve_listener(agent, shutdown_rx.clone(), up, move |req| {
        let s = s.clone();
        async move { agent_route(&s, req).await }
    }));
    let s = state.clone();
    let up = state.listener_flag("egress");
    tasks.spawn(serve_listener(
        egress,
        shutdown_rx.clone(),
        up,
        move |req| {
            let s = s.clone();
            async move { egress_route(&s, req).await }
        },
    ));
    let s = state.clone();
    let up = state.listener_flag("admin");
    tasks.spawn(serve_listener(admin, shutdown_rx, up, move |req| {
        let s = s.clone();
        async move { admin::route(&s, req).await }
    }));
    tracing::info!(agent = %agent_addr, egress = %egress_addr, admin = %admin_addr, mode = state.gate.mode().as_str(),
        environment = state.gate.environment(), "clawgate listening");
    Ok(Running {
        agent_addr,
        egress_addr,
        admin_addr,
        state,
        shutdown,
        tasks,
        _watcher: watcher,
    })
}

/// Serve until SIGINT or SIGTERM; reload policy on SIGHUP.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let running = start(config).await?;
    let policy = running.state.gate.policy().clone();
    let mut hup = signal(tokio::signal::unix::SignalKind::hangup());
    let mut term = signal(tokio::signal::unix::SignalKind::terminate());
    loop {
        tokio::select! {
            _ = recv(&mut hup) => {
                let policy = policy.clone();
                let outcome = tokio::task::spawn_blocking(move || reload(&policy, ReloadTrigger::Signal)).await;
                if let Ok(outcome) = outcome {
                    record_reload(running.state.audit(), ReloadTrigger::Signal, outcome);
                }
            }
            _ = recv(&mut term) => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let grace = Duration::from_secs(running.state.config.limits.shutdown_grace_s);
    tracing::info!(grace_s = grace.as_secs(), "shutting down");
    running.shutdown(grace).await;
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind)
        .inspect_err(|e| tracing::warn!(error = %e, "cannot install signal handler"))
        .ok()
}

async fn recv(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The base URL approvers' systems use to reach the admin listener.
fn admin_public_url(config: &Config, bound: SocketAddr) -> String {
    match &config.admin.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None if config.listeners.admin.tls.is_some() => format!("https://{bound}"),
        None => format!("http://{bound}"),
    }
}

/// Open the audit log as configured.
/// The facts stage's view of this sidecar: the agent's home and workspace, and clawgate's own
/// files and admin port, which policy keeps the agent away from.
pub fn facts_context(config: &Config) -> crate::facts::FactsContext {
    let absolute = |p: &std::path::Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .to_string_lossy()
            .into_owned()
    };
    let mut paths = vec![absolute(&config.data_dir)];
    if let Some(dir) = &config.policy.dir {
        paths.push(absolute(dir));
    }
    config
        .facts
        .context(paths, vec![config.listeners.admin.addr.port()])
}

fn identity_homes(config: &Config) -> Vec<(String, String)> {
    config
        .identities
        .iter()
        .filter_map(|(name, i)| i.home.clone().map(|h| (name.clone(), h)))
        .collect()
}

pub async fn open_audit(config: &Config, metrics: Arc<Metrics>) -> Result<AuditLog, ServeError> {
    let redact = &config.audit.redact;
    let patterns: Vec<(String, String)> = redact
        .patterns
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let redactor = Redactor::new(&redact.keys, &redact.paths, &patterns)?;
    let opts = AuditOptions {
        path: config.audit_path(),
        key_path: config.audit_key_path(),
        checkpoint_every: config.audit.checkpoint_every,
        checkpoint_interval: Duration::from_secs(config.audit.checkpoint_interval_s),
        max_batch: config.audit.max_batch,
        metrics,
    };
    Ok(AuditLog::open(opts, redactor).await?)
}

/// Record a policy reload outcome in the audit log (in the background: it gates nothing).
/// An unchanged bundle is not recorded for file and signal triggers.
fn record_reload(audit: &Arc<AuditLog>, trigger: ReloadTrigger, outcome: ReloadOutcome) {
    audit.metrics().policy_load(outcome.as_str());
    if outcome == ReloadOutcome::Unchanged {
        return;
    }
    let event = reload_event(trigger, &outcome, "");
    let audit = audit.clone();
    tokio::spawn(async move {
        if let Err(e) = audit.append(event).await {
            tracing::error!(error = %e, "could not record the policy reload");
        }
    });
}

/// The audit entry for a policy reload attempt (`serving`: the revision serving now, for
/// an unchanged bundle).
pub fn reload_event(trigger: ReloadTrigger, outcome: &ReloadOutcome, serving: &str) -> AuditEvent {
    let fields = match outcome {
        ReloadOutcome::Unchanged => serde_json::json!({
            "event": "unchanged", "trigger": trigger.as_str(), "revision": serving}),
        ReloadOutcome::Swapped { revision } => serde_json::json!({
            "event": "reloaded", "trigger": trigger.as_str(), "revision": revision}),
        ReloadOutcome::Rejected { error, serving } => serde_json::json!({
            "event": "rejected", "trigger": trigger.as_str(), "error": error, "revision": serving}),
    };
    AuditEvent::new("policy", fields)
}

async fn agent_route(state: &AppState, req: Request<Incoming>) -> Response<ResponseBody> {
    // Who is asking comes first: nothing is parsed or decided for an unauthenticated peer.
    let auth = match state
        .identities
        .authenticate_request(&req, CredentialHeader::Authorization)
    {
        Ok(auth) => auth,
        Err(e) => {
            tracing::info!(path = req.uri().path(), reason = %e, "agent request refused");
            return e.into_response(CredentialHeader::Authorization);
        }
    };
    let max_body = state.config.limits.max_body_bytes;
    let gate = &state.gate;
    match req.uri().path() {
        "/v1/check" => intercept::check_api::handle(gate, &auth, req, max_body).await,
        "/v1/results" => intercept::check_api::handle_result(gate, &auth, req, max_body).await,
        "/v1/mcp/visible-tools" => {
            intercept::check_api::handle_visible_tools(gate, &auth, req, max_body).await
        }
        path if path.starts_with("/v1/approvals/") => {
            intercept::check_api::handle_wait(gate, &auth, req).await
        }
        path if path.starts_with("/mcp/") => {
            let hold = Duration::from_secs(state.config.approval.hold_s);
            intercept::mcp::handle(&state.mcp, gate, &auth, hold, req).await
        }
        path => ApiError::not_found(path).into_response(),
    }
}

async fn egress_route(state: &AppState, req: Request<Incoming>) -> Response<ResponseBody> {
    match state
        .identities
        .authenticate_request(&req, CredentialHeader::ProxyAuthorization)
    {
        Ok(auth) => state.egress.handle(&auth, req).await,
        Err(e) => {
            tracing::info!(target_uri = %req.uri(), reason = %e, "egress request refused");
            e.into_response(CredentialHeader::ProxyAuthorization)
        }
    }
}

/// A bound listener: TCP, and TLS on top when configured.
struct Acceptor {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn bind(name: &'static str, listener: &Listener) -> Result<Acceptor, ServeError> {
    // Load certificates before binding, so a bad file is reported before the port is taken.
    let tls = match &listener.tls {
        Some(tls) => Some(TlsAcceptor::from(
            crate::tls::listener::server_config(tls).map_err(|source| ServeError::Tls {
                listener: name,
                source,
            })?,
        )),
        None => None,
    };
    let addr = listener.addr;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            listener: name,
            addr,
            source,
        })?;
    Ok(Acceptor { tcp, tls })
}

fn local_addr(listener: &'static str, l: &TcpListener) -> Result<SocketAddr, ServeError> {
    l.local_addr().map_err(|source| ServeError::Bind {
        listener,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Accept connections (TLS when configured) and serve HTTP/1.1 and HTTP/2 on them until
/// shutdown, then drain. Every request carries the connection's `PeerInfo` as an extension.
async fn serve_listener<F, Fut>(
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
