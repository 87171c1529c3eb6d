//! The facts stage: what an action does, stated once, before policy judges it.
//!
//! Every action is parsed into `input.facts` (see `docs/policy-guide.md` for the schema):
//! shell commands by a real shell grammar ([`shell`]), paths normalised lexically ([`path`]),
//! URLs parsed with WHATWG semantics ([`url`]). This stage never decides anything; only the
//! Rego policy does. Which parameters are commands, paths or URLs comes from the bundle's own
//! tool catalog ([`roles`]).
//!
//! Parsing is bounded: a script longer than [`Limits::max_script_bytes`], nested deeper than
//! [`Limits::max_depth`], or with more commands than [`Limits::max_commands`] is stated as
//! `truncated` (with a `parse_error` when nothing of it was parsed), never silently dropped.

pub mod dns;
pub mod glob;
pub mod parser_worker;
pub mod path;
pub mod roles;
pub mod shell;
pub mod typed;
pub mod url;
pub mod wrappers;

use serde::Serialize;
use serde_json::Value;

use crate::action::{Action, ActionKind};
use crate::settings::ConfigProblem;

/// What to do about a home or workspace that is not absolute.
pub const ABSOLUTE_PATH_FIX: &str = "write an absolute path such as \"/home/agent\"";
pub use path::{PathBase, PathFact};
pub use roles::{ParamRoles, ToolParams};
pub use shell::{CommandFact, ScriptFact};
pub use url::UrlFact;

/// Bounds on what one action's facts may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_script_bytes: usize,
    /// Bytes parsed for one action in all, nested scripts included.
    pub max_total_bytes: usize,
    pub max_depth: usize,
    /// Brackets open at once in a script; brush's parser backtracks exponentially on deep
    /// unmatched ones (24 `(` took over a second), so past this the script is not parsed.
    pub max_nesting: usize,
    pub max_scripts: usize,
    pub max_commands: usize,
    pub max_paths: usize,
    pub max_urls: usize,
    /// Address space of a shell parser worker ([`parser_worker`]), in MiB.
    pub parse_memory_mib: u64,
    /// How long one script's parse may take in a worker.
    pub parse_timeout_ms: u64,
}

impl Limits {
    pub fn parse_budget(&self) -> parser_worker::Budget {
        parser_worker::Budget {
            memory_mib: self.parse_memory_mib,
            timeout: std::time::Duration::from_millis(self.parse_timeout_ms),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_script_bytes: 64 * 1024,
            max_total_bytes: 128 * 1024,
            max_depth: 6,
            max_nesting: 16,
            max_scripts: 64,
            max_commands: 256,
            max_paths: 128,
            max_urls: 64,
            parse_memory_mib: 256,
            parse_timeout_ms: 2_000,
        }
    }
}

/// What the facts stage needs to know besides the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsContext {
    /// The home directory `~` and `$HOME` stand for.
    pub home: String,
    /// Where relative paths start when the call names no working directory.
    pub workspace: String,
    /// clawgate's own files (data directory, config, policy directory), absolute.
    pub sidecar_paths: Vec<String>,
    /// Ports of clawgate's own listeners an agent must not reach directly (admin).
    pub sidecar_ports: Vec<u16>,
    pub limits: Limits,
}

impl Default for FactsContext {
    fn default() -> FactsContext {
        let home = std::env::var("HOME")
            .ok()
            .filter(|h| h.starts_with('/'))
            .unwrap_or_else(|| "/root".into());
        FactsContext {
            workspace: format!("{}/.openclaw/workspace", home.trim_end_matches('/')),
            home,
            sidecar_paths: Vec::new(),
            sidecar_ports: Vec::new(),
            limits: Limits::default(),
        }
    }
}

impl FactsContext {
    /// The same context for an identity with its own home directory.
    pub fn with_home(&self, home: &str) -> FactsContext {
        let home = home.trim_end_matches('/').to_string();
        FactsContext {
            workspace: format!("{home}/.openclaw/workspace"),
            home,
            ..self.clone()
        }
    }
}

/// `[facts]` in config: the agent's machine as the facts stage sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FactsConfig {
    /// The agent's home directory (default: the sidecar's `HOME`). Per identity:
    /// `[identities.NAME] home`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// The working directory of a call that names none (default:
    /// `<home>/.openclaw/workspace`, OpenClaw's default workspace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Address space of one shell parser worker, in MiB (default 256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_memory_mib: Option<u64>,
    /// How long one script's parse may take, in ms (default 2000); past it the script is not
    /// parsed (and policy holds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_timeout_ms: Option<u64>,
}

