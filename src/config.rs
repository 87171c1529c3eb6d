//! TOML configuration with embedded defaults.
//!
//! Every key has a default, so `clawgate serve` needs no file. Unknown keys are errors:
//! a typo in a security product's config must never silently fall back to a default.

pub use crate::listen::ConnectionLimits;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::admin::AdminConfig;
pub use crate::approvers::{NotifyConfig, SlackConfig, WebhookConfig};
pub use crate::audit::{AuditConfig, RedactConfig};
use crate::gate::Mode;
pub use crate::gate::approval::{ApprovalConfig, Person};
pub use crate::intercept::transparent::TransparentConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `enforce` or `shadow`.
    pub mode: Mode,
    /// Environment label passed to policy as `input.environment`.
    pub environment: String,
    /// Where clawgate keeps its state (audit log, keys). Created on first start.
    pub data_dir: PathBuf,
    pub listeners: Listeners,
    pub policy: PolicyConfig,
    pub limits: Limits,
    pub audit: AuditConfig,
    pub approval: ApprovalConfig,
    pub notify: NotifyConfig,
    pub admin: AdminConfig,
    pub mcp: McpConfig,
    pub egress: EgressConfig,
    /// What the facts stage assumes about the agent's machine (`[facts]`).
    pub facts: crate::facts::FactsConfig,
    /// Agent identities (`[identities.NAME]`). None configured: the agent listener serves
    /// loopback peers only; any configured: every request must authenticate as one.
    pub identities: std::collections::BTreeMap<String, crate::identity::IdentityConfig>,
    /// Approvers with credentials of their own (`[approvers.NAME]`).
    pub approvers: std::collections::BTreeMap<String, crate::admin::ApproverCredential>,
    /// People known by several ids (`[people.NAME]`).
    pub people: std::collections::BTreeMap<String, Person>,
}

/// The egress forward proxy (`listeners.egress`), OpenClaw's `proxy.proxyUrl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Time limit for opening the upstream TCP connection (milliseconds).
    pub connect_timeout_ms: u64,
    /// Time limit for resolving a destination name (milliseconds).
    pub resolve_timeout_ms: u64,
    /// Time limit of a forwarded exchange or tunnel when the verdict names none (milliseconds).
    pub upstream_timeout_ms: u64,
    /// Largest request body the proxy reads (it reads bodies whole to show them to policy).
    pub max_request_body_bytes: usize,
    /// Names resolved without DNS, like curl's --resolve: `"api.internal" = ["10.0.0.7"]`.
    /// Policy still judges the addresses.
    pub resolve: std::collections::BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Terminate CONNECT tunnels with certificates from the clawgate CA and decide every
    /// request inside as an `http` action (needs `ca_cert` and `ca_key`).
    pub tls_inspect: bool,
    /// The CA that signs inspection certificates (`clawgate certs init` writes one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<PathBuf>,
    /// Hosts tunnelled uninspected even with `tls_inspect` (patterns: `*` one label, `**` any).
    pub pass_through: Vec<String>,
    /// PEM files of extra roots trusted for upstream certificates, besides the webpki roots.
    pub extra_roots: Vec<PathBuf>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            connect_timeout_ms: 10_000,
            resolve_timeout_ms: 5_000,
            upstream_timeout_ms: 300_000,
            max_request_body_bytes: 8 * 1024 * 1024,
            resolve: Default::default(),
            tls_inspect: false,
            ca_cert: None,
            ca_key: None,
            pass_through: Vec::new(),
            extra_roots: Vec::new(),
        }
    }
}

/// MCP servers reached through the gateway at `/mcp/{name}` on the agent listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    pub servers: std::collections::BTreeMap<String, McpServerConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The upstream MCP streamable HTTP endpoint, e.g. `https://mcp.example.com/mcp`.
    pub url: String,
    /// Headers added to every upstream request (credentials the agent never holds).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Name of an environment variable holding a bearer token for the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Upstream time limit per request when the verdict names none (milliseconds).
    #[serde(default = "default_mcp_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_mcp_timeout_ms() -> u64 {
    60_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listeners {
    pub agent: Listener,
    pub egress: Listener,
    pub admin: Listener,
    /// Transparent interception and the DNS forwarder (`[listeners.transparent]`); off
    /// unless the section is present. See `docs/egress.md`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent: Option<TransparentConfig>,
}

