//! `clawgate openclaw-config`: the OpenClaw config fragment that routes an agent through
//! this clawgate configuration — the plugin entry with a hook timeout that covers approval
//! holds, and each MCP server through `/mcp/{server}`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use clawgate::config::Config;

/// The plugin's id in `examples/openclaw-plugin/openclaw.plugin.json`.
pub const PLUGIN_ID: &str = "clawgate";

/// Seconds added to the approval wait for the hook's own timeout (more than the plugin's own
/// request timeout), so the plugin answers (allow, deny or "still pending") before OpenClaw
/// gives up on the hook.
const HOOK_MARGIN_S: u64 = 10;

pub fn fragment(config: &Config, plugin_path: &Path, agent: &str) -> Value {
    let agent_url = format!("http://{}", config.listeners.agent.addr);
    let wait_s = config.approval.max_wait_s;
    let mut servers = Map::new();
    for name in config.mcp.servers.keys() {
        servers.insert(
            name.clone(),
            json!({
                "url": format!("{agent_url}/mcp/{name}"),
                "transport": "streamable-http",
                "headers": {"X-Clawgate-Agent": agent},
            }),
        );
    }
    let mut out = json!({
        "plugins": {
            "load": {"paths": [plugin_path.display().to_string()]},
            "allow": [PLUGIN_ID],
            "entries": {PLUGIN_ID: {
                "enabled": true,
                "config": {"sidecarUrl": agent_url, "waitSeconds": wait_s},
                "hooks": {"timeouts": {"before_tool_call": (wait_s + HOOK_MARGIN_S) * 1000}},
            }},
        },
    });
    if !servers.is_empty() {
        out["mcp"] = json!({ "servers": servers });
    }
    out
}

pub fn run(config: Option<PathBuf>, plugin_path: PathBuf, agent: String) -> Result<()> {
    let config = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let plugin_path = std::path::absolute(&plugin_path)
        .with_context(|| format!("cannot resolve {}", plugin_path.display()))?;
    if !plugin_path.join("openclaw.plugin.json").is_file() {
        eprintln!(
            "warning: {} has no openclaw.plugin.json; pass --plugin-path to the clawgate plugin folder",
            plugin_path.display()
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&fragment(&config, &plugin_path, &agent))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_routes_the_plugin_and_every_mcp_server() {
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
        let f = fragment(&config, Path::new("/opt/clawgate/plugin"), "main");
        let entry = &f["plugins"]["entries"][PLUGIN_ID];
        assert_eq!(entry["hooks"]["timeouts"]["before_tool_call"], 50_000);
        assert_eq!(entry["config"]["sidecarUrl"], "http://127.0.0.1:9480");
        assert_eq!(f["plugins"]["allow"], json!([PLUGIN_ID]));
        let gh = &f["mcp"]["servers"]["github"];
        assert_eq!(gh["url"], "http://127.0.0.1:9480/mcp/github");
        assert_eq!(gh["headers"]["X-Clawgate-Agent"], "main");
        // The upstream URL and its credentials stay in clawgate's config.
        assert!(!f.to_string().contains("mcp.example.com"));
    }
}
