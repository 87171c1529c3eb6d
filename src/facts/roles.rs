//! Which parameters of a call are shell commands, paths, URLs or patches: read from the policy
//! bundle's own tool catalog (`data.clawgate.tools.<tool>.command_params`, `path_params`,
//! `url_params`, `patch_params`, `settings.unknown_tool`, `mcp.*_argument_*`), so the facts
//! stage and the policy agree on what each parameter is.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// The parameter names of one tool, by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolParams {
    pub command: Vec<String>,
    /// Input typed into a live terminal (`facts::typed`): text parameters, `hex` bytes and
    /// `keys` tokens, in the order they are sent.
    pub typed: Vec<String>,
    pub path: Vec<String>,
    pub url: Vec<String>,
    pub patch: Vec<String>,
    /// Objects of environment variables the command runs with (exec's `env`).
    pub env: Vec<String>,
    /// A dispatcher (`dispatches`: OpenClaw's `tool_call`): the parameters naming the tool
    /// it runs, and those holding that tool's arguments.
    pub dispatch_tool: Vec<String>,
    pub dispatch_args: Vec<String>,
    /// Parameters no key names but whose value is path-shaped: judged as paths the call
    /// names (access `argument`), not as the file it writes.
    pub shaped_path: Vec<String>,
}

/// The strings of a JSON array (none when it is not one).
fn strings_at(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl ToolParams {
    fn from_spec(spec: &Value) -> ToolParams {
        let names = |field: &str| strings_at(&spec[field]);
        ToolParams {
            command: names("command_params"),
            typed: names("typed_params"),
            path: names("path_params"),
            url: names("url_params"),
            patch: names("patch_params"),
            env: names("env_params"),
            dispatch_tool: strings_at(&spec["dispatches"]["tool_params"]),
            dispatch_args: strings_at(&spec["dispatches"]["argument_params"]),
            shaped_path: Vec::new(),
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
    /// Programs whose first operand is a pattern or program text, not a file
    /// (`data.clawgate.commands.<name>.pattern_operand`).
    pattern_operands: HashMap<String, PatternOperand>,
}

/// How a program's arguments divide into its pattern or program text (grep's regex, jq's
/// filter, sed's script, awk's program) and the files it reads, from its option grammar as
/// data. Only what is known is trusted: an option it does not list, a word whose value is
/// known only at run time, or an option that reads the program from a file (`sed -f`,
/// `jq -f`) anywhere in the argv (GNU getopt takes options after operands) leaves the program
/// unknown and every operand a file.
#[derive(Debug, Clone, Default)]
pub struct PatternOperand {
    /// Options that read the program from a file: the program is unknown.
    unless: HashSet<String>,
    /// Options whose value is program text (`sed -e SCRIPT`, `grep -e REGEX`): with one, the
    /// first operand is a file.
    program_values: HashSet<String>,
    /// Options followed by one value.
    values: HashSet<String>,
    /// Options followed by two values (`jq --arg NAME VALUE`).
    pairs: HashSet<String>,
    /// Options that take no value.
    flags: HashSet<String>,
    /// Words taken before the pattern (`yq eval`).
    subcommands: HashSet<String>,
    /// A lone operand may be a file (`yq FILE` reads it with the filter `.`).
    alone_is_file: bool,
}

/// The program text of one command, as its option grammar reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgramText {
    /// The index in argv of the operand that is program text, not a file, if one is.
    pub operand: Option<usize>,
    /// Every piece of program text, in order: option values and the operand.
    pub texts: Vec<String>,
}

impl PatternOperand {
    fn from_spec(spec: &Value) -> PatternOperand {
        let set =
            |field: &str| -> HashSet<String> { strings_at(&spec[field]).into_iter().collect() };
        PatternOperand {
            unless: set("unless"),
            program_values: set("program_values"),
            values: set("values"),
            pairs: set("pairs"),
            flags: set("flags"),
            subcommands: set("subcommands"),
            alone_is_file: spec["alone_is_file"].as_bool().unwrap_or(false),
        }
    }

    /// Whether the long option `name` (without `--`) names, or abbreviates as getopt
    /// allows (`--rege` for `--regexp`), one of `set`.
    fn long_in(set: &HashSet<String>, name: &str) -> bool {
        set.iter()
            .any(|o| o.strip_prefix("--").is_some_and(|o| o.starts_with(name)))
    }

    /// The program text of `words` (the program first; each with whether it is known only
    /// at run time), when the whole argv is understood.
    pub fn program(&self, words: &[(&str, bool)]) -> Option<ProgramText> {
        let mut out = ProgramText::default();
        let mut given = false;
        let mut operands = Vec::new();
        let mut subcommand = false;
        let mut after_dashdash = false;
        let mut i = 1;
        while i < words.len() {
            let (w, dynamic) = words[i];
            // A word known only at run time may be an option, or several words or none.
            if dynamic {
                return None;
            }
            i += 1;
            if after_dashdash || w == "-" || !w.starts_with('-') {
                if operands.is_empty() && !subcommand && self.subcommands.contains(w) {
                    subcommand = true;
                } else {
                    operands.push(i - 1);
                }
                continue;
            }
            if w == "--" {
                after_dashdash = true;
                continue;
            }
            if let Some(long) = w.strip_prefix("--") {
                let (name, attached) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                if Self::long_in(&self.unless, name) {
                    return None;
                }
                let full = format!("--{name}");
                if self.program_values.contains(&full) {
                    given = true;
                    match attached {
                        Some(v) => out.texts.push(v.to_string()),
                        None => {
                            let (v, dynamic) = *words.get(i)?;
                            if dynamic {
                                return None;
                            }
                            out.texts.push(v.to_string());
                            i += 1;
                        }
                    }
                    continue;
                }
                // An abbreviation of an option that gives program text is not understood.
                if Self::long_in(&self.program_values, name) {
                    return None;
                }
                if attached.is_some() {
                    // `--name=value` never takes the next word, whatever the option is.
                    continue;
                }
                if self.pairs.contains(&full) {
                    i += 2;
                } else if self.values.contains(&full) {
                    i += 1;
                } else if !self.flags.contains(&full) {
                    return None;
                }
                continue;
            }
            // A cluster of short options; a value option takes the rest of the cluster, or
            // the next word when it ends it.
            let letters: Vec<char> = w.chars().skip(1).collect();
            for (at, c) in letters.iter().enumerate() {
                let name = format!("-{c}");
                if self.unless.contains(&name) || self.pairs.contains(&name) {
                    return None;
                }
                let program = self.program_values.contains(&name);
                if program || self.values.contains(&name) {
                    let rest: String = letters[at + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        let (v, dynamic) = *words.get(i)?;
                        if dynamic {
                            return None;
                        }
                        i += 1;
                        v.to_string()
                    } else {
                        rest
                    };
                    if program {
                        given = true;
                        out.texts.push(value);
                    }
                    break;
                }
                if !self.flags.contains(&name) {
                    return None;
                }
            }
        }
        if !given {
            let first = *operands.first()?;
            if self.alone_is_file && operands.len() == 1 {
                return None;
            }
            out.operand = Some(first);
            out.texts.push(words[first].0.to_string());
        }
        Some(out)
    }
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
            // A list the document gives replaces the default; one it does not, keeps it.
            let strings = |v: &Value| v.is_array().then(|| strings_at(v));
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
            if let Some(commands) = c["commands"].as_object() {
                for (name, spec) in commands {
                    let grammar = match &spec["pattern_operand"] {
                        g @ Value::Object(_) => g,
                        // `"pattern_operand": "grep"`: egrep reads grep's options.
                        Value::String(like) => &commands
                            .get(like)
                            .map_or(Value::Null, |s| s["pattern_operand"].clone()),
                        _ => continue,
                    };
                    if grammar.is_object() {
                        roles
                            .pattern_operands
                            .insert(name.clone(), PatternOperand::from_spec(grammar));
                    }
                }
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

    /// Give the argument `name` the roles its own key (the last part of a dotted path) has:
    /// command and URL keys by name, path keys by pattern. Whether it has any.
    fn add_mcp_argument(&self, key: &str, name: &str, p: &mut ToolParams) -> bool {
        let mut any = false;
        for (has, list) in [
            (
                self.mcp_command_keys
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key)),
                &mut p.command,
            ),
            (
                self.mcp_url_keys
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key)),
                &mut p.url,
            ),
            (
                self.mcp_path_key.as_ref().is_some_and(|r| r.is_match(key)),
                &mut p.path,
            ),
        ] {
            if has {
                list.push(name.to_string());
                any = true;
            }
        }
        any
    }

    /// The roles of an MCP call's arguments, judged per key: those at the top by their
    /// name, and those nested in objects and arrays by their own key under their dotted
    /// path (`options.path`, `files.1.path`), since a path or URL one level down is as much
    /// a path or URL as one at the top. Returns the nested arguments that have a role, to be
    /// looked up under their dotted path beside the top-level ones, and whether some were
    /// too deep or too many to read (then the facts are not everything the call holds).
    pub fn mcp<'a>(
        &self,
        arguments: &'a serde_json::Map<String, Value>,
    ) -> (Vec<(String, &'a Value)>, ToolParams, bool) {
        let mut roles = ToolParams::default();
        let mut below = Vec::new();
        let mut cut = false;
        for (key, value) in arguments {
            if !self.add_mcp_argument(key, key, &mut roles) {
                add_by_shape(key, value, &mut roles);
            }
            cut |= lift(key, value, 1, &mut below);
        }
        let mut nested = Vec::new();
        for (dotted, value) in below {
            let key = dotted.rsplit('.').next().unwrap_or_default();
            if self.add_mcp_argument(key, &dotted, &mut roles)
                || add_by_shape(&dotted, value, &mut roles)
            {
                nested.push((dotted, value));
            }
        }
        (nested, roles, cut)
    }

    /// Give the parameters `spec` names in no role the role their value's shape has.
    pub fn roles_by_shape(&self, params: &serde_json::Map<String, Value>, spec: &mut ToolParams) {
        for (key, value) in params {
            let named = [
                &spec.command,
                &spec.typed,
                &spec.path,
                &spec.url,
                &spec.patch,
                &spec.env,
                &spec.dispatch_tool,
                &spec.dispatch_args,
                &spec.shaped_path,
            ]
            .iter()
            .any(|list| list.contains(key));
            if !named {
                add_by_shape(key, value, spec);
            }
        }
    }

    /// The call a dispatcher tool makes (`tool_call {name, arguments}`), when the action is
    /// one and names a tool: it is judged as that call.
    pub fn dispatched(&self, action: &crate::action::Action) -> Option<crate::action::Action> {
        if action.kind != crate::action::ActionKind::Tool {
            return None;
        }
        let spec = self.tool(action.tool.as_deref()?);
        let params = action.params.as_ref()?.as_object()?;
        let name = spec.dispatch_tool.iter().find_map(|k| {
            params
                .get(k)
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
        })?;
        let args = spec
            .dispatch_args
            .iter()
            .find_map(|k| params.get(k).filter(|v| v.is_object()))
            .cloned()
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        Some(crate::action::Action::tool(name, Some(args)))
    }

    /// The option grammar of a program whose first operand is a pattern, when the bundle
    /// has one.
    pub fn pattern_operand(&self, program: &str) -> Option<&PatternOperand> {
        self.pattern_operands.get(program)
    }

    /// Whether a tool name is an OpenClaw bundle-mcp tool (`<server>__<tool>`) the catalog
    /// does not list: its arguments are read as MCP arguments.
    pub fn is_bundle_mcp(&self, name: &str) -> bool {
        let low = name.to_lowercase();
        let name = self.aliases.get(&low).unwrap_or(&low);
        !self.tools.contains_key(name) && name.contains("__")
    }
}

