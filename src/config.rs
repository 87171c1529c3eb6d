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
pub use crate::gate::policy::PolicyConfig;
pub use crate::intercept::egress::EgressConfig;
pub use crate::intercept::mcp::{McpConfig, McpServerConfig};
pub use crate::intercept::transparent::TransparentConfig;
pub use crate::settings::ConfigProblem;
pub use crate::tls::ListenerTls;

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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            shutdown_grace_s: 10,
        }
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
        problems.extend(self.policy.problems());
        if self.limits.max_body_bytes < 1024 || self.limits.max_body_bytes > 64 * 1024 * 1024 {
            problems.push(ConfigProblem {
                key: "limits.max_body_bytes".into(),
                message: format!("{} is out of range", self.limits.max_body_bytes),
                fix: "use a value between 1024 and 67108864 (default 1048576)".into(),
            });
        }
        problems.extend(self.audit.problems());
        // [approval], [admin] and [notify] interleaved in the order `config check` has always
        // listed them.
        problems.extend(self.approval.range_problems());
        problems.extend(self.admin.range_problems());
        problems.extend(self.notify.range_problems());
        problems.extend(self.approval.name_problems());
        problems.extend(self.notify.url_problems());
        problems.extend(self.admin.url_problems());
        problems.extend(self.notify.secret_problems());
        problems.extend(self.admin.token_problems());
        problems.extend(self.mcp.problems());
        problems.extend(crate::identity::identity_problems(&self.identities));
        problems.extend(crate::admin::approver_problems(
            &self.approvers,
            self.admin.token_sha256.as_deref(),
            &self.approval.local_operator,
            self.notify.webhook.secret.as_deref(),
        ));
        problems.extend(crate::gate::approval::people_problems(&self.people));
        problems.extend(self.facts.problems());
        problems.extend(
            self.identities
                .iter()
                .filter_map(|(name, i)| i.home.as_ref().map(|h| (name, h)))
                .filter(|(_, h)| !h.starts_with('/'))
                .map(|(name, h)| {
                    ConfigProblem::new(
                        format!("identities.{name}.home"),
                        format!("{h:?} is not an absolute path"),
                        crate::facts::ABSOLUTE_PATH_FIX,
                    )
                }),
        );
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
                problems.extend(tls.problems(name));
            }
            if let Some(message) = listener.connections.problem() {
                problems.push(ConfigProblem {
                    key: format!("listeners.{name}.connections"),
                    message,
                    fix: "leave the section out for the defaults (15 s headers, 120 s idle, 64 KiB heads, 4096 connections, 1024 per peer)".into(),
                });
            }
        }
        problems.extend(self.egress.problems());
        if let Some(t) = &self.listeners.transparent {
            problems.extend(t.problems());
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

    /// The embedded defaults as TOML, for `clawgate config default`.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }
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
    fn approver_webhook_secrets_are_their_own() {
        let shared = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let own = "whsec_Ym9iJ3Mgb3duIHdlYmhvb2sgc2VjcmV0IDMyIGJ5dGVzIQ==";
        let text = format!(
            "[notify.webhook]\nsecret = \"{shared}\"\n\
             [approvers.U_A]\ntoken_sha256 = \"{a}\"\nwebhook_secret = \"{own}\"\n\
             [approvers.U_B]\ntoken_sha256 = \"{b}\"\nwebhook_secret = \"{own}\"\n\
             [approvers.U_C]\ntoken_sha256 = \"{c}\"\nwebhook_secret = \"{shared}\"\n\
             [approvers.U_D]\ntoken_sha256 = \"{d}\"\nwebhook_secret = \"not a secret\"\n",
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64),
            d = "d".repeat(64),
        );
        let problems = Config::parse(&text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "approvers.U_B.webhook_secret",
                "approvers.U_C.webhook_secret",
                "approvers.U_D.webhook_secret"
            ],
            "{problems:?}"
        );
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
