//! Which parameters of a call are shell commands, paths, URLs or patches: read from the policy
//! bundle's own tool catalog (`data.clawgate.tools.<tool>.command_params`, `path_params`,
//! `url_params`, `patch_params`, `settings.unknown_tool`, `mcp.*_argument_*`), so the facts
//! stage and the policy agree on what each parameter is.

use std::collections::HashMap;

use serde_json::Value;

/// The parameter names of one tool, by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolParams {
    pub command: Vec<String>,
    pub path: Vec<String>,
    pub url: Vec<String>,
    pub patch: Vec<String>,
    /// Objects of environment variables the command runs with (exec's `env`).
    pub env: Vec<String>,
}

impl ToolParams {
    fn from_spec(spec: &Value) -> ToolParams {
        let names = |field: &str| -> Vec<String> {
            spec[field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        ToolParams {
            command: names("command_params"),
            path: names("path_params"),
            url: names("url_params"),
            patch: names("patch_params"),
            env: names("env_params"),
        }
    }
}

/// Parameter roles for every tool of a bundle.
#[derive(Debug, Clone, Default)]
pub struct ParamRoles {
    aliases: HashMap<String, String>,
    tools: HashMap<String, ToolParams>,
    unknown_tool: ToolParams,
    mcp_command_keys: Vec<String>,
    mcp_url_keys: Vec<String>,
    mcp_path_key: Option<regex::Regex>,
    /// Parameters that name the directory a command runs in.
    pub workdir_params: Vec<String>,
}

impl ParamRoles {
    /// Read the roles from the bundle's data documents (later documents override earlier).
    pub fn from_data<'a>(documents: impl IntoIterator<Item = &'a Value>) -> ParamRoles {
        let mut roles = ParamRoles {
            workdir_params: vec!["workdir".into(), "cwd".into()],
            ..Default::default()
        };
        for doc in documents {
            let c = &doc["clawgate"];
            if let Some(tools) = c["tools"].as_object() {
                for (name, spec) in tools {
                    roles
                        .tools
                        .insert(name.to_lowercase(), ToolParams::from_spec(spec));
                }
            }
            if let Some(aliases) = c["aliases"].as_object() {
                for (alias, target) in aliases {
                    if let Some(t) = target.as_str() {
                        roles.aliases.insert(alias.to_lowercase(), t.to_lowercase());
                    }
                }
            }
            if c["settings"]["unknown_tool"].is_object() {
                roles.unknown_tool = ToolParams::from_spec(&c["settings"]["unknown_tool"]);
            }
            let strings = |v: &Value| -> Option<Vec<String>> {
                v.as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
            };
            if let Some(keys) = strings(&c["mcp"]["command_argument_keys"]) {
                roles.mcp_command_keys = keys;
            }
            if let Some(keys) = strings(&c["mcp"]["url_argument_keys"]) {
                roles.mcp_url_keys = keys;
            }
            if let Some(p) = c["mcp"]["path_argument_pattern"].as_str() {
                roles.mcp_path_key = regex::Regex::new(p).ok();
            }
            if let Some(keys) = strings(&c["facts"]["workdir_params"]) {
                roles.workdir_params = keys;
            }
        }
        roles
    }

    /// The roles of a built-in or plugin tool (through one alias, case-insensitive).
    pub fn tool(&self, name: &str) -> &ToolParams {
        let low = name.to_lowercase();
        let name = self.aliases.get(&low).unwrap_or(&low);
        self.tools.get(name).unwrap_or(&self.unknown_tool)
    }

    /// The roles of an MCP tool's arguments: command and URL keys by name, path keys by
    /// pattern, judged per argument key.
    pub fn mcp(&self, arguments: &serde_json::Map<String, Value>) -> ToolParams {
        let mut p = ToolParams::default();
        for key in arguments.keys() {
            if self.mcp_command_keys.contains(key) {
                p.command.push(key.clone());
            }
            if self.mcp_url_keys.contains(key) {
                p.url.push(key.clone());
            }
            if self.mcp_path_key.as_ref().is_some_and(|r| r.is_match(key)) {
                p.path.push(key.clone());
            }
        }
        p
    }

    /// The arguments of an MCP call with those nested in objects and arrays lifted to the
    /// top under their dotted path (`options.path`, `files.1.path`), and the roles of all of
    /// them: a path or URL one level down is as much a path or URL as one at the top.
    pub fn mcp_nested(
        &self,
        arguments: &serde_json::Map<String, Value>,
    ) -> (serde_json::Map<String, Value>, ToolParams) {
        let mut flat = arguments.clone();
        let mut lifted = serde_json::Map::new();
        for (key, value) in arguments {
            lift(key, value, 1, &mut lifted);
        }
        let mut roles = self.mcp(arguments);
        for (dotted, value) in lifted {
            let last = dotted.rsplit('.').next().unwrap_or_default();
            let role = self.mcp(&serde_json::Map::from_iter([(
                last.to_string(),
                Value::Null,
            )]));
            if role == ToolParams::default() {
                continue;
            }
            let push = |list: &mut Vec<String>, from: &[String]| {
                if !from.is_empty() {
                    list.push(dotted.clone());
                }
            };
            push(&mut roles.command, &role.command);
            push(&mut roles.path, &role.path);
            push(&mut roles.url, &role.url);
            flat.insert(dotted, value);
        }
        (flat, roles)
    }

    /// Whether a tool name is an OpenClaw bundle-mcp tool (`<server>__<tool>`) the catalog
    /// does not list: its arguments are read as MCP arguments.
    pub fn is_bundle_mcp(&self, name: &str) -> bool {
        let low = name.to_lowercase();
        let name = self.aliases.get(&low).unwrap_or(&low);
        !self.tools.contains_key(name) && name.contains("__")
    }
}

/// Nested arguments go this deep, and no more of them are read; past that they are not
/// judged (the default bundle holds MCP calls it cannot classify by name anyway).
const MAX_NESTING: usize = 4;
const MAX_LIFTED: usize = 256;

/// Every value below `value` (not `value` itself) under its dotted path.
fn lift(path: &str, value: &Value, depth: usize, out: &mut serde_json::Map<String, Value>) {
    if depth > MAX_NESTING {
        return;
    }
    let children: Vec<(String, &Value)> = match value {
        Value::Object(m) => m.iter().map(|(k, v)| (format!("{path}.{k}"), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_object() || v.is_array())
            .map(|(i, v)| (format!("{path}.{i}"), v))
            .collect(),
        _ => return,
    };
    for (child, v) in children {
        if out.len() >= MAX_LIFTED {
            return;
        }
        out.insert(child.clone(), v.clone());
        lift(&child, v, depth + 1, out);
    }
}
