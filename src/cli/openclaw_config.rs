//! `clawgate openclaw-config`: the OpenClaw config fragment that routes an agent through
//! this clawgate configuration — the plugin entry with a hook timeout that covers approval
//! holds, each MCP server through `/mcp/{server}`, the egress listener as OpenClaw's managed
//! proxy (`proxy.proxyUrl`, with `web_fetch` letting it resolve names), and, when
//! `[identities]` are configured, the agent's credential in all three.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use clawgate::config::{Config, Listener};
use clawgate::token::TokenHash;

/// The plugin's id in `examples/openclaw-plugin/openclaw.plugin.json`.
pub const PLUGIN_ID: &str = "clawgate";

/// The environment variable a fragment without a literal token refers to; OpenClaw
/// substitutes `${VAR}` in any config string when it loads its config.
pub const TOKEN_PLACEHOLDER_ENV: &str = "CLAWGATE_AGENT_TOKEN";

/// Seconds added to the approval wait for the hook's own timeout (more than the plugin's own
/// request timeout), so the plugin answers (allow, deny or "still pending") before OpenClaw
/// gives up on the hook.
const HOOK_MARGIN_S: u64 = 10;

/// The file name `clawgate certs init` gives the CA, looked for beside a listener's certificate.
const CA_FILE: &str = "ca.pem";

/// What the fragment authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No identities are configured: loopback peers are served without a credential.
    None,
    /// `${CLAWGATE_AGENT_TOKEN}` wherever the token goes; OpenClaw fills it in at load time.
    Placeholder { identity: String },
    /// The token itself (read from the environment when the fragment was printed).
    Literal { identity: String, token: String },
}

impl Credential {
    fn identity(&self) -> Option<&str> {
        match self {
            Credential::None => None,
            Credential::Placeholder { identity } | Credential::Literal { identity, .. } => {
                Some(identity)
            }
        }
    }

    /// The token as it appears in a header value.
    fn token(&self) -> Option<String> {
        match self {
            Credential::None => None,
            Credential::Placeholder { .. } => Some(format!("${{{TOKEN_PLACEHOLDER_ENV}}}")),
            Credential::Literal { token, .. } => Some(token.clone()),
        }
    }

    /// `NAME:TOKEN@` for the proxy URL, percent-encoded (the placeholder is left as is for
    /// OpenClaw to substitute, so the token it stands for must be URL-safe, e.g. hex).
    fn userinfo(&self) -> String {
        match self {
            Credential::None => String::new(),
            Credential::Placeholder { identity } => format!(
                "{}:${{{TOKEN_PLACEHOLDER_ENV}}}@",
                percent_encode_userinfo(identity)
            ),
            Credential::Literal { identity, token } => format!(
                "{}:{}@",
                percent_encode_userinfo(identity),
                percent_encode_userinfo(token)
            ),
        }
    }
}