impl Listeners {
    /// Every listener with its name (its key under `[listeners]`).
    pub fn named(&self) -> [(&'static str, &Listener); 3] {
        [
            ("agent", &self.agent),
            ("egress", &self.egress),
            ("admin", &self.admin),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Socket address to bind, e.g. `127.0.0.1:9480`. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// Serve TLS instead of plain TCP (`[listeners.NAME.tls]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Timeouts, header size and connection caps (`[listeners.NAME.connections]`).
    #[serde(default)]
    pub connections: ConnectionLimits,
}

impl Listener {
    /// A plain TCP listener on `addr`.
    pub fn plain(addr: SocketAddr) -> Listener {
        Listener {
            addr,
            tls: None,
            connections: Default::default(),
        }
    }
}

/// TLS on one listener; with `client_ca`, clients may (or with `require_client_cert`, must)
/// present a certificate issued by it, whose subject CN becomes `agent.authenticated_as`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM server certificate chain (leaf first), e.g. `certs/server.pem`.
    pub cert: PathBuf,
    /// PEM private key of that certificate, e.g. `certs/server.key`.
    pub key: PathBuf,
    /// PEM CA certificate(s) that client certificates must chain to, e.g. `certs/ca.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Refuse the handshake of a client without a valid certificate (needs `client_ca`).
    #[serde(default)]
    pub require_client_cert: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// A directory of `.rego` files and `data.json` that replaces the embedded bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Time budget of one policy evaluation; over it, the action is denied.
    pub eval_timeout_ms: u64,
    /// Reload the bundle when its files change (SIGHUP always reloads).
    pub watch: bool,
    /// Verdicts remembered for identical calls (0 turns the cache off). Only the parts of the
    /// input the bundle reads are compared; bundles using time or randomness are not cached.
    pub decision_cache_entries: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted by the API endpoints.
    pub max_body_bytes: usize,
    /// On SIGTERM, how long in-flight requests may take to finish before they are cut off.
    pub shutdown_grace_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Enforce,
            // The sidecar exists to guard production; assume it unless told otherwise.
            environment: "production".to_string(),
            data_dir: PathBuf::from("clawgate-data"),
            listeners: Listeners::default(),
            policy: PolicyConfig::default(),
            limits: Limits::default(),
            audit: AuditConfig::default(),
            approval: ApprovalConfig::default(),
            notify: NotifyConfig::default(),
            admin: AdminConfig::default(),
            mcp: McpConfig::default(),
            egress: EgressConfig::default(),
            facts: crate::facts::FactsConfig::default(),
            identities: std::collections::BTreeMap::new(),
            approvers: std::collections::BTreeMap::new(),
            people: std::collections::BTreeMap::new(),
        }
    }
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            agent: Listener::plain(SocketAddr::from(([127, 0, 0, 1], 9480))),
            egress: Listener::plain(SocketAddr::from(([127, 0, 0, 1], 9481))),
            admin: Listener::plain(SocketAddr::from(([127, 0, 0, 1], 9482))),
            transparent: None,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: None,
            eval_timeout_ms: 50,
            watch: true,
            decision_cache_entries: 10_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            shutdown_grace_s: 10,
        }
    }
}