impl FactsConfig {
    /// The context for a sidecar with this config; `sidecar_paths` and `sidecar_ports` are
    /// clawgate's own files and admin ports.
    pub fn context(&self, sidecar_paths: Vec<String>, sidecar_ports: Vec<u16>) -> FactsContext {
        let mut ctx = FactsContext::default();
        if let Some(home) = &self.home {
            ctx = ctx.with_home(home);
        }
        if let Some(ws) = &self.workspace {
            ctx.workspace = path::normalize(
                &glob::escape(ws),
                &PathBase {
                    home: ctx.home.clone(),
                    cwd: ctx.home.clone(),
                },
            );
        }
        if let Some(mib) = self.parse_memory_mib {
            ctx.limits.parse_memory_mib = mib;
        }
        if let Some(ms) = self.parse_timeout_ms {
            ctx.limits.parse_timeout_ms = ms;
        }
        ctx.sidecar_paths = sidecar_paths;
        ctx.sidecar_ports = sidecar_ports;
        ctx
    }

    /// Problems with the values, for config validation.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        for (key, v) in [
            ("facts.home", &self.home),
            ("facts.workspace", &self.workspace),
        ] {
            if let Some(v) = v
                && !v.starts_with('/')
                && !(key == "facts.workspace" && v.starts_with('~'))
            {
                out.push(ConfigProblem::new(
                    key,
                    format!("{v:?} is not an absolute path"),
                    ABSOLUTE_PATH_FIX,
                ));
            }
        }
        // A worker needs room for the executable it runs; a parse needs more than a tick.
        if let Some(mib) = self.parse_memory_mib
            && mib < 128
        {
            out.push(ConfigProblem::new(
                "facts.parse_memory_mib",
                format!("{mib} MiB is below the 128 MiB a parser worker needs"),
                "use 128 or more (default 256)",
            ));
        }
        if let Some(ms) = self.parse_timeout_ms {
            out.extend(crate::settings::out_of_range(
                "facts.parse_timeout_ms",
                ms,
                10,
                60_000,
                Limits::default().parse_timeout_ms,
            ));
        }
        out
    }
}

/// clawgate's own footprint, so that policy can keep the agent away from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SidecarFacts {
    pub paths: Vec<String>,
    pub ports: Vec<u16>,
}

/// `input.facts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub home: String,
    /// The directory relative paths were joined to.
    pub cwd: String,
    pub scripts: Vec<ScriptFact>,
    pub commands: Vec<CommandFact>,
    pub paths: Vec<PathFact>,
    pub urls: Vec<UrlFact>,
    /// A limit stopped collection: the lists above are not everything the action holds.
    pub truncated: bool,
    pub sidecar: SidecarFacts,
    /// The queried name of a `dns` action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<dns::DnsFact>,
    /// Request headers of an `http` action whose values hold credential shapes (header name,
    /// lower case → shapes), the way URL facts state `credentials`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub header_credentials: std::collections::BTreeMap<String, Vec<&'static str>>,
    /// The credential shapes in an `http` action's JSON body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub body_credentials: Vec<&'static str>,
    /// URL parameters whose value is written as a URL (`scheme://…`) but does not parse as
    /// one, by source (`params.url`): a destination that cannot be judged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unparsed_urls: Vec<String>,
    /// The credential shapes in the strings of a tool or MCP call's arguments (a token in a
    /// message, a search query, text typed into a page), whichever parameter holds them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub param_credentials: Vec<&'static str>,
}