/// Give an argument whose key says nothing the role its value's shape does: servers name
/// their arguments freely (`pathname`, `location`, `href`, `q`), and a value that is an
/// absolute, home or dot-relative path, or a URL with a scheme, is one whatever its key.
/// Whether it has one.
fn add_by_shape(name: &str, value: &Value, p: &mut ToolParams) -> bool {
    let texts: Vec<&str> = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return false,
    };
    let url = texts.iter().any(|t| looks_like_url(t));
    let path = texts.iter().any(|t| looks_like_path(t));
    if url {
        p.url.push(name.to_string());
    }
    if path {
        p.shaped_path.push(name.to_string());
    }
    url || path
}

/// One path-shaped word: prose that mentions a path (a file's content, a message) is not
/// one.
pub(super) fn looks_like_path(text: &str) -> bool {
    let t = text.trim();
    !t.contains(char::is_whitespace)
        && (t.starts_with('/')
            || t == "~"
            || t.starts_with("~/")
            || t.starts_with("./")
            || t.starts_with("../"))
}

pub(super) fn looks_like_url(text: &str) -> bool {
    let t = text.trim();
    !t.contains(char::is_whitespace)
        && t.find("://")
            .is_some_and(|at| at > 0 && t[..at].chars().all(super::url::is_scheme_char))
}

/// Nested arguments go this deep, and no more of them are read; past that the facts say
/// `truncated` (a path five levels down is as much a path, and the default bundle holds
/// what it could not read).
const MAX_NESTING: usize = 4;
const MAX_LIFTED: usize = 256;

/// Every value below `value` (not `value` itself) under its dotted path; whether anything
/// below was left unread (deeper than [`MAX_NESTING`], or past [`MAX_LIFTED`] values).
fn lift<'a>(
    path: &str,
    value: &'a Value,
    depth: usize,
    out: &mut Vec<(String, &'a Value)>,
) -> bool {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(m) => m.iter().map(|(k, v)| (format!("{path}.{k}"), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_object() || v.is_array())
            .map(|(i, v)| (format!("{path}.{i}"), v))
            .collect(),
        _ => return false,
    };
    if children.is_empty() {
        return false;
    }
    if depth > MAX_NESTING {
        return true;
    }
    let mut cut = false;
    for (child, v) in children {
        if out.len() >= MAX_LIFTED {
            return true;
        }
        out.push((child.clone(), v));
        cut |= lift(&child, v, depth + 1, out);
    }
    cut
}