/// One thing wrong with a config file: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path (`policy.eval_timeout_ms`), or `line N` for syntax errors.
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (fix: {})", self.key, self.message, self.fix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} has {} problem(s):\n{}", problems.len(), render(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

fn render(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Most problems reported for one file; a file past this is probably not a clawgate config.
const MAX_PROBLEMS: usize = 64;

impl Config {
    /// The audit database file.
    pub fn audit_path(&self) -> PathBuf {
        self.data_dir.join("audit.redb")
    }

    /// The checkpoint signing key file.
    pub fn audit_key_path(&self) -> PathBuf {
        self.data_dir.join("audit-signing.key")
    }

    /// The approvals database file.
    pub fn approvals_path(&self) -> PathBuf {
        self.data_dir.join("approvals.redb")
    }

    /// The admin token file created on first start when no token is configured.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    /// Fill unset secrets from the environment (`CLAWGATE_SLACK_WEBHOOK_URL`,
    /// `CLAWGATE_SLACK_SIGNING_SECRET`, `CLAWGATE_WEBHOOK_SECRET`, `CLAWGATE_ADMIN_TOKEN`), so that they need not be
    /// written in the config file.
    pub fn with_secrets_from_env(mut self) -> Config {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let slack = &mut self.notify.slack;
        slack.webhook_url = slack
            .webhook_url
            .take()
            .or_else(|| env("CLAWGATE_SLACK_WEBHOOK_URL"));
        slack.signing_secret = slack
            .signing_secret
            .take()
            .or_else(|| env("CLAWGATE_SLACK_SIGNING_SECRET"));
        let hook = &mut self.notify.webhook;
        hook.secret = hook
            .secret
            .take()
            .or_else(|| env("CLAWGATE_WEBHOOK_SECRET"));
        self
    }

    /// Load and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Parse TOML text, collecting every problem rather than stopping at the first.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
        let mut table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => return Err(vec![syntax_problem(text, &e)]),
        };
        let mut problems = Vec::new();
        // Deserialize, and on each failure record it, drop the offending key and try again,
        // so that one run reports every unknown or mistyped key.
        let config = loop {
            let value = toml::Value::Table(table.clone());
            match serde_path_to_error::deserialize::<_, Config>(value) {
                Ok(config) => break Some(config),
                Err(err) => {
                    let path: Vec<String> = err
                        .path()
                        .iter()
                        .filter_map(|seg| match seg {
                            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                            _ => None,
                        })
                        .collect();
                    let inner = err.inner().to_string();
                    let inner = inner.lines().next().unwrap_or_default().to_string();
                    problems.push(field_problem(&path, &inner));
                    if problems.len() >= MAX_PROBLEMS || !remove_key(&mut table, &path) {
                        break None;
                    }
                }
            }
        };
        if let Some(config) = &config {
            problems.extend(config.validate());
        }
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(problems),
        }
    }

    /// Checks that types alone cannot express.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.environment.trim().is_empty() {
            problems.push(ConfigProblem {
                key: "environment".into(),
                message: "must not be empty".into(),
                fix: "set a label such as \"production\" or \"staging\"".into(),
            });
        }
        if self.policy.eval_timeout_ms == 0 || self.policy.eval_timeout_ms > 10_000 {
            problems.push(ConfigProblem {
                key: "policy.eval_timeout_ms".into(),
                message: format!("{} is out of range", self.policy.eval_timeout_ms),
                fix: "use a value between 1 and 10000 (default 50)".into(),
            });
        }
        if let Some(dir) = &self.policy.dir
            && !dir.is_dir()
        {
            problems.push(ConfigProblem {
                key: "policy.dir".into(),
                message: format!("{} is not a directory", dir.display()),
                fix: "point it at a folder of .rego files, or remove it to use the embedded bundle"
                    .into(),
            });
        }
        if self.limits.max_body_bytes < 1024 || self.limits.max_body_bytes > 64 * 1024 * 1024 {
            problems.push(ConfigProblem {
                key: "limits.max_body_bytes".into(),
                message: format!("{} is out of range", self.limits.max_body_bytes),
                fix: "use a value between 1024 and 67108864 (default 1048576)".into(),
            });
        }
        if self.audit.checkpoint_every == 0 {
            problems.push(ConfigProblem {
                key: "audit.checkpoint_every".into(),
                message: "must be at least 1".into(),
                fix: "use a positive entry count (default 1000)".into(),
            });
        }
        if self.audit.checkpoint_interval_s == 0 {
            problems.push(ConfigProblem {
                key: "audit.checkpoint_interval_s".into(),
                message: "must be at least 1".into(),
                fix: "use a positive number of seconds (default 60)".into(),
            });
        }
        if self.audit.max_batch == 0 || self.audit.max_batch > 65_536 {
            problems.push(ConfigProblem {
                key: "audit.max_batch".into(),
                message: format!("{} is out of range", self.audit.max_batch),
                fix: "use a value between 1 and 65536 (default 1024)".into(),
            });
        }
        for (name, pattern) in &self.audit.redact.patterns {
            if let Err(e) = regex::Regex::new(pattern) {
                problems.push(ConfigProblem {
                    key: format!("audit.redact.patterns.{name}"),
                    message: format!(
                        "not a valid regex: {}",
                        e.to_string().lines().last().unwrap_or("")
                    ),
                    fix: "write a Rust regex (no look-around)".into(),
                });
            }
        }
        problems.extend(self.validate_approvals());
        problems.extend(self.validate_mcp());
        problems.extend(self.validate_identities());
        problems.extend(self.validate_approvers_and_people());
        let facts_problems = self.facts.problems().into_iter().chain(
            self.identities
                .iter()
                .filter_map(|(name, i)| i.home.as_ref().map(|h| (name, h)))
                .filter(|(_, h)| !h.starts_with('/'))
                .map(|(name, h)| {
                    (
                        format!("identities.{name}.home"),
                        format!("{h:?} is not an absolute path"),
                    )
                }),
        );
        for (key, message) in facts_problems {
            problems.push(ConfigProblem {
                key,
                message,
                fix: "write an absolute path such as \"/home/agent\"".into(),
            });
        }
        let l = &self.listeners;
        let named = [
            ("agent", l.agent.addr),
            ("egress", l.egress.addr),
            ("admin", l.admin.addr),
        ];
        for (i, (name, addr)) in named.iter().enumerate() {
            if let Some((other, _)) = named[..i]
                .iter()
                .find(|(_, a)| a == addr && addr.port() != 0)
            {
                problems.push(ConfigProblem {
                    key: format!("listeners.{name}.addr"),
                    message: format!("same address as listeners.{other}.addr ({addr})"),
                    fix: "give every listener its own port: agents must never reach the admin listener by accident".into(),
                });
            }
        }
        for (name, listener) in self.listeners.named() {
            if let Some(tls) = &listener.tls {
                problems.extend(validate_listener_tls(name, tls));
            }
            if let Some(message) = listener.connections.problem() {
                problems.push(ConfigProblem {
                    key: format!("listeners.{name}.connections"),
                    message,
                    fix: "leave the section out for the defaults (15 s headers, 120 s idle, 64 KiB heads, 4096 connections, 1024 per peer)".into(),
                });
            }
        }
        problems.extend(self.validate_egress());
        if let Some(t) = &self.listeners.transparent {
            for (key, message, fix) in t.problems() {
                problems.push(ConfigProblem { key, message, fix });
            }
            let taken = self.listeners.named().map(|(name, l)| (name, l.addr));
            for (key, addr) in t
                .addrs
                .iter()
                .map(|a| ("addrs", a))
                .chain(t.dns_addrs.iter().map(|a| ("dns_addrs", a)))
            {
                if let Some((name, _)) = taken.iter().find(|(_, a)| a == addr && addr.port() != 0) {
                    problems.push(ConfigProblem {
                        key: format!("listeners.transparent.{key}"),
                        message: format!("{addr} is also listeners.{name}.addr"),
                        fix: "give the transparent listener and the DNS forwarder ports of their own (defaults 15001 and 15053)".into(),
                    });
                }
            }
        }
        problems
    }

    fn validate_egress(&self) -> Vec<ConfigProblem> {
        let e = &self.egress;
        let mut problems = Vec::new();
        let ranges = [
            ("connect_timeout_ms", e.connect_timeout_ms, 10_000),
            ("resolve_timeout_ms", e.resolve_timeout_ms, 5_000),
            ("upstream_timeout_ms", e.upstream_timeout_ms, 300_000),
        ];
        for (key, value, default) in ranges {
            if value == 0 || value > 86_400_000 {
                problems.push(ConfigProblem {
                    key: format!("egress.{key}"),
                    message: format!("{value} is out of range"),
                    fix: format!("use a value between 1 and 86400000 (default {default})"),
                });
            }
        }
        if e.max_request_body_bytes == 0 || e.max_request_body_bytes > 1024 * 1024 * 1024 {
            problems.push(ConfigProblem {
                key: "egress.max_request_body_bytes".into(),
                message: format!("{} is out of range", e.max_request_body_bytes),
                fix: "use a value between 1 and 1073741824 (default 8388608)".into(),
            });
        }
        for (name, ips) in &e.resolve {
            if ips.is_empty() || name.trim().is_empty() {
                problems.push(ConfigProblem {
                    key: format!("egress.resolve.{name}"),
                    message: "needs a host name and at least one address".into(),
                    fix: "write \"host.example\" = [\"192.0.2.10\"]".into(),
                });
            }
        }
        if e.tls_inspect {
            for (key, path) in [("ca_cert", &e.ca_cert), ("ca_key", &e.ca_key)] {
                match path {
                    None => problems.push(ConfigProblem {
                        key: format!("egress.{key}"),
                        message: "is required when egress.tls_inspect = true".into(),
                        fix: "run `clawgate certs init --dir certs` and point egress.ca_cert / egress.ca_key at certs/ca.pem and certs/ca.key".into(),
                    }),
                    Some(p) if !p.is_file() => problems.push(ConfigProblem {
                        key: format!("egress.{key}"),
                        message: format!("{} is not a file", p.display()),
                        fix: "run `clawgate certs init --dir certs` or fix the path".into(),
                    }),
                    Some(_) => {}
                }
            }
        }
        for pattern in &e.pass_through {
            if !crate::gate::scope::valid_host_pattern(pattern) {
                problems.push(ConfigProblem {
                    key: "egress.pass_through".into(),
                    message: format!("{pattern:?} is not a host pattern"),
                    fix: "write host names with `*` for one label or `**` for any, e.g. \"**.googleapis.com\"".into(),
                });
            }
        }
        for path in &e.extra_roots {
            if !path.is_file() {
                problems.push(ConfigProblem {
                    key: "egress.extra_roots".into(),
                    message: format!("{} is not a file", path.display()),
                    fix: "list PEM files of CA certificates".into(),
                });
            }
        }
        problems
    }

    fn validate_mcp(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (name, server) in &self.mcp.servers {
            let key = |k: &str| format!("mcp.servers.{name}.{k}");
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !name_ok {
                problems.push(ConfigProblem {
                    key: format!("mcp.servers.{name}"),
                    message: "server names are used in URLs (/mcp/{name})".into(),
                    fix: "use letters, digits, '-', '_' and '.' only".into(),
                });
            }
            if reqwest::Url::parse(&server.url)
                .map(|u| u.scheme() != "http" && u.scheme() != "https")
                .unwrap_or(true)
            {
                problems.push(ConfigProblem {
                    key: key("url"),
                    message: format!("{:?} is not an http(s) URL", server.url),
                    fix: "write the upstream's full streamable HTTP endpoint, e.g. https://mcp.example.com/mcp".into(),
                });
            }
            for header in server.headers.keys() {
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    problems.push(ConfigProblem {
                        key: key("headers"),
                        message: format!("{header:?} is not a valid header name"),
                        fix: "use a token such as X-Api-Key".into(),
                    });
                }
            }
            if server.timeout_ms == 0 || server.timeout_ms > 3_600_000 {
                problems.push(ConfigProblem {
                    key: key("timeout_ms"),
                    message: format!("{} is out of range", server.timeout_ms),
                    fix: "use a value between 1 and 3600000 (default 60000)".into(),
                });
            }
        }
        problems
    }

    fn validate_approvers_and_people(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeMap::new();
        let admin = self
            .admin
            .token_sha256
            .as_deref()
            .map(str::to_ascii_lowercase);
        for (name, approver) in &self.approvers {
            let key = format!("approvers.{name}");
            if name.trim().is_empty()
                || name.trim() != name
                || name.starts_with("group:")
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                problems.push(ConfigProblem {
                    key: key.clone(),
                    message: format!("{name:?} is not an approver id (one word, not group:NAME)"),
                    fix: "name the approver as policy does, e.g. [approvers.U0123ABCD]".into(),
                });
            }
            if *name == self.approval.local_operator {
                problems.push(ConfigProblem {
                    key: key.clone(),
                    message: "is the local operator, who answers with the admin token".into(),
                    fix: "give this approver another id, or set approval.local_operator".into(),
                });
            }
            let hash = approver.token_sha256.trim().to_ascii_lowercase();
            if crate::token::TokenHash::from_hex(&hash).is_none() {
                problems.push(ConfigProblem {
                    key: format!("{key}.token_sha256"),
                    message: "must be 64 hex characters".into(),
                    fix: "put the output of `printf %s TOKEN | sha256sum` here".into(),
                });
            } else if admin.as_deref() == Some(hash.as_str()) {
                problems.push(ConfigProblem {
                    key: format!("{key}.token_sha256"),
                    message: "is the admin token's hash".into(),
                    fix: "give each approver a token of their own".into(),
                });
            } else if let Some(other) = seen.insert(hash, name) {
                problems.push(ConfigProblem {
                    key: format!("{key}.token_sha256"),
                    message: format!("is also approvers.{other}'s token"),
                    fix: "give each approver a token of their own".into(),
                });
            }
        }
        let mut owner = std::collections::BTreeMap::new();
        for (name, person) in &self.people {
            let key = format!("people.{name}.ids");
            if person.ids.is_empty() || person.ids.iter().any(|i| i.trim().is_empty()) {
                problems.push(ConfigProblem {
                    key: key.clone(),
                    message: "must list ids, none of them empty".into(),
                    fix: "list the person's ids on every channel, e.g. ids = [\"U0123ABCD\", \"ops-alice\"]".into(),
                });
            }
            for id in &person.ids {
                if let Some(other) = owner.insert(id.as_str(), name) {
                    problems.push(ConfigProblem {
                        key: key.clone(),
                        message: format!("{id:?} is also listed for people.{other}"),
                        fix: "list each id under one person".into(),
                    });
                }
            }
        }
        problems
    }

    fn validate_identities(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut subjects = std::collections::BTreeMap::new();
        for (name, identity) in &self.identities {
            let key = |k: &str| format!("identities.{name}.{k}");
            if name.is_empty() || name.chars().any(|c| c.is_control() || c == ':') {
                problems.push(ConfigProblem {
                    key: format!("identities.{name}"),
                    message: "identity names must be non-empty and contain no ':'".into(),
                    fix: "use a name such as openclaw-main".into(),
                });
            }
            if identity.token_sha256.is_none() && identity.cert_subject.is_none() {
                problems.push(ConfigProblem {
                    key: format!("identities.{name}"),
                    message: "has no credential, so nothing can authenticate as it".into(),
                    fix: "set token_sha256 (printf %s TOKEN | sha256sum) and/or cert_subject"
                        .into(),
                });
            }
            if let Some(hash) = &identity.token_sha256
                && crate::token::TokenHash::from_hex(hash).is_none()
            {
                problems.push(ConfigProblem {
                    key: key("token_sha256"),
                    message: "must be 64 hex characters".into(),
                    fix: "put the output of `printf %s TOKEN | sha256sum` here".into(),
                });
            }
            if let Some(subject) = &identity.cert_subject {
                if subject.trim().is_empty() {
                    problems.push(ConfigProblem {
                        key: key("cert_subject"),
                        message: "must not be empty".into(),
                        fix: "write the client certificate's common name".into(),
                    });
                } else if let Some(other) = subjects.insert(subject.clone(), name.clone()) {
                    problems.push(ConfigProblem {
                        key: key("cert_subject"),
                        message: format!("{subject:?} is also the subject of identities.{other}"),
                        fix: "give each identity its own client certificate".into(),
                    });
                }
            }
            if let Some(hosts) = &identity.scopes.egress_hosts
                && let Some(bad) = hosts
                    .iter()
                    .find(|h| !crate::gate::scope::valid_host_pattern(h))
            {
                problems.push(ConfigProblem {
                    key: key("scopes.egress_hosts"),
                    message: format!("{bad:?} is not a host pattern"),
                    fix:
                        "write host names where * is one label and ** any labels, e.g. *.github.com"
                            .into(),
                });
            }
        }
        problems
    }

    fn validate_approvals(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut range = |key: &str, value: u64, min: u64, max: u64, default: u64| {
            if value < min || value > max {
                problems.push(ConfigProblem {
                    key: key.into(),
                    message: format!("{value} is out of range"),
                    fix: format!("use a value between {min} and {max} (default {default})"),
                });
            }
        };
        let a = &self.approval;
        range("approval.timeout_s", a.timeout_s, 1, 7 * 86_400, 300);
        range("approval.max_wait_s", a.max_wait_s, 0, 3_600, 30);
        range("approval.hold_s", a.hold_s, 0, 3_600, 20);
        range("approval.reuse_window_s", a.reuse_window_s, 0, 86_400, 60);
        range(
            "approval.max_pending_per_agent",
            a.max_pending_per_agent,
            1,
            10_000,
            20,
        );
        range("approval.max_pending", a.max_pending, 1, 100_000, 200);
        range(
            "approval.new_per_agent_per_minute",
            a.new_per_agent_per_minute,
            1,
            10_000,
            10,
        );
        range(
            "admin.anonymous_window_s",
            self.admin.anonymous_window_s,
            1,
            86_400,
            crate::admin::ANONYMOUS_WINDOW_S,
        );
        let n = &self.notify;
        range("notify.max_attempts", n.max_attempts.into(), 1, 50, 5);
        range(
            "notify.initial_backoff_ms",
            n.initial_backoff_ms,
            1,
            600_000,
            500,
        );
        range(
            "notify.max_backoff_ms",
            n.max_backoff_ms,
            1,
            3_600_000,
            30_000,
        );
        range("notify.timeout_ms", n.timeout_ms, 1, 600_000, 5_000);
        range("notify.batch_after", n.batch_after, 1, 1_000, 5);
        range("notify.batch_window_s", n.batch_window_s, 1, 3_600, 60);
        let operator = a.local_operator.trim();
        if operator.is_empty()
            || operator != a.local_operator
            || operator.starts_with("group:")
            || operator.chars().any(char::is_whitespace)
        {
            problems.push(ConfigProblem {
                key: "approval.local_operator".into(),
                message: format!(
                    "{:?} is not an approver id (one word, not group:NAME)",
                    a.local_operator
                ),
                fix: "name the admin token's holder, e.g. local_operator = \"ops-alice\"".into(),
            });
        }
        for (name, members) in &a.groups {
            if name.is_empty() || members.iter().any(|m| m.trim().is_empty()) {
                problems.push(ConfigProblem {
                    key: format!("approval.groups.{name}"),
                    message: "group names and member ids must not be empty".into(),
                    fix: "list approver ids, e.g. sre = [\"U0123ABCD\"]".into(),
                });
            }
        }
        let urls = [
            ("notify.slack.webhook_url", &n.slack.webhook_url),
            ("notify.webhook.url", &n.webhook.url),
            ("admin.public_url", &self.admin.public_url),
        ];
        for (key, url) in urls {
            if let Some(url) = url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                problems.push(ConfigProblem {
                    key: key.into(),
                    message: format!("{url:?} is not an http(s) URL"),
                    fix: "write the full URL, starting with https://".into(),
                });
            }
        }
        if let Some(secret) = &n.webhook.secret
            && crate::approvers::webhook::WebhookSecret::parse(secret).is_err()
        {
            problems.push(ConfigProblem {
                key: "notify.webhook.secret".into(),
                message: "not a Standard Webhooks secret".into(),
                fix: "use whsec_ followed by base64 of at least 24 random bytes".into(),
            });
        }
        if let Some(hash) = &self.admin.token_sha256
            && (hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            problems.push(ConfigProblem {
                key: "admin.token_sha256".into(),
                message: "must be 64 hex characters".into(),
                fix: "put the output of `printf %s TOKEN | sha256sum` here".into(),
            });
        }
        problems
    }

    /// The embedded defaults as TOML, for `clawgate config default`.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }
}

