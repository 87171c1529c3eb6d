//! `[mcp.servers.NAME]`: the upstream MCP servers the gateway serves at `/mcp/{name}`.

use serde::{Deserialize, Serialize};

use crate::settings::ConfigProblem;

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

impl McpConfig {
    /// Checks that types alone cannot express.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (name, server) in &self.servers {
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
}
