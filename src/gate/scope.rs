//! Capability scopes: what an identity may do at all (`[identities.NAME.scopes]`), checked
//! before policy. An action outside them is denied with a reason naming the scope.

use std::collections::HashMap;

use crate::action::{Action, ActionKind};
use crate::gate::policy::Bundle;
use crate::identity::Scopes;

/// The group of a tool not in the policy catalog.
pub const UNKNOWN_GROUP: &str = "unknown";

/// Tool name to tool group, from the policy bundle's data (`data.clawgate.tools.<tool>.group`,
/// with `data.clawgate.aliases` resolved), so scopes and policy name groups alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCatalog {
    groups: HashMap<String, String>,
    aliases: HashMap<String, String>,
}

impl ToolCatalog {
    /// Read the catalog from the bundle's `data.json` documents (later files add to it).
    pub fn from_data<'a>(
        documents: impl IntoIterator<Item = &'a serde_json::Value>,
    ) -> ToolCatalog {
        let mut catalog = ToolCatalog::default();
        for doc in documents {
            let clawgate = &doc["clawgate"];
            if let Some(tools) = clawgate["tools"].as_object() {
                for (tool, spec) in tools {
                    if let Some(group) = spec["group"].as_str() {
                        catalog.groups.insert(tool.clone(), group.to_string());
                    }
                }
            }
            if let Some(aliases) = clawgate["aliases"].as_object() {
                for (alias, target) in aliases {
                    if let Some(target) = target.as_str() {
                        catalog.aliases.insert(alias.clone(), target.to_string());
                    }
                }
            }
        }
        catalog
    }

    /// The group of a tool (through one alias), or [`UNKNOWN_GROUP`].
    pub fn group_of(&self, tool: &str) -> &str {
        let tool = self.aliases.get(tool).map(String::as_str).unwrap_or(tool);
        self.groups
            .get(tool)
            .map(String::as_str)
            .unwrap_or(UNKNOWN_GROUP)
    }
}

/// Why an action is outside the identity's scopes, or `None` when it is inside them.
/// The serving policy `bundle` (for its tool catalog) is loaded only when the identity
/// restricts tool groups.
pub fn out_of_scope(
    identity: Option<&str>,
    scopes: &Scopes,
    action: &Action,
    environment: &str,
    bundle: impl FnOnce() -> std::sync::Arc<Bundle>,
) -> Option<String> {
    let who = identity.unwrap_or("this agent");
    if let Some(envs) = &scopes.environments
        && !envs.iter().any(|e| e == environment)
    {
        return Some(format!(
            "identity {who} is not scoped for environment {environment:?} (scopes.environments: {})",
            list(envs)
        ));
    }
    match action.kind {
        ActionKind::Tool => {
            if let Some(groups) = &scopes.tool_groups {
                let bundle = bundle();
                // A dispatcher (tool_call) needs the scope of the tool it runs as well.
                let inner = bundle.param_roles.dispatched(action);
                let tools = std::iter::once(action.tool.as_deref().unwrap_or(""))
                    .chain(inner.as_ref().and_then(|a| a.tool.as_deref()));
                for tool in tools {
                    let group = bundle.tool_catalog.group_of(tool);
                    if !groups.iter().any(|g| g == group) {
                        return Some(format!(
                            "identity {who} is not scoped for tool group {group:?} (tool {tool:?}; scopes.tool_groups: {})",
                            list(groups)
                        ));
                    }
                }
            }
        }
        ActionKind::Mcp => {
            if let Some(servers) = &scopes.mcp_servers {
                let server = action.server.as_deref().unwrap_or("");
                if !servers.iter().any(|s| s == server) {
                    return Some(format!(
                        "identity {who} is not scoped for MCP server {server:?} (scopes.mcp_servers: {})",
                        list(servers)
                    ));
                }
            }
        }
        // A name lookup reaches no host; the connection that follows is judged on its own.
        ActionKind::Dns => {}
        ActionKind::Http | ActionKind::Connect => {
            if let Some(patterns) = &scopes.egress_hosts {
                // The host clawgate connects to (the egress proxy refuses requests that name
                // another), else the request's own host for an action without a destination.
                let host = action
                    .dest
                    .as_ref()
                    .map(|d| d.host.as_str())
                    .or(action.http.as_ref().map(|h| h.host.as_str()))
                    .unwrap_or("");
                if !patterns.iter().any(|p| host_matches(p, host)) {
                    return Some(format!(
                        "identity {who} is not scoped for egress host {host:?} (scopes.egress_hosts: {})",
                        list(patterns)
                    ));
                }
            }
        }
    }
    None
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Whether `pattern` is a usable host pattern: labels of host characters, `*` or `**`.
pub fn valid_host_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.split('.').all(|label| {
            label == "*"
                || label == "**"
                || (!label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':'))
        })
}

/// Match a host against a pattern label by label (case-insensitive): `*` is exactly one
/// label, `**` any number of labels (including none).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    labels_match(&p, &h)
}

fn labels_match(p: &[&str], h: &[&str]) -> bool {
    match p.split_first() {
        None => h.is_empty(),
        Some((&"**", rest)) => (0..=h.len()).any(|skip| labels_match(rest, &h[skip..])),
        Some((first, rest)) => match h.split_first() {
            Some((label, h_rest)) => {
                (*first == "*" || first == label) && labels_match(rest, h_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_patterns() {
        assert!(host_matches("api.github.com", "API.github.com"));
        assert!(host_matches("*.github.com", "api.github.com"));
        assert!(!host_matches("*.github.com", "github.com"));
        assert!(!host_matches("*.github.com", "a.b.github.com"));
        assert!(host_matches("**.github.com", "a.b.github.com"));
        assert!(host_matches("**.github.com", "github.com"));
        assert!(host_matches("**", "anything.at.all"));
        assert!(!host_matches("github.com", "evilgithub.com"));
        assert!(valid_host_pattern("*.example.com") && valid_host_pattern("10.0.0.1"));
        assert!(
            !valid_host_pattern("") && !valid_host_pattern("a..b") && !valid_host_pattern("a/b")
        );
    }

    #[test]
    fn catalog_resolves_aliases_and_unknown_tools() {
        let data = json!({"clawgate": {"tools": {"exec": {"group": "runtime"}, "read": {"group": "fs"}},
                                       "aliases": {"bash": "exec"}}});
        let c = ToolCatalog::from_data([&data]);
        assert_eq!(c.group_of("exec"), "runtime");
        assert_eq!(c.group_of("bash"), "runtime");
        assert_eq!(c.group_of("nope"), UNKNOWN_GROUP);
    }
}
