//! `clawgate serve`: builds the gate from config, binds the listeners and serves them until
//! shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
use crate::identity::PeerInfo;
use crate::intercept::mcp::McpGateway;
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
}

/// A running sidecar: its bound addresses and the handle that stops it.
pub struct Running {
    pub agent_addr: SocketAddr,
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
    let audit = Arc::new(open_audit(&config).await?);
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
            audit.close().await;
            return Err(e.into());
        }
    };
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
    let admin = bind("admin", &config.listeners.admin).await?;
    let agent_addr = local_addr("agent", &agent.tcp)?;
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
    let gate = Arc::new(Gate::new(
        policy,
        config.mode,
        config.environment.clone(),
        audit.clone(),
        approvals.clone(),
    ));
    audit
        .append(AuditEvent::new(
            "lifecycle",
            serde_json::json!({"event": "startup", "version": env!("CARGO_PKG_VERSION"),
                "mode": config.mode, "environment": config.environment}),
        ))
        .await?;
    let mcp = McpGateway::new(&config)?;
    let state = Arc::new(AppState {
        gate,
        config: Arc::new(config),
        admin_token,
        webhook_secret,
        mcp,
    });

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let expiry = approvals.spawn_expiry(Duration::from_millis(500), shutdown_rx.clone());
    tasks.spawn(async move {
        let _ = expiry.await;
    });
    let s = state.clone();
    tasks.spawn(serve_listener(agent, shutdown_rx.clone(), move |req| {
        let s = s.clone();
        async move { agent_route(&s, req).await }
    }));
    let s = state.clone();
    tasks.spawn(serve_listener(admin, shutdown_rx, move |req| {
        let s = s.clone();
        async move { admin::route(&s, req).await }
    }));
    tracing::info!(agent = %agent_addr, admin = %admin_addr, mode = state.gate.mode().as_str(),
        environment = state.gate.environment(), "clawgate listening");
    Ok(Running {
        agent_addr,
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
    tracing::info!("shutting down");
    running.shutdown(Duration::from_secs(10)).await;
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
pub async fn open_audit(config: &Config) -> Result<AuditLog, ServeError> {
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
    };
    Ok(AuditLog::open(opts, redactor).await?)
}

/// Record a policy reload outcome in the audit log (in the background: it gates nothing).
fn record_reload(audit: &Arc<AuditLog>, trigger: ReloadTrigger, outcome: ReloadOutcome) {
    let fields = match outcome {
        ReloadOutcome::Unchanged => return,
        ReloadOutcome::Swapped { revision } => serde_json::json!({
            "event": "reloaded", "trigger": trigger.as_str(), "revision": revision}),
        ReloadOutcome::Rejected { error, serving } => serde_json::json!({
            "event": "rejected", "trigger": trigger.as_str(), "error": error, "revision": serving}),
    };
    let audit = audit.clone();
    tokio::spawn(async move {
        if let Err(e) = audit.append(AuditEvent::new("policy", fields)).await {
            tracing::error!(error = %e, "could not record the policy reload");
        }
    });
}

async fn agent_route(state: &AppState, req: Request<Incoming>) -> Response<ResponseBody> {
    let max_body = state.config.limits.max_body_bytes;
    match req.uri().path() {
        "/v1/check" => intercept::check_api::handle(&state.gate, req, max_body).await,
        "/v1/results" => intercept::check_api::handle_result(&state.gate, req, max_body).await,
        "/v1/mcp/visible-tools" => {
            intercept::check_api::handle_visible_tools(&state.gate, req, max_body).await
        }
        path if path.starts_with("/v1/approvals/") => {
            intercept::check_api::handle_wait(&state.gate, req).await
        }
        path if path.starts_with("/mcp/") => {
            let hold = Duration::from_secs(state.config.approval.hold_s);
            intercept::mcp::handle(&state.mcp, &state.gate, hold, req).await
        }
        path => ApiError::not_found(path).into_response(),
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
async fn serve_listener<F, Fut>(listener: Acceptor, mut shutdown: watch::Receiver<bool>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
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
        .watch(builder.serve_connection(io, service).into_owned())
        .await
}