/// State the facts of one action.
pub fn facts_for(action: &Action, roles: &ParamRoles, ctx: &FactsContext) -> Facts {
    // A dispatcher (tool_call) is judged as the call it makes; one that dispatches to a
    // dispatcher is refused by policy, and stated as itself.
    if let Some(inner) = roles.dispatched(action)
        && roles.dispatched(&inner).is_none()
    {
        return facts_for(&inner, roles, ctx);
    }
    let mut facts = Facts {
        home: ctx.home.clone(),
        cwd: ctx.workspace.clone(),
        sidecar: SidecarFacts {
            paths: ctx.sidecar_paths.clone(),
            ports: ctx.sidecar_ports.clone(),
        },
        ..Default::default()
    };
    match action.kind {
        ActionKind::Tool | ActionKind::Mcp => {
            let empty = serde_json::Map::new();
            let params = action
                .params
                .as_ref()
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            let tool = action.tool.as_deref().unwrap_or_default();
            let is_mcp = action.kind == ActionKind::Mcp
                || (action.kind == ActionKind::Tool && roles.is_bundle_mcp(tool));
            let (nested, mut spec, cut) = if is_mcp {
                roles.mcp(params)
            } else {
                (Vec::new(), ToolParams::default(), false)
            };
            facts.truncated |= cut;
            // Nested MCP arguments are looked up under their dotted path beside the others;
            // only a call that has some pays for a copy of its arguments.
            let mut params: std::borrow::Cow<'_, serde_json::Map<String, Value>> =
                if nested.is_empty() {
                    std::borrow::Cow::Borrowed(params)
                } else {
                    let mut all = params.clone();
                    all.extend(nested.into_iter().map(|(k, v)| (k, v.clone())));
                    std::borrow::Cow::Owned(all)
                };
            if action.kind == ActionKind::Tool {
                let own = roles.tool(tool);
                // A catalog key with a dot names a nested parameter (`params.command`: the
                // argv of a node's `system.run` invoked through `nodes`); it is looked up
                // under its dotted path like a nested MCP argument.
                for key in own.command.iter().chain(own.path.iter()) {
                    if key.contains('.')
                        && !params.contains_key(key)
                        && let Some(v) = nested_param(&params, key)
                    {
                        let v = v.clone();
                        params.to_mut().insert(key.clone(), v);
                    }
                }
                spec.command.extend(own.command.iter().cloned());
                spec.typed.extend(own.typed.iter().cloned());
                spec.path.extend(own.path.iter().cloned());
                spec.url.extend(own.url.iter().cloned());
                spec.patch.extend(own.patch.iter().cloned());
                spec.env.extend(own.env.iter().cloned());
                // A parameter the catalog does not name (`filePath`, `media`, `image`) is
                // judged by its value's shape, as an MCP argument is.
                roles.roles_by_shape(&params, &mut spec);
            }
            params_facts(&mut facts, &params, &spec, roles, ctx);
            facts.param_credentials = credential_shapes_in_strings(&params, &spec.url);
        }
        ActionKind::Http => {
            if let Some(h) = &action.http {
                let query = if h.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", h.query)
                };
                let host = if h.host.contains(':') && !h.host.starts_with('[') {
                    format!("[{}]", h.host)
                } else {
                    h.host.clone()
                };
                let raw = format!("{}://{host}:{}{}{query}", h.scheme, h.port, h.path);
                if let Some(u) = UrlFact::parse(&raw, "action.http".into()) {
                    facts.urls.push(u);
                }
                for (name, value) in &h.headers {
                    let shapes = match value {
                        serde_json::Value::String(v) => crate::audit::redact::token_shapes_in(v),
                        other => crate::audit::redact::token_shapes_in(&other.to_string()),
                    };
                    if !shapes.is_empty() {
                        facts
                            .header_credentials
                            .insert(name.to_ascii_lowercase(), shapes);
                    }
                }
                // A JSON body is scanned as its text (its strings, escaped as JSON writes
                // them, which leaves token shapes intact).
                if let Some(body) = &h.body {
                    facts.body_credentials =
                        crate::audit::redact::token_shapes_in(&body.to_string());
                }
            }
        }
        ActionKind::Connect => {
            if let Some(d) = &action.dest {
                let host = if d.host.contains(':') && !d.host.starts_with('[') {
                    format!("[{}]", d.host)
                } else {
                    d.host.clone()
                };
                if let Some(mut u) =
                    UrlFact::parse(&format!("http://{host}:{}/", d.port), "action.dest".into())
                {
                    u.scheme = None;
                    u.port = Some(d.port);
                    facts.urls.push(u);
                }
            }
        }
        ActionKind::Dns => {
            facts.dns = action.dns.as_ref().map(|q| dns::DnsFact::new(&q.name));
        }
    }
    facts
}