fn validate_listener_tls(listener: &str, tls: &ListenerTls) -> Vec<ConfigProblem> {
    let key = |k: &str| format!("listeners.{listener}.tls.{k}");
    let mut problems = Vec::new();
    let files = [
        (
            "cert",
            Some(&tls.cert),
            "a PEM certificate chain, e.g. certs/server.pem",
        ),
        (
            "key",
            Some(&tls.key),
            "its PEM private key, e.g. certs/server.key",
        ),
        (
            "client_ca",
            tls.client_ca.as_ref(),
            "a PEM CA certificate, e.g. certs/ca.pem",
        ),
    ];
    for (name, path, what) in files {
        if let Some(path) = path
            && !path.is_file()
        {
            problems.push(ConfigProblem {
                key: key(name),
                message: format!("{} is not a readable file", path.display()),
                fix: format!("point it at {what} (`clawgate certs init` makes them)"),
            });
        }
    }
    if tls.require_client_cert && tls.client_ca.is_none() {
        problems.push(ConfigProblem {
            key: key("require_client_cert"),
            message: "client certificates are required but no client_ca verifies them".into(),
            fix: format!(
                "set {} to the CA that issued the client certificates",
                key("client_ca")
            ),
        });
    }
    problems
}

fn syntax_problem(text: &str, err: &toml::de::Error) -> ConfigProblem {
    let key = match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}")
        }
        None => "(file)".to_string(),
    };
    ConfigProblem {
        key,
        message: format!("invalid TOML: {}", err.message()),
        fix: "correct the TOML syntax at that line".into(),
    }
}

