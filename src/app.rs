//! The composition root: builds the running sidecar from its config (audit log, policy,
//! approvals, the gate, the front doors, the admin state), hands each listener its routes
//! (`listen.rs` binds and accepts), and runs until a signal stops it. Nothing imports this
//! module but the CLI and the tests. See `docs/architecture.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::refusals::AnonymousRefusals;
use crate::admin::{self, AdminState, auth::AdminToken};
use crate::approvers::webhook::WebhookSecret;
use crate::approvers::{Notifier, NotifyError};
use crate::audit::redact::Redactor;
use crate::audit::{AuditError, AuditLog, AuditOptions, events};
use crate::config::Config;
use crate::gate::Gate;
use crate::gate::approval::{ApprovalSettings, Approvals};
use crate::gate::policy::pool::EvalPool;
use crate::gate::policy::watch::{ReloadTrigger, watch_dir};
use crate::gate::policy::{PolicyEngine, PolicyError};
use crate::identity::Identities;
use crate::intercept::egress::EgressProxy;
use crate::intercept::mcp::McpGateway;
use crate::intercept::routes::{AgentRoutes, EgressRoutes};
use crate::listen::{self, ListenError};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot start the policy evaluation threads: {0}")]
    EvalThreads(#[source] std::io::Error),
    #[error("egress proxy: {0}")]
    Egress(#[from] crate::intercept::egress::EgressSetupError),
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
    WebhookSecret(#[source] crate::approvers::SignatureError),
    #[error("transparent listener: {0}")]
    Transparent(String),
    #[error("cannot watch policy directory {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// A running sidecar: its bound addresses, what it was built from, and the handle that stops
/// it.
pub struct Running {
    pub agent_addr: SocketAddr,
    pub egress_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The transparent listener's bound addresses and the DNS forwarder's (empty when off).
    pub transparent_addrs: Vec<SocketAddr>,
    pub dns_addrs: Vec<SocketAddr>,
    pub gate: Arc<Gate>,
    pub config: Arc<Config>,
    audit: Arc<AuditLog>,
    approvals: Arc<Approvals>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    refusals: Arc<AnonymousRefusals>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Running {
    /// The sidecar's audit log.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// Stop accepting, let in-flight requests finish (up to `grace`), record the shutdown,
    /// sign a final checkpoint and close the audit log.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        self.approvals.stop_holding();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("in-flight requests did not finish within the grace period");
            self.tasks.abort_all();
        }
        self.refusals.close_window().await;
        if let Err(e) = self.audit.append(events::shutdown()).await {
            tracing::error!(error = %e, "could not record the shutdown");
        }
        self.audit.close().await;
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
        Ok(p) => {
            let pool = EvalPool::per_core().map_err(ServeError::EvalThreads)?;
            Arc::new(
                p.with_decision_cache(config.policy.decision_cache_entries)
                    .with_pool(pool),
            )
        }
        Err(e) => {
            let source = config.policy.dir.as_ref().map(|d| d.display().to_string());
            let source = source.unwrap_or_else(|| "embedded".into());
            let _ = audit
                .append(events::policy_rejected_at_start(&source, &e.to_string()))
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
        .append(events::policy_loaded(
            &bundle.revision,
            &bundle.source.to_string(),
        ))
        .await?;
    // Bind before building the approval service: its callback links need the real admin
    // address when port 0 was asked for.
    let agent = listen::bind("agent", &config.listeners.agent).await?;
    let egress = listen::bind("egress", &config.listeners.egress).await?;
    let admin = listen::bind("admin", &config.listeners.admin).await?;
    let agent_addr = agent.local_addr("agent")?;
    let egress_addr = egress.local_addr("egress")?;
    let admin_addr = admin.local_addr("admin")?;
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
            local_operator = %config.approval.local_operator,
            "no [approval.groups] configured: only the local operator holding the admin token can answer approvals, \
             from this host (`clawgate approvals list`, `clawgate approvals approve ID`, `clawgate approvals deny ID --reason ...`); \
             to add real approvers, list their ids in [approval.groups] (e.g. operators = [\"U0123ABCD\"]) and connect \
             Slack (notify.slack) or a signed webhook (notify.webhook); see docs/approvals.md"
        );
    }
    let approvals = Arc::new(
        Approvals::open(
            &config.approvals_path(),
            ApprovalSettings::from(&config.approval).with_people(&config.people),
            audit.clone(),
            Arc::new(Notifier::new(
                &config.notify,
                audit.clone(),
                metrics.clone(),
                admin_public_url(&config, admin_addr),
            )?),
            metrics.clone(),
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
            metrics.clone(),
        )
        .with_facts(facts_context(&config), &identity_homes(&config)),
    );
    let watcher = match (&config.policy.dir, config.policy.watch) {
        (Some(dir), true) => {
            let gate = gate.clone();
            let on_change = move || {
                let gate = gate.clone();
                async move { reload(&gate, ReloadTrigger::FileChange).await }
            };
            Some(
                watch_dir(dir, Duration::from_millis(200), on_change).map_err(|source| {
                    ServeError::Watch {
                        path: dir.clone(),
                        source,
                    }
                })?,
            )
        }
        _ => None,
    };
    audit
        .append(events::startup(config.mode.as_str(), &config.environment))
        .await?;
    let identities = Arc::new(Identities::new(&config.identities)?);
    if identities.is_empty() {
        tracing::info!("no [identities] configured: the agent listener serves loopback peers only");
    }
    let agent_routes = Arc::new(AgentRoutes {
        gate: gate.clone(),
        identities: identities.clone(),
        mcp: McpGateway::new(&config)?,
        max_body: config.limits.max_body_bytes,
        hold: Duration::from_secs(config.approval.hold_s),
    });
    let proxy = Arc::new(EgressProxy::new(&config, gate.clone())?);
    let egress_routes = Arc::new(EgressRoutes {
        identities: identities.clone(),
        proxy: proxy.clone(),
    });
    let up = [
        ("agent", Arc::default()),
        ("egress", Arc::default()),
        ("admin", Arc::default()),
    ];
    let refusals = Arc::new(AnonymousRefusals::new(audit.clone(), metrics.clone()));
    let admin_state = Arc::new(AdminState {
        gate: gate.clone(),
        admin_token,
        webhook_secret,
        slack_signing_secret: config.notify.slack.signing_secret.clone(),
        max_body: config.limits.max_body_bytes,
        data_dir: config.data_dir.clone(),
        listeners: up.to_vec(),
        refusals: refusals.clone(),
        approver_tokens: approver_tokens(&config),
        approver_webhook_secrets: approver_webhook_secrets(&config),
        metrics,
    });
    let [(_, agent_up), (_, egress_up), (_, admin_up)] = up;

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let expiry = approvals.spawn_expiry(Duration::from_millis(500), shutdown_rx.clone());
    tasks.spawn(async move {
        let _ = expiry.await;
    });
    tasks.spawn(refusals.clone().run(
        Duration::from_secs(config.admin.anonymous_window_s),
        shutdown_rx.clone(),
    ));
    let rx = shutdown_rx.clone();
    tasks.spawn(listen::serve(agent, rx, agent_up, move |req| {
        agent_routes.route(req)
    }));
    let rx = shutdown_rx.clone();
    tasks.spawn(listen::serve(egress, rx, egress_up, move |req| {
        let routes = egress_routes.clone();
        async move { routes.route(req).await }
    }));
    let (transparent_addrs, dns_addrs) = start_transparent(
        &config,
        &gate,
        &proxy,
        &identities,
        &mut tasks,
        &shutdown_rx,
    )
    .await?;
    tasks.spawn(listen::serve(admin, shutdown_rx, admin_up, move |req| {
        let state = admin_state.clone();
        async move { admin::route(&state, req).await }
    }));
    tracing::info!(agent = %agent_addr, egress = %egress_addr, admin = %admin_addr, mode = gate.mode().as_str(),
        environment = gate.environment(), "clawgate listening");
    Ok(Running {
        agent_addr,
        egress_addr,
        admin_addr,
        transparent_addrs,
        dns_addrs,
        gate,
        config: Arc::new(config),
        audit,
        approvals,
        shutdown,
        tasks,
        refusals,
        _watcher: watcher,
    })
}

/// Start `[listeners.transparent]` (the transparent listener and the DNS forwarder) when
/// configured; their bound addresses.
async fn start_transparent(
    config: &Config,
    gate: &Arc<Gate>,
    proxy: &Arc<EgressProxy>,
    identities: &Arc<Identities>,
    tasks: &mut JoinSet<()>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), ServeError> {
    use crate::intercept::transparent::{Transparent, bind_all, dns, settings};
    let Some(t) = &config.listeners.transparent else {
        return Ok((Vec::new(), Vec::new()));
    };
    let fail = |e: std::io::Error| ServeError::Transparent(e.to_string());
    let listeners = bind_all(&t.addrs).await.map_err(fail)?;
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let transparent = Arc::new(Transparent::new(
        t,
        proxy.clone(),
        identities.clone(),
        addrs.clone(),
    ));
    for l in listeners {
        tasks.spawn(transparent.clone().serve(l, shutdown.clone()));
    }
    let mut dns_addrs = Vec::new();
    if !t.dns_addrs.is_empty() {
        let upstream = match t.dns_upstream {
            Some(u) => u,
            None => std::fs::read_to_string("/etc/resolv.conf")
                .ok()
                .as_deref()
                .and_then(settings::first_nameserver)
                .ok_or_else(|| {
                    ServeError::Transparent(
                        "no nameserver in /etc/resolv.conf for the DNS forwarder; set listeners.transparent.dns_upstream".into(),
                    )
                })?,
        };
        let forwarder = Arc::new(dns::DnsForwarder::new(
            gate.clone(),
            identities.clone(),
            upstream,
            Duration::from_millis(t.dns_timeout_ms),
        ));
        let tcp = bind_all(&t.dns_addrs).await.map_err(fail)?;
        for l in tcp {
            let addr = l.local_addr().map_err(fail)?;
            // The same port over UDP (port 0: the one TCP got).
            let udp = tokio::net::UdpSocket::bind(addr).await.map_err(fail)?;
            if addr == upstream {
                return Err(ServeError::Transparent(format!(
                    "the DNS forwarder at {addr} would forward to itself; set listeners.transparent.dns_upstream"
                )));
            }
            dns_addrs.push(addr);
            tasks.spawn(forwarder.clone().serve_tcp(l, shutdown.clone()));
            tasks.spawn(forwarder.clone().serve_udp(udp, shutdown.clone()));
        }
        tracing::info!(dns = ?dns_addrs, %upstream, "DNS forwarder listening");
    }
    tracing::info!(transparent = ?addrs, "transparent listener accepting redirected connections");
    Ok((addrs, dns_addrs))
}

/// Serve until SIGINT or SIGTERM; reload policy on SIGHUP.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let running = start(config).await?;
    let mut hup = signal(tokio::signal::unix::SignalKind::hangup());
    let mut term = signal(tokio::signal::unix::SignalKind::terminate());
    loop {
        tokio::select! {
            _ = recv(&mut hup) => reload(&running.gate, ReloadTrigger::Signal).await,
            _ = recv(&mut term) => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let grace = Duration::from_secs(running.config.limits.shutdown_grace_s);
    tracing::info!(grace_s = grace.as_secs(), "shutting down");
    running.shutdown(grace).await;
    Ok(())
}

/// A reload nobody waits for an answer to (file change, SIGHUP): the gate records and logs
/// the outcome; a reload it could not record is logged here.
async fn reload(gate: &Gate, trigger: ReloadTrigger) {
    if let Err(e) = gate.reload_policy(trigger).await {
        tracing::error!(trigger = trigger.as_str(), error = %e, "policy reload not made");
    }
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
        journal_bytes: config.audit.journal_kib << 10,
        metrics,
    };
    Ok(AuditLog::open(opts, redactor).await?)
}

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

/// `[approvers.NAME]` as names and token hashes (validated with the config; a hash that does
/// not parse matches nothing).
fn approver_tokens(config: &Config) -> Vec<(String, crate::token::TokenHash)> {
    config
        .approvers
        .iter()
        .filter_map(|(name, a)| {
            crate::token::TokenHash::from_hex(&a.token_sha256).map(|h| (name.clone(), h))
        })
        .collect()
}

/// `[approvers.NAME] webhook_secret` as names and secrets (validated with the config; one
/// that does not parse is left out, and that approver's callbacks then verify against
/// nothing of theirs).
fn approver_webhook_secrets(config: &Config) -> Vec<(String, WebhookSecret)> {
    config
        .approvers
        .iter()
        .filter_map(|(name, a)| {
            let secret = WebhookSecret::parse(a.webhook_secret.as_deref()?).ok()?;
            Some((name.clone(), secret))
        })
        .collect()
}

fn identity_homes(config: &Config) -> Vec<(String, String)> {
    config
        .identities
        .iter()
        .filter_map(|(name, i)| i.home.clone().map(|h| (name.clone(), h)))
        .collect()
}
