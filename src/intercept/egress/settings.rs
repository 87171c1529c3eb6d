//! `[egress]`: the forward proxy's time limits, body limit, static names and TLS inspection.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::ConfigProblem;

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

impl EgressConfig {
    /// Checks that types alone cannot express.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let e = self;
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
}