/// The token shapes in every string of `params` (keys and values, as written: a JSON text
/// would hide a key block's line breaks behind escapes), each shape once. Nesting past
/// `MAX_CREDENTIAL_DEPTH` is scanned as its JSON text, so nothing deeper goes unread. URL
/// parameters (`url_keys`) that parse as URLs are left out: their shapes are their URL facts'
/// `credentials`, where the rules know the issuer a key may go to (a presigned S3 URL's
/// `X-Amz-Credential`).
fn credential_shapes_in_strings(
    params: &serde_json::Map<String, Value>,
    url_keys: &[String],
) -> Vec<&'static str> {
    const MAX_CREDENTIAL_DEPTH: usize = 16;
    fn add(text: &str, found: &mut Vec<&'static str>) {
        for shape in crate::audit::redact::token_shapes_in(text) {
            if !found.contains(&shape) {
                found.push(shape);
            }
        }
    }
    fn object(o: &serde_json::Map<String, Value>, depth: usize, found: &mut Vec<&'static str>) {
        for (k, x) in o {
            add(k, found);
            value(x, depth + 1, found);
        }
    }
    fn value(v: &Value, depth: usize, found: &mut Vec<&'static str>) {
        match v {
            Value::String(s) => add(s, found),
            Value::Array(_) | Value::Object(_) if depth >= MAX_CREDENTIAL_DEPTH => {
                add(&v.to_string(), found)
            }
            Value::Array(a) => a.iter().for_each(|x| value(x, depth + 1, found)),
            Value::Object(o) => object(o, depth, found),
            _ => {}
        }
    }
    let mut found = Vec::new();
    let url_param = |k: &String, v: &Value| {
        url_keys.contains(k)
            && v.as_str()
                .is_some_and(|s| UrlFact::parse(s, String::new()).is_some())
    };
    for (k, x) in params {
        if url_param(k, x) {
            continue;
        }
        add(k, &mut found);
        value(x, 1, &mut found);
    }
    found
}