/// Pick the identity and token the fragment carries. `identity` is `--identity`,
/// `token_env` is `--token-env` and `env` reads an environment variable.
pub fn credential(
    config: &Config,
    identity: Option<&str>,
    token_env: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Credential> {
    let names = || {
        config
            .identities
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if config.identities.is_empty() {
        if let Some(name) = identity {
            bail!(
                "--identity {name}: this configuration has no [identities], so the agent needs no credential"
            );
        }
        if token_env.is_some() {
            bail!(
                "--token-env: this configuration has no [identities], so there is no token to add"
            );
        }
        return Ok(Credential::None);
    }
    let token = match token_env {
        Some(var) => Some(
            env(var)
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .with_context(|| {
                    format!("--token-env {var}: the environment variable {var} is not set or empty")
                })?,
        ),
        None => None,
    };
    let hash = |name: &str| {
        config.identities[name]
            .token_sha256
            .as_deref()
            .and_then(TokenHash::from_hex)
    };
    let name = match (identity, &token) {
        (Some(name), _) => {
            if !config.identities.contains_key(name) {
                bail!(
                    "--identity {name}: no such identity (configured: {})",
                    names()
                );
            }
            name.to_string()
        }
        // The identity whose token this is.
        (None, Some(token)) => config
            .identities
            .keys()
            .find(|n| hash(n).is_some_and(|h| h.matches(token)))
            .cloned()
            .with_context(|| {
                format!(
                    "the token in ${} matches none of the configured identities ({})",
                    token_env.unwrap_or_default(),
                    names()
                )
            })?,
        (None, None) => bail!(
            "this configuration has [identities], so the agent must authenticate: pass --identity NAME (configured: {}) and, to write the token itself into the fragment, --token-env VAR",
            names()
        ),
    };
    let Some(expected) = hash(&name) else {
        bail!(
            "identities.{name} has no token_sha256; an identity that only has a cert_subject authenticates with its client certificate, which the fragment cannot carry"
        );
    };
    Ok(match token {
        Some(token) if expected.matches(&token) => Credential::Literal {
            identity: name,
            token,
        },
        Some(_) => bail!(
            "the token in ${} is not identities.{name}'s token (its SHA-256 differs from token_sha256)",
            token_env.unwrap_or_default()
        ),
        None => Credential::Placeholder { identity: name },
    })
}

/// `scheme://host:port` of a listener as a client reaches it: https when it serves TLS, and
/// loopback for an unspecified bind address (0.0.0.0, [::]).
fn listener_url(listener: &Listener, userinfo: &str) -> String {
    let scheme = if listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut addr = listener.addr;
    if addr.ip().is_unspecified() {
        let loopback = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        addr = SocketAddr::new(loopback, addr.port());
    }
    format!("{scheme}://{userinfo}{addr}")
}

/// The CA a client needs to trust a TLS listener: `ca.pem` beside its certificate (the
/// layout `clawgate certs init` writes).
fn ca_beside(listener: &Listener) -> Option<PathBuf> {
    let tls = listener.tls.as_ref()?;
    let dir = tls.cert.parent().unwrap_or(Path::new("."));
    let ca = dir.join(CA_FILE);
    Some(std::path::absolute(&ca).unwrap_or(ca))
}

pub fn fragment(config: &Config, plugin_path: &Path, agent: &str, cred: &Credential) -> Value {
    let agent_url = listener_url(&config.listeners.agent, "");
    let wait_s = config.approval.max_wait_s;
    let mut servers = Map::new();
    for name in config.mcp.servers.keys() {
        let mut headers = json!({"X-Clawgate-Agent": agent});
        if let Some(token) = cred.token() {
            headers["Authorization"] = json!(format!("Bearer {token}"));
        }
        servers.insert(
            name.clone(),
            json!({
                "url": format!("{agent_url}/mcp/{name}"),
                "transport": "streamable-http",
                "headers": headers,
            }),
        );
    }
    let mut plugin_config = json!({"sidecarUrl": agent_url, "waitSeconds": wait_s});
    if let Some(token) = cred.token() {
        plugin_config["token"] = json!(token);
    }
    // The plugin trusts only this CA for the agent listener, so a process that takes the port
    // while clawgate restarts gets no request and no token (threat model, finding 11).
    if let Some(ca) = ca_beside(&config.listeners.agent) {
        plugin_config["sidecarCaFile"] = json!(ca.display().to_string());
    }
    let egress = &config.listeners.egress;
    let mut proxy = json!({"proxyUrl": listener_url(egress, &cred.userinfo())});
    if let Some(ca) = ca_beside(egress) {
        proxy["tls"] = json!({"caFile": ca.display().to_string()});
    }
    let mut out = json!({
        "plugins": {
            "load": {"paths": [plugin_path.display().to_string()]},
            "allow": [PLUGIN_ID],
            "entries": {PLUGIN_ID: {
                "enabled": true,
                "config": plugin_config,
                "hooks": {"timeouts": {"before_tool_call": (wait_s + HOOK_MARGIN_S) * 1000}},
            }},
        },
        "proxy": proxy,
        // Let the proxy resolve names for web_fetch: clawgate judges the addresses it
        // resolves itself, at connect time.
        "tools": {"web": {"fetch": {"useTrustedEnvProxy": true}}},
    });
    if !servers.is_empty() {
        out["mcp"] = json!({ "servers": servers });
    }
    out
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `clawgate openclaw-config`: print the OpenClaw config fragment (plugin entry, MCP servers,
/// egress proxy, agent credential) for this configuration.
#[derive(clap::Args)]
pub struct OpenclawConfigArgs {
    /// clawgate config file (the embedded defaults when omitted).
    #[arg(long, env = "CLAWGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The clawgate OpenClaw plugin folder (holds openclaw.plugin.json).
    #[arg(long, default_value = "examples/openclaw-plugin")]
    pub plugin_path: PathBuf,
    /// The agent id MCP calls are attributed to.
    #[arg(long, default_value = "main")]
    pub agent: String,
    /// The identity ([identities.NAME]) the agent authenticates as; required when
    /// identities are configured unless --token-env names one by its token.
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    /// Write the token from this environment variable into the fragment (checked against
    /// the identity's token_sha256). Without it, the fragment says ${CLAWGATE_AGENT_TOKEN},
    /// which OpenClaw fills in from its own environment.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

pub fn run(opts: OpenclawConfigArgs) -> Result<ExitCode> {
    let config = match &opts.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let plugin_path = std::path::absolute(&opts.plugin_path)
        .with_context(|| format!("cannot resolve {}", opts.plugin_path.display()))?;
    if !plugin_path.join("openclaw.plugin.json").is_file() {
        eprintln!(
            "warning: {} has no openclaw.plugin.json; pass --plugin-path to the clawgate plugin folder",
            plugin_path.display()
        );
    }
    let cred = credential(
        &config,
        opts.identity.as_deref(),
        opts.token_env.as_deref(),
        |var| std::env::var(var).ok(),
    )?;
    println!(
        "{}",
        serde_json::to_string_pretty(&fragment(&config, &plugin_path, &opts.agent, &cred))?
    );
    // Hints go to stderr so stdout stays one JSON document.
    if let Credential::Placeholder { identity } = &cred {
        eprintln!(
            "note: OpenClaw fills in ${{{TOKEN_PLACEHOLDER_ENV}}} from its environment: start it with {TOKEN_PLACEHOLDER_ENV} set to the token of identity {identity} (a URL-safe token such as `openssl rand -hex 32`, since it is also part of proxy.proxyUrl)"
        );
    }
    if let Some(identity) = cred.identity() {
        eprintln!(
            "note: the fragment authenticates as identity {identity}: plugin token, MCP Authorization header, proxy URL userinfo"
        );
    }
    if let Some(ca) = ca_beside(&config.listeners.egress)
        && !ca.is_file()
    {
        eprintln!(
            "warning: proxy.tls.caFile {} does not exist; set it to the CA that issued the egress listener's certificate",
            ca.display()
        );
    }
    if let Some(ca) = ca_beside(&config.listeners.agent) {
        eprintln!(
            "note: the agent listener serves TLS; start OpenClaw with NODE_EXTRA_CA_CERTS={} so the plugin and MCP client trust it",
            ca.display()
        );
    }
    eprintln!(
        "note: tools.web.fetch.useTrustedEnvProxy applies when HTTP_PROXY/HTTPS_PROXY are set in OpenClaw's environment; set both to the proxy.proxyUrl above"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate::config::ListenerTls;
    use clawgate::identity::IdentityConfig;

    const TOKEN: &str = "0123abcd-token";

    fn with_mcp() -> Config {
        let mut config = Config::default();
        config.approval.max_wait_s = 40;
        config.mcp.servers.insert(
            "github".into(),
            clawgate::config::McpServerConfig {
                url: "https://mcp.example.com/mcp".into(),
                headers: Default::default(),
                bearer_token_env: None,
                timeout_ms: 1000,
            },
        );
        config
    }

    fn with_identities() -> Config {
        let mut config = with_mcp();
        for (name, token) in [("openclaw-main", TOKEN), ("ci", "ci-token")] {
            config.identities.insert(
                name.into(),
                IdentityConfig {
                    token_sha256: Some(TokenHash::hex_of(token)),
                    ..IdentityConfig::default()
                },
            );
        }
        config.identities.insert(
            "cert-only".into(),
            IdentityConfig {
                cert_subject: Some("agent.example".into()),
                ..IdentityConfig::default()
            },
        );
        config
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |var| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn fragment_routes_the_plugin_every_mcp_server_and_egress() {
        let config = with_mcp();
        let f = fragment(
            &config,
            Path::new("/opt/clawgate/plugin"),
            "main",
            &Credential::None,
        );
        let entry = &f["plugins"]["entries"][PLUGIN_ID];
        assert_eq!(entry["hooks"]["timeouts"]["before_tool_call"], 50_000);
        assert_eq!(entry["config"]["sidecarUrl"], "http://127.0.0.1:9480");
        assert!(entry["config"].get("token").is_none());
        assert_eq!(f["plugins"]["allow"], json!([PLUGIN_ID]));
        assert_eq!(
            f["plugins"]["load"]["paths"],
            json!(["/opt/clawgate/plugin"])
        );
        let gh = &f["mcp"]["servers"]["github"];
        assert_eq!(gh["url"], "http://127.0.0.1:9480/mcp/github");
        assert_eq!(gh["headers"], json!({"X-Clawgate-Agent": "main"}));
        assert_eq!(f["proxy"], json!({"proxyUrl": "http://127.0.0.1:9481"}));
        assert_eq!(f["tools"]["web"]["fetch"]["useTrustedEnvProxy"], true);
        // The upstream URL and its credentials stay in clawgate's config.
        assert!(!f.to_string().contains("mcp.example.com"));
    }

    #[test]
    fn tls_listeners_and_unspecified_addresses() {
        let mut config = Config::default();
        config.listeners.egress.addr = "0.0.0.0:3128".parse().unwrap();
        config.listeners.egress.tls = Some(ListenerTls {
            cert: "/etc/clawgate/certs/server.pem".into(),
            key: "/etc/clawgate/certs/server.key".into(),
            client_ca: None,
            require_client_cert: false,
        });
        config.listeners.agent.addr = "[::]:9480".parse().unwrap();
        let f = fragment(&config, Path::new("/p"), "main", &Credential::None);
        assert_eq!(
            f["plugins"]["entries"][PLUGIN_ID]["config"]["sidecarUrl"],
            "http://[::1]:9480"
        );
        assert!(
            f["plugins"]["entries"][PLUGIN_ID]["config"]
                .get("sidecarCaFile")
                .is_none()
        );
        // A TLS agent listener: the plugin pins the CA beside its certificate.
        config.listeners.agent.tls = config.listeners.egress.tls.clone();
        let f = fragment(&config, Path::new("/p"), "main", &Credential::None);
        let plugin = &f["plugins"]["entries"][PLUGIN_ID]["config"];
        assert_eq!(plugin["sidecarUrl"], "https://[::1]:9480");
        assert_eq!(plugin["sidecarCaFile"], "/etc/clawgate/certs/ca.pem");
        assert_eq!(f["proxy"]["proxyUrl"], "https://127.0.0.1:3128");
        assert_eq!(f["proxy"]["tls"]["caFile"], "/etc/clawgate/certs/ca.pem");
        assert!(f.get("mcp").is_none());
    }

    #[test]
    fn identities_put_the_token_or_a_placeholder_everywhere() {
        let config = with_identities();
        let placeholder = credential(&config, Some("openclaw-main"), None, env(&[])).unwrap();
        let f = fragment(&config, Path::new("/p"), "main", &placeholder);
        assert_eq!(
            f["plugins"]["entries"][PLUGIN_ID]["config"]["token"],
            "${CLAWGATE_AGENT_TOKEN}"
        );
        assert_eq!(
            f["mcp"]["servers"]["github"]["headers"]["Authorization"],
            "Bearer ${CLAWGATE_AGENT_TOKEN}"
        );
        assert_eq!(
            f["proxy"]["proxyUrl"],
            "http://openclaw-main:${CLAWGATE_AGENT_TOKEN}@127.0.0.1:9481"
        );

        let literal = credential(
            &config,
            Some("openclaw-main"),
            Some("TOK"),
            env(&[("TOK", " 0123abcd-token\n")]),
        )
        .unwrap();
        assert_eq!(
            literal,
            Credential::Literal {
                identity: "openclaw-main".into(),
                token: TOKEN.into()
            }
        );
        let f = fragment(&config, Path::new("/p"), "main", &literal);
        assert_eq!(f["plugins"]["entries"][PLUGIN_ID]["config"]["token"], TOKEN);
        assert_eq!(
            f["mcp"]["servers"]["github"]["headers"]["Authorization"],
            format!("Bearer {TOKEN}")
        );
        assert_eq!(
            f["proxy"]["proxyUrl"],
            format!("http://openclaw-main:{TOKEN}@127.0.0.1:9481")
        );
        // Without --identity, the token names its identity.
        let found = credential(&config, None, Some("T"), env(&[("T", "ci-token")])).unwrap();
        assert_eq!(found.identity(), Some("ci"));
        // Characters that mean something in a URL are percent-encoded in the userinfo.
        let odd = Credential::Literal {
            identity: "a b".into(),
            token: "x/y+z=@:%".into(),
        };
        assert_eq!(odd.userinfo(), "a%20b:x%2Fy%2Bz%3D%40%3A%25@");
    }

    #[test]
    fn credential_mistakes_are_errors_that_say_what_to_do() {
        let config = with_identities();
        let err = |identity: Option<&str>, var: Option<&str>, e| {
            credential(&config, identity, var, e)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(None, None, env(&[]))
                .contains("--identity NAME (configured: cert-only, ci, openclaw-main)")
        );
        assert!(err(Some("nope"), None, env(&[])).contains("no such identity"));
        assert!(err(Some("cert-only"), None, env(&[])).contains("no token_sha256"));
        assert!(err(Some("ci"), Some("T"), env(&[])).contains("T is not set"));
        assert!(
            err(Some("ci"), Some("T"), env(&[("T", TOKEN)])).contains("not identities.ci's token")
        );
        assert!(err(None, Some("T"), env(&[("T", "other")])).contains("matches none"));
        let plain = Config::default();
        assert!(credential(&plain, Some("ci"), None, env(&[])).is_err());
        assert_eq!(
            credential(&plain, None, None, env(&[])).unwrap(),
            Credential::None
        );
    }
}