fn field_problem(path: &[String], inner: &str) -> ConfigProblem {
    let key = if path.is_empty() {
        "(top level)".to_string()
    } else {
        path.join(".")
    };
    if let Some(rest) = inner.strip_prefix("unknown field ") {
        // serde says: unknown field `x`, expected one of `a`, `b`
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let fix = if expected.is_empty() {
            "remove it".to_string()
        } else {
            format!(
                "remove it, or use one of: {}",
                expected.trim_start_matches("one of ")
            )
        };
        return ConfigProblem {
            key,
            message: format!("unknown key {name}"),
            fix,
        };
    }
    if let Some(rest) = inner.strip_prefix("unknown variant ") {
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return ConfigProblem {
            key,
            message: format!("unknown value {name}"),
            fix: format!("use {}", expected.trim_start_matches("one of ")),
        };
    }
    if let Some(rest) = inner.strip_prefix("missing field ") {
        return ConfigProblem {
            key,
            message: format!("missing key {rest}"),
            fix: format!("add {rest}"),
        };
    }
    ConfigProblem {
        key,
        message: inner.to_string(),
        fix: "give the value the expected type (see `clawgate config default`)".into(),
    }
}

/// Remove the key at `path` so the next attempt can find further problems.
/// For an unknown key serde reports the parent path plus the key itself.
fn remove_key(table: &mut toml::Table, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = table;
    for p in parents {
        match current.get_mut(p) {
            Some(toml::Value::Table(t)) => current = t,
            _ => return false,
        }
    }
    current.remove(last).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn default_toml_round_trips() {
        assert_eq!(
            Config::parse(&Config::default_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path() {
        let problems = Config::parse(
            "mood = \"shadow\"\n[policy]\neval_timeout = 5\n[listeners.agent]\naddr = \"127.0.0.1:1\"\nport = 3\n",
        )
        .unwrap_err();
        let mut keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec!["listeners.agent.port", "mood", "policy.eval_timeout"]
        );
        let timeout = problems
            .iter()
            .find(|p| p.key == "policy.eval_timeout")
            .unwrap();
        assert!(timeout.fix.contains("eval_timeout_ms"), "{problems:?}");
    }

    #[test]
    fn type_and_value_errors_are_reported_together() {
        let problems = Config::parse(
            "mode = \"loud\"\n[policy]\neval_timeout_ms = 0\n[limits]\nmax_body_bytes = \"big\"\n",
        )
        .unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"mode"), "{problems:?}");
        assert!(keys.contains(&"limits.max_body_bytes"), "{problems:?}");
        assert!(keys.contains(&"policy.eval_timeout_ms"), "{problems:?}");
        let mode = problems.iter().find(|p| p.key == "mode").unwrap();
        assert!(mode.fix.contains("enforce"), "{mode:?}");
    }

    #[test]
    fn listener_tls_problems_name_their_keys() {
        let problems = Config::parse(
            "[listeners.agent]\naddr = \"127.0.0.1:1\"\n[listeners.agent.tls]\ncert = \"/nonexistent/server.pem\"\nkey = \"/nonexistent/server.key\"\nrequire_client_cert = true\n[listeners.admin]\naddr = \"127.0.0.1:2\"\n[listeners.admin.tls]\ncert = \"a\"\nkey = \"b\"\nclient = \"c\"\n",
        )
        .unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "listeners.agent.tls.cert",
            "listeners.agent.tls.key",
            "listeners.agent.tls.require_client_cert",
            "listeners.admin.tls.client",
        ] {
            assert!(keys.contains(&key), "{key} missing from {problems:?}");
        }
        let required = problems
            .iter()
            .find(|p| p.key == "listeners.agent.tls.require_client_cert")
            .unwrap();
        assert!(
            required.fix.contains("listeners.agent.tls.client_ca"),
            "{required:?}"
        );
    }

    #[test]
    fn flood_bounds_and_the_anonymous_window_must_be_positive() {
        let mut config = Config::default();
        config.approval.max_pending_per_agent = 0;
        config.approval.max_pending = 0;
        config.approval.new_per_agent_per_minute = 0;
        config.admin.anonymous_window_s = 0;
        let problems = config.validate();
        let named = |key: &str| problems.iter().find(|p| p.key == key);
        for key in [
            "approval.max_pending_per_agent",
            "approval.max_pending",
            "approval.new_per_agent_per_minute",
            "admin.anonymous_window_s",
        ] {
            assert!(named(key).is_some(), "{key}: {problems:?}");
        }
        let fix = named("approval.max_pending_per_agent").map(|p| p.fix.as_str());
        assert_eq!(fix, Some("use a value between 1 and 10000 (default 20)"));
    }

    #[test]
    fn approver_tokens_are_their_own_and_each_id_is_one_persons() {
        let text = format!(
            "[approvers.U_A]\ntoken_sha256 = \"{a}\"\n[approvers.U_B]\ntoken_sha256 = \"{a}\"\n\
             [approvers.local-operator]\ntoken_sha256 = \"{b}\"\n[approvers.U_C]\ntoken_sha256 = \"nope\"\n\
             [people.ann]\nids = [\"U_A\"]\n[people.bea]\nids = [\"U_A\"]\n[people.cy]\nids = []\n",
            a = "a".repeat(64),
            b = "b".repeat(64)
        );
        let problems = Config::parse(&text).unwrap_err();
        let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "approvers.U_B.token_sha256",
                "approvers.U_C.token_sha256",
                "approvers.local-operator",
                "people.bea.ids",
                "people.cy.ids"
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let problems = Config::parse("mode = \"shadow\"\n[policy\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "line 2");
    }
}