fn params_facts(
    facts: &mut Facts,
    params: &serde_json::Map<String, Value>,
    spec: &ToolParams,
    roles: &ParamRoles,
    ctx: &FactsContext,
) {
    let home_base = PathBase {
        home: ctx.home.clone(),
        cwd: ctx.workspace.clone(),
    };
    // The call's own working directory, when it names one, is where relative paths start.
    if let Some(dir) = roles
        .workdir_params
        .iter()
        .find_map(|k| params.get(k).and_then(Value::as_str))
        .filter(|d| !d.is_empty())
    {
        facts.cwd = PathFact::new(
            &dir.replace('\\', "/"),
            false,
            &home_base,
            "workdir",
            String::new(),
        )
        .path;
    }
    let base = PathBase {
        home: ctx.home.clone(),
        cwd: facts.cwd.clone(),
    };
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    };
    let shaped = spec.shaped_path.iter().map(|k| (k, "argument"));
    for (key, access) in spec.path.iter().map(|k| (k, "param")).chain(shaped) {
        for raw in params.get(key).map(strings).unwrap_or_default() {
            // A URL where a path is taken (`pdf: "http://10.0.0.5/x.pdf"`: tools that read a
            // local file or fetch a URL) is where the tool connects, not a file.
            // (A one-letter scheme is a drive: `C://Users/x` stays a path.)
            if raw
                .split_once("://")
                .is_some_and(|(scheme, _)| scheme.len() > 1)
                && let Some(u) = UrlFact::parse(&raw, format!("params.{key}"))
            {
                if facts.urls.len() < ctx.limits.max_urls {
                    facts.urls.extend(u.readings());
                }
                continue;
            }
            let access = if roles.workdir_params.contains(key) {
                "workdir"
            } else {
                access
            };
            let p = PathFact::new(
                &raw.replace('\\', "/"),
                false,
                &base,
                access,
                format!("params.{key}"),
            );
            push_path(&mut facts.paths, &ctx.limits, p);
        }
    }
    for key in &spec.patch {
        for text in params.get(key).map(strings).unwrap_or_default() {
            for raw in patch_paths(&text) {
                let p = PathFact::new(&raw, false, &base, "write", format!("params.{key}"));
                push_path(&mut facts.paths, &ctx.limits, p);
            }
        }
    }
    for key in &spec.url {
        for raw in params.get(key).map(strings).unwrap_or_default() {
            let source = format!("params.{key}");
            let u = UrlFact::parse(&raw, source.clone()).or_else(|| {
                // `//host/path` (scheme-relative) names a host as much as `host/path`.
                let bare = raw.trim();
                UrlFact::from_bare_operand(bare.strip_prefix("//").unwrap_or(bare), source.clone())
            });
            match u {
                Some(u) => {
                    for u in u.readings() {
                        if facts.urls.len() < ctx.limits.max_urls {
                            facts.urls.push(u);
                        }
                    }
                }
                // Only what says it is a URL (a scheme and `//`): `target: "main"` is a name.
                None if raw.contains("://") && !facts.unparsed_urls.contains(&source) => {
                    facts.unparsed_urls.push(source)
                }
                None => {}
            }
        }
    }
    let mut sink = shell::Sink {
        scripts: &mut facts.scripts,
        commands: &mut facts.commands,
        paths: &mut facts.paths,
        urls: &mut facts.urls,
        limits: &ctx.limits,
        roles,
        pipelines: 0,
        truncated: false,
        parsed_bytes: 0,
    };
    // Variables the call sets for its command (exec's `env`): (param key, name, value).
    let env_vars: Vec<(&String, &String, &Value)> = spec
        .env
        .iter()
        .filter_map(|key| Some((key, params.get(key)?.as_object()?)))
        .flat_map(|(key, vars)| vars.iter().map(move |(name, value)| (key, name, value)))
        .collect();
    // Their string values, as the command sees them (`$NAME` expands to them).
    let env: Vec<(String, String)> = env_vars
        .iter()
        .filter_map(|(_, name, value)| Some((name.to_string(), value.as_str()?.to_string())))
        .collect();
    for (key, name, value) in &env_vars {
        let Some(value) = value.as_str() else {
            continue;
        };
        // A command line the call gives a variable that programs run (GIT_PAGER,
        // GIT_SSH_COMMAND, PROMPT_COMMAND) is code, like the command itself.
        if let Some(text) = wrappers::command_line_of(name, value) {
            shell::add_script(&mut sink, text, format!("params.{key}.{name}"), &base);
        }
        // A URL the command's programs read from a variable (HTTPS_PROXY, API_URL).
        let source = format!("params.{key}.{name}");
        if let Some(u) = UrlFact::parse(value, source.clone())
            .or_else(|| UrlFact::from_bare_operand(value, source))
            && sink.urls.len() < sink.limits.max_urls
        {
            sink.urls.push(u);
        }
    }
    for key in &spec.command {
        let source = format!("params.{key}");
        let value = params.get(key);
        for text in value.map(strings).unwrap_or_default() {
            shell::add_script_with_env(&mut sink, &text, source.clone(), &base, &env);
        }
        // A program with its arguments beside it (`{"command": "rm", "args": ["-rf", "~"]}`,
        // the shape of MCP servers that spawn processes): the argv it runs.
        if let Some(Value::String(program)) = value {
            let parent = key
                .rsplit_once('.')
                .map(|(p, _)| format!("{p}."))
                .unwrap_or_default();
            for sibling in ["args", "arguments", "argv"] {
                if let Some(Value::Array(args)) = params.get(&format!("{parent}{sibling}"))
                    && !args.is_empty()
                    && args.iter().all(Value::is_string)
                {
                    let words: Vec<&str> = std::iter::once(program.as_str())
                        .chain(args.iter().filter_map(Value::as_str))
                        .collect();
                    let source = format!("{source} + {sibling} (argv)");
                    add_argv_script(&mut sink, &words, source, &base);
                }
            }
        }
        // An array of strings may be commands or one command's argv (`["rm", "-rf", "~"]`);
        // which one the server runs is not known, so it is judged as both.
        if let Some(Value::Array(words)) = value
            && words.len() > 1
            && words.iter().all(Value::is_string)
        {
            let words: Vec<&str> = words.iter().filter_map(Value::as_str).collect();
            add_argv_script(&mut sink, &words, format!("{source} (argv)"), &base);
        }
    }
    // Input typed into a live terminal: what its shell reads, unless the input edits it.
    if let Some(typed) = typed::typed(params, &spec.typed) {
        let keys: Vec<&str> = spec
            .typed
            .iter()
            .filter(|k| params.contains_key(k.as_str()))
            .map(String::as_str)
            .collect();
        let source = format!("params.{}", keys.join("+"));
        let first = sink.scripts.len();
        match typed.edited {
            None => shell::add_script(&mut sink, &typed.text, source, &base),
            Some(edit) => shell::add_unparsed(
                &mut sink,
                &typed.text,
                source,
                format!(
                    "the typed input edits its line ({edit}), so the shell runs something other than the text typed; not parsed"
                ),
            ),
        }
        if let Some(script) = sink.scripts.get_mut(first) {
            script.unfinished_line = typed.unfinished;
        }
    }
    // Variables the call sets for the command (exec's `env`) reach every program it runs, as
    // `NAME=value` words before it would.
    let env_names: Vec<String> = env_vars
        .iter()
        .map(|(_, name, _)| name.to_string())
        .collect();
    if !env_names.is_empty() {
        // Not to the commands parsed from those values (a GIT_PAGER's `cat`): they run
        // under the command, not with its variables as the text sets them.
        let from_env: Vec<bool> = sink
            .scripts
            .iter()
            .map(|s| {
                spec.env
                    .iter()
                    .any(|k| s.source.starts_with(&format!("params.{k}.")))
            })
            .collect();
        for c in sink.commands.iter_mut() {
            if from_env.get(c.script).copied().unwrap_or(false) {
                continue;
            }
            c.assignments.extend(env_names.iter().cloned());
            c.assignments.sort();
            c.assignments.dedup();
        }
    }
    let truncated = sink.truncated;
    facts.truncated |= truncated
        || facts.paths.len() >= ctx.limits.max_paths
        || facts.urls.len() >= ctx.limits.max_urls
        || facts.scripts.iter().any(|s| s.truncated);
}

/// An argv a server runs as given, parsed as the shell line that quotes each word; a word
/// no shell text can hold (a NUL byte) leaves it unparsed, never unjudged.
fn add_argv_script(sink: &mut shell::Sink, words: &[&str], source: String, base: &PathBase) {
    match shlex::try_join(words.iter().copied()) {
        Ok(text) => shell::add_script(sink, &text, source, base),
        Err(e) => shell::add_unparsed(
            sink,
            &words.join(" "),
            source,
            format!("an argv word cannot be written as shell text ({e}); not parsed"),
        ),
    }
}

/// The files an `apply_patch` input touches (`*** Add File:`, `*** Update File:`, ...).
fn patch_paths(text: &str) -> Vec<String> {
    const MARKERS: &[&str] = &[
        "*** Add File:",
        "*** Update File:",
        "*** Delete File:",
        "*** Move to:",
    ];
    text.lines()
        .filter_map(|line| {
            MARKERS
                .iter()
                .find_map(|m| line.strip_prefix(m))
                .map(|p| p.trim().to_string())
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// Add a path fact unless the same path with the same access is there; past the limit the
/// facts are marked truncated by the caller.
pub(crate) fn push_path(paths: &mut Vec<PathFact>, limits: &Limits, p: PathFact) {
    if paths.len() >= limits.max_paths {
        return;
    }
    if !paths
        .iter()
        .any(|q| q.path == p.path && q.access == p.access)
    {
        paths.push(p);
    }
}

/// The value at a dotted path of nested objects (`params.command`), if every step is an
/// object holding the next key.
fn nested_param<'v>(params: &'v serde_json::Map<String, Value>, dotted: &str) -> Option<&'v Value> {
    let mut parts = dotted.split('.');
    let mut value = params.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

#[cfg(test)]
mod bounds {
    //! The facts stage never panics and stays bounded in time and memory, whatever the text.

    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn exec_facts(cmd: &str) -> Facts {
        let roles = ParamRoles::from_data([&json!({"clawgate": {"tools": {
            "exec": {"command_params": ["command"], "path_params": ["workdir"]}
        }}})]);
        let ctx = FactsContext::default().with_home("/home/dev");
        facts_for(
            &Action::tool("exec", Some(json!({"command": cmd}))),
            &roles,
            &ctx,
        )
    }

    /// Run on a thread with the stack of a tokio worker (2 MiB), where the gate runs.
    fn bounded(cmd: String) -> (Facts, Duration) {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let started = Instant::now();
                let f = exec_facts(&cmd);
                (f, started.elapsed())
            })
            .unwrap()
            .join()
            .expect("the facts stage panicked or overflowed its stack")
    }

    fn within_limits(f: &Facts) {
        let l = Limits::default();
        assert!(f.commands.len() <= l.max_commands + 1);
        assert!(f.scripts.len() <= l.max_scripts);
        assert!(f.paths.len() <= l.max_paths);
        assert!(f.urls.len() <= l.max_urls);
    }

    #[test]
    fn config_problems_say_how_to_fix_each_setting() {
        let config = FactsConfig {
            home: Some("home/agent".into()),
            parse_memory_mib: Some(64),
            parse_timeout_ms: Some(5),
            ..FactsConfig::default()
        };
        let problems = config.problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "facts.home",
                "facts.parse_memory_mib",
                "facts.parse_timeout_ms"
            ]
        );
        assert_eq!(problems[0].fix, ABSOLUTE_PATH_FIX);
        assert!(problems[1].fix.contains("128"), "{}", problems[1].fix);
        assert!(
            problems[2].fix.contains("between 10 and 60000"),
            "{}",
            problems[2].fix
        );
        let fine = FactsConfig {
            parse_memory_mib: Some(128),
            parse_timeout_ms: Some(60_000),
            ..FactsConfig::default()
        };
        assert!(fine.problems().is_empty());
    }

    #[test]
    fn hostile_shapes_stay_bounded() {
        let mut inputs = vec![
            format!("{}echo x{}", "$(".repeat(1000), ")".repeat(1000)),
            format!("{}echo x{}", "(".repeat(5000), ")".repeat(5000)),
            format!("{}ls{}", "`".repeat(501), "`".repeat(501)),
            format!("{}", "sh -c '".repeat(300)),
            "echo 'unbalanced".to_string(),
            "echo \"unbalanced $(".to_string(),
            "a".repeat(1024 * 1024),
            "ls; ".repeat(200_000),
            "cat x | ".repeat(10_000) + "cat",
            format!("echo {}", "{a,b}".repeat(40)),
            format!("echo {{1..{}}}", u32::MAX),
            "eval ".repeat(100) + "ls",
            format!("rm {}", "-rf ".repeat(50_000)),
            "\0\u{7f}\u{fffd}$'\\x00' ${!x} ${x[@]:-$(y)} <<<$(z) 2>&- >&- <&3".to_string(),
        ];
        // Nested `sh -c` quoting to the depth limit and beyond.
        let mut nested = "rm -rf /".to_string();
        for _ in 0..10 {
            nested = format!("sh -c {}", shell_quote(&nested));
        }
        inputs.push(nested);
        for cmd in inputs {
            let label: String = cmd.chars().take(40).collect();
            let (f, took) = bounded(cmd);
            within_limits(&f);
            // Generous for an unoptimised test build; `benches/facts.rs` measures release.
            assert!(took < Duration::from_secs(10), "{label}: {took:?}");
            // Something too large or deep is stated as truncated or unparsed, never as "nothing".
            assert!(
                !f.commands.is_empty()
                    || f.truncated
                    || f.scripts
                        .iter()
                        .any(|s| s.parse_error.is_some() || s.truncated),
                "{label}: no commands and no reason"
            );
        }
    }

    fn shell_quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', r"'\''"))
    }

    #[test]
    fn random_shell_like_text_never_panics() {
        // A deterministic xorshift generator over shell tokens: reproducible, no extra crate.
        const TOKENS: &[&str] = &[
            "ls",
            "rm",
            "-rf",
            "/",
            "~",
            "$HOME",
            "${X:-$(id)}",
            "$(",
            ")",
            "`",
            "'",
            "\"",
            "\\",
            "|",
            "||",
            "&&",
            ";",
            "&",
            ">",
            ">>",
            "<",
            "<<EOF\nx\nEOF\n",
            "<<<",
            "<(",
            ">(",
            "(",
            "{",
            "}",
            "*",
            "?",
            "[a-z]",
            "{a,b}",
            "$((1+",
            "))",
            "sh -c",
            "eval",
            "find . -exec",
            "{}",
            "+",
            "xargs",
            "sudo",
            "env A=1",
            "http://0x7f.1/",
            "$'\\x72m'",
            "#",
            "\n",
            " ",
            "=",
            "!",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let n = (next() % 24) as usize;
            let cmd: String = (0..n)
                .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(if next() % 3 == 0 { "" } else { " " });
            let (f, took) = bounded(cmd.clone());
            within_limits(&f);
            assert!(took < Duration::from_secs(2), "{cmd:?}: {took:?}");
        }
    }
}

#[cfg(test)]
mod params {
    use super::*;
    use serde_json::json;

    fn roles() -> ParamRoles {
        ParamRoles::from_data([&json!({"clawgate": {
            "tools": {"exec": {"command_params": ["command"], "env_params": ["env"]}},
            "mcp": {"command_argument_keys": ["command"], "url_argument_keys": ["url"],
                    "path_argument_pattern": "(?i)(^|_)(path|paths)$"}
        }})])
    }

    fn ctx() -> FactsContext {
        FactsContext::default().with_home("/home/dev")
    }

    #[test]
    fn a_url_where_a_path_is_taken_is_a_url() {
        let roles = ParamRoles::from_data([&json!({"clawgate": {"tools": {
            "pdf": {"path_params": ["pdf"]}
        }}})]);
        let of = |v: &str| {
            let action = Action::tool("pdf", Some(json!({ "pdf": v })));
            let f = facts_for(&action, &roles, &ctx());
            (
                f.urls.iter().map(|u| u.host.clone()).collect::<Vec<_>>(),
                f.paths.iter().map(|p| p.path.clone()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(of("http://10.0.0.5/x.pdf").0, ["10.0.0.5"]);
        assert!(of("http://10.0.0.5/x.pdf").1.is_empty());
        assert_eq!(of("docs/x.pdf").1.len(), 1);
        // A drive letter is no scheme.
        assert!(of("C://Users/dev/.ssh/id_rsa").0.is_empty());
        assert_eq!(of("C://Users/dev/.ssh/id_rsa").1.len(), 1);
    }

    #[test]
    fn a_dotted_catalog_key_names_a_nested_tool_parameter() {
        let roles = ParamRoles::from_data([&json!({"clawgate": {"tools": {
            "nodes": {"command_params": ["command", "params.command"]}
        }}})]);
        let mut action = Action::tool("nodes", None);
        action.params = Some(json!({
            "action": "invoke", "command": "system.run",
            "params": {"command": ["rm", "-rf", "~"]}
        }));
        let f = facts_for(&action, &roles, &ctx());
        assert!(
            f.commands
                .iter()
                .any(|c| c.argv == ["rm", "-rf", "/home/dev"] || c.argv == ["rm", "-rf", "~"]),
            "{:?}",
            f.commands
        );
        // A dotted key whose steps are not objects names nothing.
        action.params = Some(json!({"action": "invoke", "params": "x"}));
        let f = facts_for(&action, &roles, &ctx());
        assert!(f.commands.is_empty(), "{:?}", f.commands);
    }

    #[test]
    fn nested_mcp_arguments_count_by_their_own_key() {
        let mut action = Action::tool("read", None);
        action.kind = ActionKind::Mcp;
        action.params = Some(json!({
            "options": {"path": "~/.ssh/id_rsa"},
            "request": {"url": "http://169.254.169.254/"},
            "files": [{"paths": ["a", "~/.aws/credentials"]}],
            "steps": [{"command": "rm -rf ~"}],
            "path": "README.md"
        }));
        let f = facts_for(&action, &roles(), &ctx());
        let paths: Vec<(&str, &str)> = f
            .paths
            .iter()
            .map(|p| (p.path.as_str(), p.source.as_str()))
            .collect();
        assert!(
            paths.contains(&("/home/dev/.ssh/id_rsa", "params.options.path")),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("/home/dev/.aws/credentials", "params.files.0.paths")),
            "{paths:?}"
        );
        assert!(paths.iter().any(|p| p.1 == "params.path"), "{paths:?}");
        assert_eq!(f.urls[0].source, "params.request.url");
        assert_eq!(f.commands[0].name, "rm");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = json!({"path": "/deep"});
        for _ in 0..50 {
            deep = json!({ "x": deep });
        }
        let wide: serde_json::Map<String, Value> = (0..10_000)
            .map(|i| (format!("k{i}"), json!({"path": format!("/w/{i}")})))
            .collect();
        for params in [deep, Value::Object(wide)] {
            let mut action = Action::tool("t", None);
            action.kind = ActionKind::Mcp;
            action.params = Some(params);
            let f = facts_for(&action, &roles(), &ctx());
            assert!(f.paths.len() <= ctx().limits.max_paths);
        }
    }

    #[test]
    fn the_environment_a_call_sets_reaches_every_command_of_its_text() {
        let action = Action::tool(
            "exec",
            Some(json!({"command": "git log | head", "env": {"GIT_PAGER": "sh -c id"}})),
        );
        let f = facts_for(&action, &roles(), &ctx());
        // The commands of the text run with the variable; those parsed from its value
        // (`sh -c id`, and `id` inside it) are stated without it.
        let of = |name: &str| {
            f.commands
                .iter()
                .filter(|c| c.name == name)
                .map(|c| c.assignments.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(of("git"), [["GIT_PAGER"]], "{:?}", f.commands);
        assert_eq!(of("head"), [["GIT_PAGER"]], "{:?}", f.commands);
        assert_eq!(of("sh"), [Vec::<String>::new()], "{:?}", f.commands);
    }
}
