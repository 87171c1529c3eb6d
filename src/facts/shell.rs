//! Shell facts: a command string parsed with a real shell grammar (`brush-parser`, a
//! bash/POSIX parser), turned into the simple commands it runs.
//!
//! Each simple command is stated with its program, its argv after quote removal (every word
//! marked literal or not), its redirections and how it is joined to its neighbours. Commands
//! inside `$(…)`, backticks, `<(…)`, `sh -c STRING`, `eval STRING` and scripts fed to a shell on
//! stdin are parsed too, to a bounded depth; wrappers (`sudo`, `env`, `timeout`, `xargs`,
//! `find -exec`, …) are unwrapped to the command they run, and stay commands themselves.
//! Nothing here decides: policy reads these facts.

use std::collections::HashMap;
use std::sync::LazyLock;

use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use serde::Serialize;

use super::Limits;
use super::path::{PathBase, PathFact};
use super::url::UrlFact;

/// One parsed command string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScriptFact {
    /// Where the text came from: `params.command`, `command 3 (sh -c)`, ...
    pub source: String,
    pub bytes: usize,
    /// The text does not parse; its commands are unknown (never an empty list by accident).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// The text of a script that does not parse (its first 4 KiB), for rules about text in
    /// another language (PowerShell given to a POSIX shell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A limit (size, depth, number of commands) stopped the parse part way; the commands
    /// listed are not all the text runs.
    pub truncated: bool,
    /// How the script's commands are joined: `pipe`, `and`, `or`, `sequence`, `background`,
    /// `subshell`.
    pub joins: Vec<&'static str>,
    /// Typed input that leaves its line for later input to finish (`facts::typed`): what the
    /// shell runs is not known from this call alone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unfinished_line: bool,
}

/// A word that is not plain literal text after quote removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DynamicWord {
    /// Index in `argv`.
    pub index: usize,
    /// `variable`, `command_substitution`, `process_substitution`, `arithmetic`, `glob`,
    /// `brace`, `tilde_user`.
    pub kinds: Vec<&'static str>,
    /// For a variable that holds what another command printed (a `for` list given by a
    /// command substitution, `… | while read f`): that command's id, the first of the
    /// substitution or of the pipeline stage before the loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names_from: Option<usize>,
}

/// A redirection of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedirectFact {
    pub fd: i32,
    /// As written: `>`, `>>`, `<`, `<>`, `>|`, `<&`, `>&`, `&>`, `&>>`, `<<`, `<<<`.
    pub op: &'static str,
    /// `read`, `write`, `append`, `read_write`, `duplicate`.
    pub mode: &'static str,
    /// The target after quote removal (a normalised path for files).
    pub target: String,
    pub literal: bool,
}

/// Code given inline to an interpreter (`python -c`, `node -e`, an awk program, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineCode {
    pub language: &'static str,
    pub text: String,
    /// For awk: `system`, `getline`, `pipe`, `redirect`, `environ`, `load`, `include` when
    /// the program uses them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<&'static str>,
}

/// One simple command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CommandFact {
    /// Index in `facts.commands`.
    pub id: usize,
    /// Index in `facts.scripts` of the script it belongs to.
    pub script: usize,
    /// The command whose word (or wrapper) holds this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<usize>,
    /// How it is reached: `script`, `substitution`, `process_substitution`, `shell_c`,
    /// `eval`, `stdin`, `wrapper`, `function`.
    pub via: &'static str,
    /// Nesting depth (0 for the commands of the tool's own text).
    pub depth: usize,
    /// The program word after quote removal ("" for a bare assignment).
    pub program: String,
    /// The basename of the program.
    pub name: String,
    pub argv: Vec<String>,
    /// Every word is plain literal text.
    pub literal: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dynamic: Vec<DynamicWord>,
    /// Option words before `--`: `--name` for `--name=value`, else the word.
    pub flags: Vec<String>,
    /// The letters of single-dash option words (`-rf` gives `r`, `f`).
    pub short: Vec<String>,
    /// Non-option words (and everything after `--`).
    pub operands: Vec<String>,
    /// Operands and `--opt=value` values as normalised paths.
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<RedirectFact>,
    /// Names of `NAME=value` assignments before the program.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<String>,
    /// Wrappers around it, outermost first (`sudo`, `timeout`, `xargs`, `find`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wrappers: Vec<String>,
    /// For a wrapper: the id of the command it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<usize>,
    /// For a shell or `eval`: the index in `facts.scripts` of the code it runs (`sh -c`,
    /// `eval`, a here-document or piped `echo` on stdin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_script: Option<usize>,
    /// `first`, `pipe`, `and`, `or`, `sequence`.
    pub joined_by: &'static str,
    pub background: bool,
    pub subshell: bool,
    /// Commands of one pipeline share its number; `pipe_index` is the position in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipe_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<InlineCode>,
    /// The pattern or program text of grep, rg, jq, yq, sed and awk (the first operand, or
    /// the values of `-e`), when their option grammar (`commands.<name>.pattern_operand`)
    /// reads the whole argv; that operand is then not stated as a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program_text: Option<Vec<String>>,
    /// Command substitutions the shell does not run where they are written but when it
    /// evaluates the word as a variable name or arithmetic: an array subscript in quoted
    /// text (`test -v 'a[$(id)]'`, `printf -v 'a[$(id)]'`, `x='a[$(id)]'; echo $((x))`).
    /// Each subscript's commands are parsed as substitutions of this command.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evaluated_subscripts: Vec<String>,
    /// The shell function whose body holds this command (`f() { …; }`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The here-document or here-string it reads, kept only so that a shell it is piped
    /// into (`cat <<EOF | sh`) parses what it runs; the redirection itself is a fact.
    #[serde(skip)]
    pub stdin_text: Option<String>,
}

/// find's tests whose value is a name or path pattern.
const FIND_NAME_TESTS: [&str; 10] = [
    "-name",
    "-iname",
    "-path",
    "-ipath",
    "-wholename",
    "-iwholename",
    "-regex",
    "-iregex",
    "-lname",
    "-ilname",
];

/// Whether what a `find` selects is read or handed on: it runs a command on it, deletes or
/// writes it out, or its output goes to a pipe, a substitution or a file. A `find` that
/// only prints names (`find . -name .env`) touches no file's contents.
fn find_output_used(fact: &CommandFact) -> bool {
    const ACTIONS: [&str; 9] = [
        "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls",
    ];
    fact.flags.iter().any(|f| ACTIONS.contains(&f.as_str()))
        || fact.pipeline.is_some()
        || matches!(fact.via, "substitution" | "process_substitution")
        || fact.parent.is_some()
        || fact.redirects.iter().any(|r| r.mode != "read")
}

/// The one variable a `read` sets (`read -r f`), skipping its options and their values.
fn read_target(argv: &[String]) -> Option<String> {
    let mut names = Vec::new();
    let mut skip = false;
    for w in argv.iter().skip(1) {
        if skip {
            skip = false;
        } else if w.len() > 1 && w.starts_with('-') {
            skip = w.ends_with(['a', 'd', 'i', 'n', 'N', 'p', 't', 'u']);
            if w.contains('a') {
                return None;
            }
        } else {
            names.push(w);
        }
    }
    match names.as_slice() {
        [one] if one.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Some(one.to_string())
        }
        _ => None,
    }
}

/// The literal default of `${NAME:-word}`, `${NAME-word}`, `${NAME:=word}` or `${NAME=word}`
/// when NAME is not bound in the script.
fn default_of_unset(raw: &str, vars: &HashMap<String, Bound>) -> Option<String> {
    let inner = raw.strip_prefix("${")?.strip_suffix('}')?;
    let end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|&i| i > 0)?;
    let (name, rest) = inner.split_at(end);
    let default = [":-", ":=", "-", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op))?;
    let literal = !default.contains(['$', '`', '\\', '"', '\'', '{', '}']);
    (literal && !vars.contains_key(name) && name != "HOME").then(|| default.to_string())
}

/// The absolute path written against a single-dash option cluster (`-f/etc/x`,
/// `-xzf/tmp/a.tgz`): the letters before it are the options.
fn attached_path(word: &str) -> Option<&str> {
    if word.starts_with("--") {
        return None;
    }
    let at = word.find('/')?;
    (at >= 2 && word[1..at].bytes().all(|b| b.is_ascii_alphanumeric())).then(|| &word[at..])
}

/// Where the facts of commands go, with the budget they may use.
pub(super) struct Sink<'a> {
    pub scripts: &'a mut Vec<ScriptFact>,
    pub commands: &'a mut Vec<CommandFact>,
    pub paths: &'a mut Vec<PathFact>,
    pub urls: &'a mut Vec<UrlFact>,
    pub limits: &'a Limits,
    /// Which programs' first operand is a pattern rather than a file.
    pub roles: &'a super::ParamRoles,
    pub pipelines: usize,
    pub truncated: bool,
    /// Bytes handed to the parser so far for this action.
    pub parsed_bytes: usize,
}

/// Parse one command string (from a tool parameter) into the sink.
pub(super) fn add_script(sink: &mut Sink, text: &str, source: String, base: &PathBase) {
    add_script_with_env(sink, text, source, base, &[]);
}

/// Parse one command string that runs with variables the call sets beside it (exec's
/// `env`): `cat $F` with `env: {F: "~/.ssh/id_rsa"}` reads that file.
pub(super) fn add_script_with_env(
    sink: &mut Sink,
    text: &str,
    source: String,
    base: &PathBase,
    env: &[(String, String)],
) {
    let vars = env
        .iter()
        .map(|(name, value)| {
            let bound = Bound {
                text: value.clone(),
                pattern: None,
                names_from: None,
            };
            (name.clone(), bound)
        })
        .collect();
    let mut walker = Walker {
        sink,
        cwd: base.cwd.clone(),
        home: base.home.clone(),
        vars,
        subscripts: Vec::new(),
        piped_from: None,
    };
    walker.script(text, source, &Scope::top());
    // Words outside any simple command (`for` lists, `case` words).
    for (owner, text, scope) in std::mem::take(&mut walker.subscripts) {
        walker.evaluate_subscript(owner, text, &scope);
    }
}

/// State text that is not parsed, and why (typed input that edits its own line).
pub(super) fn add_unparsed(sink: &mut Sink, text: &str, source: String, reason: String) {
    if sink.scripts.len() >= sink.limits.max_scripts {
        sink.truncated = true;
        return;
    }
    sink.scripts.push(ScriptFact {
        source,
        bytes: text.len(),
        parse_error: Some(reason),
        text: Some(unparsed_head(text)),
        ..Default::default()
    });
}

/// The first 4 KiB of text that was not parsed (on a character boundary), kept in its fact.
fn unparsed_head(text: &str) -> String {
    let mut cut = text.len().min(4096);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

/// Where the commands being walked sit.
#[derive(Debug, Clone)]
struct Scope {
    script: usize,
    parent: Option<usize>,
    via: &'static str,
    depth: usize,
    wrappers: Vec<String>,
    background: bool,
    subshell: bool,
    /// Redirections of an enclosing compound command (`{ …; } > f`) apply to each command.
    redirects: Vec<RedirectFact>,
    /// The shell function whose body this is.
    function: Option<String>,
}

impl Scope {
    fn top() -> Scope {
        Scope {
            script: 0,
            parent: None,
            via: "script",
            depth: 0,
            wrappers: Vec::new(),
            background: false,
            subshell: false,
            redirects: Vec::new(),
            function: None,
        }
    }
}

/// One word after quote removal.
#[derive(Debug, Clone, Default)]
struct WordOut {
    text: String,
    /// The glob form: quoted metacharacters escaped, unquoted ones live.
    pattern: String,
    kinds: Vec<&'static str>,
    /// The text of its literal pieces (quoted, escaped or plain text, and variables known
    /// to hold literal text), with a space for each expansion: where a `$(` here is text
    /// the shell does not run now, but may run later (`test -v 'a[$(id)]'`).
    inert: String,
    /// A variable in it holds what this command printed (`Bound::names_from`).
    names_from: Option<usize>,
}

impl WordOut {
    fn kind(&mut self, k: &'static str) {
        if !self.kinds.contains(&k) {
            self.kinds.push(k);
        }
    }
    fn push(&mut self, s: &str, quoted: bool) {
        self.text.push_str(s);
        self.inert.push_str(s);
        if quoted {
            self.pattern.push_str(&super::glob::escape(s));
        } else {
            self.pattern.push_str(s);
        }
    }

    /// An expansion, kept as written in the text.
    fn push_expansion(&mut self, raw: &str) {
        self.text.push_str(raw);
        self.pattern.push_str(&super::glob::escape(raw));
        self.inert.push(' ');
    }
}

struct Walker<'s, 'a> {
    sink: &'s mut Sink<'a>,
    /// The working directory as far as the text shows (`cd` with a literal target moves it).
    cwd: String,
    home: String,
    /// Variables assigned a literal value earlier in the text, or bound by a `for` loop.
    vars: HashMap<String, Bound>,
    /// Array subscripts holding a command substitution in inert text, with the command
    /// whose word holds them (`CommandFact::evaluated_subscripts`), until that command is
    /// stated.
    subscripts: Vec<(usize, String, Scope)>,
    /// The first command of the pipeline stage whose output the current stage reads.
    piped_from: Option<usize>,
}

/// What a shell variable is known to hold.
#[derive(Debug, Clone)]
struct Bound {
    text: String,
    /// A `for` list's unquoted glob (`for f in ~/.ssh/*`): the variable holds a name it
    /// matches, so the glob stays live wherever the variable is expanded.
    pattern: Option<String>,
    /// The variable holds a line or word this command printed, not known text: it expands
    /// as an unknown variable, with that command named (`DynamicWord::names_from`).
    names_from: Option<usize>,
}

impl Bound {
    /// What a command printed, held by variable `name`: unknown text, that command named.
    fn printed_by(name: &str, command: usize) -> Bound {
        Bound {
            text: format!("${name}"),
            pattern: None,
            names_from: Some(command),
        }
    }
}

/// A `for` body is walked once per value of its list (so each value is judged where the
/// variable is used), for at most this many values; a longer list leaves the facts
/// `truncated`.
const MAX_LOOP_VALUES: usize = 64;

pub(super) fn parser_options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions {
        // Tilde expansion is done here, with the configured home.
        tilde_expansion_at_word_start: true,
        ..Default::default()
    }
}

/// A brush parse whose panic is a parse failure (brush unwraps in places: an fd number
/// that overflows an int, the index of `~11111111111`; found by libFuzzer), never the end
/// of the request.
pub(super) fn unpanicked<T, E: std::fmt::Display>(
    parse: impl FnOnce() -> Result<T, E>,
) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse))
        .map_err(|_| "the shell parser failed on this text".to_string())?
        .map_err(|e| e.to_string())
}

/// The file a curl write-out format sends its output to (`-w '%output{~/.bashrc}…'`,
/// `%output{>>file}` appends): a path the command writes, named by no operand.
fn write_out_file(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("%output{")?;
    let (target, _) = rest.split_once('}')?;
    let target = target.strip_prefix(">>").unwrap_or(target);
    (!target.is_empty()).then_some(target)
}

/// The words `echo` prints: its leading options (`-n`, `-e`, `-E` and their clusters) are
/// not printed, any other word is (`echo -rf /` prints `-rf /`).
fn echo_words(argv: &[String]) -> &[String] {
    let options = argv
        .iter()
        .skip(1)
        .take_while(|a| {
            a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| "neE".contains(c))
        })
        .count();
    argv.get(1 + options..).unwrap_or_default()
}

/// The argvs xargs builds for `command` from the text it reads: one with the words
/// appended, or with `-I R`/`-i`/`--replace` one per line, R replaced by the line. At most
/// 64 words or 16 lines are taken (the rest of a longer input is not judged).
fn xargs_words(options: &[String], command: &[String], text: &str) -> Vec<Vec<String>> {
    let mut replace: Option<String> = None;
    let mut options = options.iter().skip(1);
    while let Some(o) = options.next() {
        if o == "-I" {
            replace = options.next().cloned();
        } else if let Some(r) = o.strip_prefix("-I") {
            replace = Some(r.to_string());
        } else if o == "-i" || o == "--replace" {
            replace = Some("{}".into());
        } else if let Some(r) = o
            .strip_prefix("--replace=")
            .or_else(|| o.strip_prefix("-i"))
        {
            replace = Some(if r.is_empty() {
                "{}".into()
            } else {
                r.to_string()
            });
        }
    }
    match replace.filter(|r| !r.is_empty()) {
        Some(r) => text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .take(16)
            .map(|line| command.iter().map(|w| w.replace(&r, line)).collect())
            .collect(),
        None => vec![
            command
                .iter()
                .cloned()
                .chain(text.split_whitespace().take(64).map(String::from))
                .collect(),
        ],
    }
}

/// Where an array subscript holding a command substitution starts in inert text
/// (`a[$(id)]`, `x+a[`id`]`): bash expands the subscript when it evaluates the text as a
/// variable name (`test -v`, `printf -v`, `read`, a nameref) or as arithmetic (`$((x))` of a
/// variable holding it), so text that runs nothing where it is written runs it there.
/// `$((` in a subscript is arithmetic, not a command.
fn subscript_substitution(inert: &str) -> Option<usize> {
    static SUBSCRIPT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*\[[^\]]*(?:\$\([^(]|`)")
            .expect("subscript pattern")
    });
    SUBSCRIPT.find(inert).map(|m| m.start())
}

/// Whether ten or more digits run straight into `<` or `>` (`99999999999>x`): brush reads
/// them as a file descriptor and panics when they overflow an int (found by libFuzzer).
fn oversized_fd_number(text: &str) -> bool {
    let mut digits = 0usize;
    for b in text.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'<' | b'>' if digits >= 10 => return true,
            _ => digits = 0,
        }
    }
    false
}

/// Whether a `<<` here-document's delimiter is made of quotes only (`<<''`, `<<""`,
/// `<<- $''`) or missing (`<<` then the end, a newline or an operator). brush's parser never
/// returns on some of the first (`cat <<'' #`) and ran out of memory on one of the second
/// (`$(<<` then tabs), both found by libFuzzer; no real script needs either (bash refuses the
/// second), so such text is not parsed (and is held).
/// Lexical on purpose, like [`nesting`]: it may also match inside quotes, which only makes
/// the command unparsed.
fn empty_heredoc_delimiter(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("<<") {
        // A run of `<`: exactly three is a here-string; any other run of two or more holds
        // a `<<` whose delimiter follows the run (`<<<<<''` is `<<<` then `<<''`).
        let run_start = i + at;
        let mut j = run_start;
        while bytes.get(j) == Some(&b'<') {
            j += 1;
        }
        i = j;
        if j - run_start == 3 {
            continue;
        }
        if bytes.get(j) == Some(&b'-') {
            j += 1;
        }
        while bytes.get(j).is_some_and(|b| *b == b' ' || *b == b'\t') {
            j += 1;
        }
        while bytes
            .get(j)
            .is_some_and(|b| matches!(b, b'\'' | b'"' | b'$' | b'\\'))
        {
            j += 1;
        }
        let ends = bytes.get(j).is_none_or(|b| {
            b.is_ascii_whitespace()
                || matches!(b, b';' | b'|' | b'&' | b'<' | b'>' | b'#' | b'(' | b')')
        });
        // Quotes and nothing else (`<<''`), or no word at all before the end, a newline or an
        // operator (`$(<<` then tabs): brush ran out of memory on the latter (libFuzzer).
        if ends {
            return true;
        }
    }
    false
}

/// Whether the text holds a `<<` here-document with no line after it (so no body), or one
/// and more `(` than `)`: brush allocated gigabytes on such here-documents inside `$(…)`
/// (`$(<<  O `, `"$(<<\t\t\x0f)"`, found by libFuzzer). A here-document needs a body on the
/// lines that follow, and bash refuses an unclosed bracket, so such text is not parsed (and
/// is held). Lexical, like [`nesting`]; a `<<` followed by a digit or `=` is an arithmetic
/// shift (`$((1 << 2))`), not a here-document. A cheap refusal of the shapes found so far:
/// the bound on what brush may do with the rest is the parser worker's
/// ([`super::parser_worker`]).
fn unfinished_heredoc(text: &str) -> bool {
    let mut heredocs = text.match_indices("<<").filter(|(at, _)| {
        let after = text[at + 2..].trim_start_matches(['-', ' ', '\t']);
        !text[*at..].starts_with("<<<")
            && !text[..*at].ends_with('<')
            && !after.starts_with(|c: char| c.is_ascii_digit() || c == '=')
    });
    let unclosed = text.matches('(').count() > text.matches(')').count();
    heredocs.any(|(at, _)| unclosed || !text[at..].contains('\n'))
}

/// Deepest bracket nesting in the raw text (quotes ignored: this only bounds the parser's
/// recursion, it reads nothing).
fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'(' | b'{' | b'`' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

impl Walker<'_, '_> {
    fn base(&self) -> PathBase {
        PathBase {
            home: self.home.clone(),
            cwd: self.cwd.clone(),
        }
    }

    fn script(&mut self, text: &str, source: String, scope: &Scope) {
        let index = self.sink.scripts.len();
        let mut fact = ScriptFact {
            source,
            bytes: text.len(),
            ..Default::default()
        };
        let limits = self.sink.limits;
        if self.sink.scripts.len() >= limits.max_scripts {
            self.sink.truncated = true;
            return;
        }
        // Text past a limit, or of a shape brush hangs or backtracks on, is not parsed.
        let refused = if scope.depth > limits.max_depth {
            Some(format!(
                "nested more than {} levels deep; not parsed",
                limits.max_depth
            ))
        } else if self.sink.parsed_bytes + text.len() > limits.max_total_bytes {
            Some(format!(
                "more than {} bytes of shell text in one action; not parsed",
                limits.max_total_bytes
            ))
        } else if text.len() > limits.max_script_bytes {
            Some(format!(
                "{} bytes is longer than the {} parsed; not parsed",
                text.len(),
                limits.max_script_bytes
            ))
        } else if oversized_fd_number(text) {
            Some("a redirection's file descriptor number is too large; not parsed".to_string())
        } else if empty_heredoc_delimiter(text) {
            Some("a here-document with an empty or missing delimiter; not parsed".to_string())
        } else if unfinished_heredoc(text) {
            Some(
                "a here-document without a body or inside an unclosed bracket; not parsed"
                    .to_string(),
            )
        } else if nesting(text) > limits.max_nesting {
            Some(format!(
                "brackets nested more than {} deep; not parsed",
                limits.max_nesting
            ))
        } else {
            None
        };
        if refused.is_some() {
            fact.truncated = true;
            fact.parse_error = refused;
        }
        self.sink.scripts.push(fact);
        if self.sink.scripts[index].parse_error.is_some() {
            return;
        }
        self.sink.parsed_bytes += text.len();
        match super::parser_worker::parse(text, limits.parse_budget()) {
            Ok(program) => {
                let scope = Scope {
                    script: index,
                    ..scope.clone()
                };
                let before = self.sink.truncated;
                self.sink.truncated = false;
                for complete in &program.complete_commands {
                    self.compound_list(complete, &scope);
                }
                if self.sink.truncated {
                    self.sink.scripts[index].truncated = true;
                }
                self.sink.truncated |= before;
            }
            Err(e) => {
                let script = &mut self.sink.scripts[index];
                script.parse_error = Some(e);
                script.text = Some(unparsed_head(text));
            }
        }
    }

    fn join(&mut self, script: usize, how: &'static str) {
        if let Some(s) = self.sink.scripts.get_mut(script)
            && !s.joins.contains(&how)
        {
            s.joins.push(how);
        }
    }

    fn compound_list(&mut self, list: &ast::CompoundList, scope: &Scope) {
        let n = list.0.len();
        for (i, ast::CompoundListItem(and_or, sep)) in list.0.iter().enumerate() {
            let background = matches!(sep, ast::SeparatorOperator::Async);
            if background {
                self.join(scope.script, "background");
            } else if i + 1 < n {
                self.join(scope.script, "sequence");
            }
            let scope = Scope {
                background: scope.background || background,
                ..scope.clone()
            };
            let join = if i == 0 { "first" } else { "sequence" };
            self.pipeline(&and_or.first, &scope, join);
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(p) => {
                        self.join(scope.script, "and");
                        self.pipeline(p, &scope, "and");
                    }
                    ast::AndOr::Or(p) => {
                        self.join(scope.script, "or");
                        self.pipeline(p, &scope, "or");
                    }
                }
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline, scope: &Scope, join: &'static str) {
        let id = (p.seq.len() > 1).then(|| {
            self.sink.pipelines += 1;
            self.join(scope.script, "pipe");
            self.sink.pipelines
        });
        let outer = self.piped_from;
        let mut stage_start = None;
        for (i, cmd) in p.seq.iter().enumerate() {
            let join = if i == 0 { join } else { "pipe" };
            // What the stage before printed reaches this stage's `read` (`… | while read f`).
            self.piped_from = if i == 0 { outer } else { stage_start };
            stage_start = Some(self.sink.commands.len());
            self.command(cmd, scope, join, id.map(|id| (id, i)));
        }
        self.piped_from = outer;
    }

    fn command(
        &mut self,
        cmd: &ast::Command,
        scope: &Scope,
        join: &'static str,
        pipe: Option<(usize, usize)>,
    ) {
        match cmd {
            ast::Command::Simple(simple) => self.simple(simple, scope, join, pipe),
            ast::Command::Compound(compound, redirects) => {
                let mut scope = scope.clone();
                if let Some(list) = redirects {
                    for r in &list.0 {
                        if let Some(fact) = self.redirect(r, &scope, None) {
                            scope.redirects.push(fact);
                        }
                    }
                }
                self.compound(compound, &scope, join, pipe);
            }
            ast::Command::Function(def) => {
                // The body runs only when called, but a definition is there to be called.
                let scope = Scope {
                    via: "function",
                    function: Some(def.fname.value.clone()),
                    ..scope.clone()
                };
                self.compound(&def.body.0, &scope, join, pipe);
            }
            ast::Command::ExtendedTest(test, _) => {
                let id = self.reserve();
                let mut words = Vec::new();
                test_words(&test.expr, &mut words);
                let mut argv = vec!["[[".to_string()];
                let mut fact = self.new_command(id, scope, join, pipe);
                for w in words {
                    for out in self.word(&w.value, id, scope) {
                        if !out.kinds.is_empty() {
                            fact.dynamic.push(DynamicWord {
                                index: argv.len(),
                                kinds: out.kinds.clone(),
                                names_from: out.names_from,
                            });
                        }
                        argv.push(out.text);
                    }
                }
                fact.program = "[[".into();
                fact.name = "[[".into();
                fact.literal = fact.dynamic.is_empty();
                fact.argv = argv;
                let subscripts = self.own_subscripts(&mut fact);
                self.sink.commands[id] = fact;
                for text in subscripts {
                    self.substitutions_in(&text, id, scope);
                }
            }
        }
    }

    fn compound(
        &mut self,
        c: &ast::CompoundCommand,
        scope: &Scope,
        join: &'static str,
        pipe: Option<(usize, usize)>,
    ) {
        let _ = (join, pipe);
        match c {
            ast::CompoundCommand::BraceGroup(g) => self.compound_list(&g.list, scope),
            ast::CompoundCommand::Subshell(s) => {
                self.join(scope.script, "subshell");
                let saved = (self.cwd.clone(), self.vars.clone());
                let scope = Scope {
                    subshell: true,
                    ..scope.clone()
                };
                self.compound_list(&s.list, &scope);
                (self.cwd, self.vars) = saved;
            }
            ast::CompoundCommand::ForClause(f) => {
                let first_new = self.sink.commands.len();
                let mut values = Vec::new();
                for w in f.values.iter().flatten() {
                    values.extend(self.word(&w.value, usize::MAX, scope));
                }
                // A list that is one command substitution (`for f in $(git ls-files)`): the
                // variable holds words that command printed, which the rules judge by it.
                if let [one] = values.as_slice()
                    && one.kinds == ["command_substitution"]
                    && let Some(source) = (first_new..self.sink.commands.len()).find(|&i| {
                        let c = &self.sink.commands[i];
                        c.via == "substitution" && c.pipe_index.unwrap_or(0) == 0
                    })
                {
                    let bound = Bound::printed_by(&f.variable_name, source);
                    self.vars.insert(f.variable_name.clone(), bound);
                    self.compound_list(&f.body.list, scope);
                    return;
                }
                // Values the text spells out (globs and braces included) are bound one by
                // one: `for f in README.md ~/.ssh/id_rsa; do cat "$f"; done` reads both.
                // A list the text does not spell out leaves the variable unknown.
                let spelled = f.values.is_some()
                    && !values.is_empty()
                    && values
                        .iter()
                        .all(|v| v.kinds.iter().all(|k| matches!(*k, "glob" | "brace")));
                if !spelled {
                    self.vars.remove(&f.variable_name);
                    self.compound_list(&f.body.list, scope);
                    return;
                }
                if values.len() > MAX_LOOP_VALUES {
                    self.sink.truncated = true;
                    values.truncate(MAX_LOOP_VALUES);
                }
                for v in values {
                    let glob = v.kinds.contains(&"glob");
                    let bound = Bound {
                        pattern: glob.then_some(v.pattern),
                        text: v.text,
                        names_from: None,
                    };
                    self.vars.insert(f.variable_name.clone(), bound);
                    self.compound_list(&f.body.list, scope);
                }
            }
            ast::CompoundCommand::CaseClause(c) => {
                self.word(&c.value.value, usize::MAX, scope);
                for item in &c.cases {
                    if let Some(list) = &item.cmd {
                        self.compound_list(list, scope);
                    }
                }
            }
            ast::CompoundCommand::IfClause(i) => {
                self.compound_list(&i.condition, scope);
                self.compound_list(&i.then, scope);
                for e in i.elses.iter().flatten() {
                    if let Some(cond) = &e.condition {
                        self.compound_list(cond, scope);
                    }
                    self.compound_list(&e.body, scope);
                }
            }
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                self.compound_list(&w.0, scope);
                self.compound_list(&w.1.list, scope);
            }
            ast::CompoundCommand::Arithmetic(a) => {
                self.substitutions_in(&a.expr.value, usize::MAX, scope);
            }
            ast::CompoundCommand::ArithmeticForClause(f) => {
                self.compound_list(&f.body.list, scope);
            }
            ast::CompoundCommand::Coprocess(c) => {
                self.command(&c.body, scope, "background", None);
            }
        }
    }

    /// Reserve the next command id (its fact is filled in once its words are known, since
    /// commands nested in those words come after it).
    fn reserve(&mut self) -> usize {
        let id = self.sink.commands.len();
        self.sink.commands.push(CommandFact::default());
        id
    }

    fn budget_left(&mut self) -> bool {
        if self.sink.commands.len() >= self.sink.limits.max_commands {
            self.sink.truncated = true;
            false
        } else {
            true
        }
    }

    fn new_command(
        &self,
        id: usize,
        scope: &Scope,
        join: &'static str,
        pipe: Option<(usize, usize)>,
    ) -> CommandFact {
        CommandFact {
            id,
            script: scope.script,
            parent: scope.parent,
            via: scope.via,
            depth: scope.depth,
            wrappers: scope.wrappers.clone(),
            joined_by: join,
            background: scope.background,
            subshell: scope.subshell,
            pipeline: pipe.map(|p| p.0),
            pipe_index: pipe.map(|p| p.1),
            redirects: scope.redirects.clone(),
            function: scope.function.clone(),
            ..Default::default()
        }
    }

    fn simple(
        &mut self,
        s: &ast::SimpleCommand,
        scope: &Scope,
        join: &'static str,
        pipe: Option<(usize, usize)>,
    ) {
        if !self.budget_left() {
            return;
        }
        let id = self.reserve();
        let mut fact = self.new_command(id, scope, join, pipe);
        let mut words: Vec<WordOut> = Vec::new();
        let mut heredoc: Option<String> = None;
        let mut assigned: Vec<(String, Option<String>)> = Vec::new();
        let mut array_items: Vec<String> = Vec::new();
        let items = s
            .prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .map(Some)
            .chain(std::iter::once(None))
            .chain(s.suffix.iter().flat_map(|p| p.0.iter()).map(Some));
        let mut after_program = false;
        for item in items {
            match item {
                None => {
                    after_program = true;
                    if let Some(w) = &s.word_or_name {
                        words.extend(self.word(&w.value, id, scope));
                    }
                }
                // `NAME=value` after the program is an argument (`dd of=/dev/sda`).
                Some(ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w)) if after_program => {
                    words.extend(self.word(&w.value, id, scope));
                }
                Some(ast::CommandPrefixOrSuffixItem::Word(w)) => {
                    words.extend(self.word(&w.value, id, scope));
                }
                Some(ast::CommandPrefixOrSuffixItem::IoRedirect(r)) => {
                    if let ast::IoRedirect::HereDocument(_, doc) = r {
                        heredoc = Some(doc.doc.value.clone());
                    }
                    if let ast::IoRedirect::HereString(_, w) = r {
                        let out = self.word(&w.value, id, scope);
                        heredoc = out.into_iter().next().map(|o| o.text);
                    }
                    if let Some(fact_r) = self.redirect(r, scope, Some(id)) {
                        fact.redirects.push(fact_r);
                    }
                }
                Some(ast::CommandPrefixOrSuffixItem::AssignmentWord(a, _)) => {
                    let name = match &a.name {
                        ast::AssignmentName::VariableName(n) => n.clone(),
                        ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                    };
                    let value = match &a.value {
                        ast::AssignmentValue::Scalar(w) => {
                            let out = self.word(&w.value, id, scope);
                            match out.as_slice() {
                                [one] if one.kinds.is_empty() => Some(one.text.clone()),
                                _ => None,
                            }
                        }
                        ast::AssignmentValue::Array(items) => {
                            for (k, v) in items {
                                if let Some(k) = k {
                                    self.word(&k.value, id, scope);
                                }
                                // A literal element is kept like a scalar's value: a path
                                // in `a=(~/.ssh/id_rsa)` is named by this call.
                                if let [one] = self.word(&v.value, id, scope).as_slice()
                                    && one.kinds.is_empty()
                                {
                                    array_items.push(one.text.clone());
                                }
                            }
                            None
                        }
                    };
                    fact.assignments.push(name.clone());
                    assigned.push((name, value));
                }
                Some(ast::CommandPrefixOrSuffixItem::ProcessSubstitution(kind, sub)) => {
                    let child = Scope {
                        parent: Some(id),
                        via: "process_substitution",
                        depth: scope.depth + 1,
                        wrappers: Vec::new(),
                        redirects: Vec::new(),
                        ..scope.clone()
                    };
                    let saved = self.cwd.clone();
                    self.compound_list(&sub.list, &child);
                    self.cwd = saved;
                    let op = match kind {
                        ast::ProcessSubstitutionKind::Read => "<(…)",
                        ast::ProcessSubstitutionKind::Write => ">(…)",
                    };
                    let mut w = WordOut::default();
                    w.push_expansion(op);
                    w.kind("process_substitution");
                    words.push(w);
                }
            }
        }
        // A command line given to a variable some program runs later (PROMPT_COMMAND,
        // GIT_SSH_COMMAND, PAGER) is parsed as the code it is.
        let commands: Vec<String> = assigned
            .iter()
            .filter_map(|(name, value)| {
                let value = value.as_ref()?;
                super::wrappers::command_line_of(name, value).map(String::from)
            })
            .collect();
        // A URL in a variable the program reads (ALL_PROXY=http://…, API_URL=…) is where it
        // may connect.
        let source = format!("command {id}");
        let base = self.base();
        let values = assigned.iter().filter_map(|(_, v)| v.as_deref());
        for value in values.chain(array_items.iter().map(String::as_str)) {
            self.add_url(value, &source);
            // A path kept in a variable (`F=~/.aws/credentials`) is named by this call, though
            // a later one reads it (`cat $F` in the same terminal session).
            if super::roles::looks_like_path(value) {
                self.add_path(&mut fact, value, false, &base, &source);
            }
        }
        // A command of assignments only sets shell variables for what follows.
        if words.is_empty() {
            for (name, value) in assigned {
                match value {
                    Some(text) => self.vars.insert(
                        name,
                        Bound {
                            text,
                            pattern: None,
                            names_from: None,
                        },
                    ),
                    None => self.vars.remove(&name),
                };
            }
        }
        self.fill(&mut fact, words);
        let subscripts = self.own_subscripts(&mut fact);
        if fact.name == "cd" || fact.name == "pushd" {
            self.change_dir(&fact);
        }
        // `read f <<< ~/.ssh/id_rsa`: f holds the line it reads; `… | while read f`: a
        // line the pipeline stage before the loop printed.
        if let (true, Some(text)) = (fact.name == "read", heredoc.as_ref())
            && let Some(name) = read_target(&fact.argv)
        {
            let line = text.lines().next().unwrap_or_default().to_string();
            self.vars.insert(
                name,
                Bound {
                    text: line,
                    pattern: None,
                    names_from: None,
                },
            );
        } else if fact.name == "read"
            && let Some(source) = self.piped_from
            && let Some(name) = read_target(&fact.argv)
        {
            self.vars
                .insert(name.clone(), Bound::printed_by(&name, source));
        }
        fact.stdin_text.clone_from(&heredoc);
        self.sink.commands[id] = fact;
        for text in subscripts {
            self.substitutions_in(&text, id, scope);
        }
        for text in commands {
            self.nested(&text, id, scope, "variable");
        }
        self.unwrap(id, scope, heredoc);
    }

    /// Fill argv, flags, operands and paths from the words.
    fn fill(&mut self, fact: &mut CommandFact, words: Vec<WordOut>) {
        let base = self.base();
        let source = format!("command {}", fact.id);
        // grep's regex, jq's filter, sed's script and awk's program are not files it reads.
        let program = words.first().and_then(|program| {
            let name = program.text.rsplit('/').next().unwrap_or_default();
            let grammar = self.sink.roles.pattern_operand(name)?;
            let argv: Vec<(&str, bool)> = words
                .iter()
                .map(|w| (w.text.as_str(), !w.kinds.is_empty()))
                .collect();
            grammar.program(&argv)
        });
        let pattern = program.as_ref().and_then(|p| p.operand);
        fact.program_text = program.map(|p| p.texts);
        let mut after_dashdash = false;
        let mut find_patterns: Vec<(String, bool)> = Vec::new();
        for (i, w) in words.into_iter().enumerate() {
            if !w.kinds.is_empty() {
                fact.dynamic.push(DynamicWord {
                    index: i,
                    kinds: w.kinds.clone(),
                    names_from: w.names_from,
                });
            }
            let is_glob = w.kinds.contains(&"glob");
            if i == 0 {
                fact.program = w.text.clone();
                fact.name = w.text.rsplit('/').next().unwrap_or_default().to_string();
                fact.argv.push(w.text);
                continue;
            }
            if !after_dashdash && w.text == "--" {
                after_dashdash = true;
            } else if !after_dashdash && w.text.starts_with('-') && w.text.len() > 1 {
                // `--name=value`, and single-dash long options like terraform's `-out=plan`.
                let (flag, value) = match w.text.split_once('=') {
                    Some((f, v)) if w.text.starts_with("--") || f.len() > 2 => {
                        (f.to_string(), Some(v))
                    }
                    _ => (w.text.clone(), None),
                };
                if !w.text.starts_with("--") && value.is_none() {
                    for c in w.text[1..].chars().take(32) {
                        let c = c.to_string();
                        if !fact.short.contains(&c) {
                            fact.short.push(c);
                        }
                    }
                }
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    self.add_path(fact, v, is_glob, &base, &source);
                    self.add_url(v, &source);
                } else if let Some(v) = attached_path(&w.text) {
                    // `-f/home/dev/.ssh/id_rsa`, `-xzf/tmp/a.tgz`: a short option's value
                    // written against it.
                    self.add_path(fact, v, is_glob, &base, &source);
                }
                fact.flags.push(flag);
            } else {
                fact.operands.push(w.text.clone());
                // find's name tests take a pattern, not a path: what it selects by them is
                // stated by find_selections when the selection is read or handed on.
                let find_pattern = fact.name == "find"
                    && fact
                        .argv
                        .last()
                        .is_some_and(|prev| FIND_NAME_TESTS.contains(&prev.as_str()));
                let glob = if is_glob { &w.pattern } else { &w.text };
                if find_pattern {
                    find_patterns.push((glob.clone(), is_glob));
                } else if pattern != Some(i) {
                    self.add_path(fact, glob, is_glob, &base, &source);
                    self.add_url(&w.text, &source);
                    // `of=/home/dev/.bashrc` (dd, and other KEY=PATH operands).
                    if let Some((_, v)) = w.text.split_once('=')
                        && (v.starts_with('/') || v.starts_with("~/"))
                    {
                        self.add_path(fact, v, is_glob, &base, &source);
                    }
                }
            }
            if let Some(target) = write_out_file(&w.text) {
                self.add_path(fact, target, false, &base, &source);
            }
            fact.argv.push(w.text);
        }
        fact.literal = fact.dynamic.is_empty();
        // `ls` with no operand lists the working directory (`cd ~ && ls -A | xargs cat`).
        if fact.name == "ls" && fact.operands.is_empty() && fact.dynamic.is_empty() {
            self.add_path(fact, ".", false, &base, &source);
        }
        if fact.name == "find" && find_output_used(fact) {
            // Patterns as written (`-path '*/.ssh/*'`) and what they select under each
            // starting point.
            for (text, is_glob) in find_patterns {
                self.add_path(fact, &text, is_glob, &base, &source);
            }
            self.find_selections(fact, &base, &source);
        }
    }

    /// The files a `find` selects by name, as a glob per starting point: what `-exec cat {} +`
    /// or `| xargs cat` then reads is named by no argument, so the selection is stated as a
    /// path it touches. `find ~ -name '*.pem'` is stated as `~/*.pem`: its name is what the
    /// name rules (key files, credential file names) judge; the directories in between are
    /// unknown and left out, so a search of a tree is not taken for a touch of all of it.
    fn find_selections(&mut self, fact: &mut CommandFact, base: &PathBase, source: &str) {
        let argv = fact.argv.clone();
        let mut starts: Vec<&str> = argv[1..]
            .iter()
            .take_while(|w| !w.starts_with('-') && *w != "(" && *w != "!")
            .map(String::as_str)
            .collect();
        if starts.is_empty() {
            starts.push(".");
        }
        for pair in argv.windows(2) {
            let pattern = match pair[0].as_str() {
                "-name" => pair[1].clone(),
                "-iname" => pair[1].to_ascii_lowercase(),
                _ => continue,
            };
            if pattern.is_empty() || pattern.contains('/') {
                continue;
            }
            for start in &starts {
                let glob = format!("{}/{pattern}", start.trim_end_matches('/'));
                self.add_path(fact, &glob, true, base, source);
            }
        }
    }

    fn add_path(
        &mut self,
        fact: &mut CommandFact,
        text: &str,
        glob: bool,
        base: &PathBase,
        source: &str,
    ) {
        let p = PathFact::new(text, glob, base, "argument", source.to_string());
        if !fact.paths.contains(&p.path) {
            fact.paths.push(p.path.clone());
        }
        super::push_path(self.sink.paths, self.sink.limits, p);
    }

    fn add_url(&mut self, word: &str, source: &str) {
        let found = match word.find("://") {
            Some(at) => {
                // The scheme starts after the last character that cannot be in one (which
                // may be several bytes long).
                let start = word[..at]
                    .char_indices()
                    .rev()
                    .find(|(_, c)| !super::url::is_scheme_char(*c))
                    .map_or(0, |(i, c)| i + c.len_utf8());
                UrlFact::parse(&word[start..], source.to_string())
            }
            None => UrlFact::from_bare_operand(word, source.to_string()),
        };
        let embedded = match found {
            Some(_) => Vec::new(),
            None => UrlFact::embedded_addresses(word, source),
        };
        let readings = found
            .into_iter()
            .flat_map(UrlFact::readings)
            .chain(embedded);
        for u in readings {
            if self.sink.urls.len() < self.sink.limits.max_urls && !self.sink.urls.contains(&u) {
                self.sink.urls.push(u);
            }
        }
    }

    fn change_dir(&mut self, fact: &CommandFact) {
        match fact.operands.first() {
            Some(dir) if fact.literal => {
                self.cwd = super::path::normalize(&super::glob::escape(dir), &self.base());
            }
            None if fact.literal => self.cwd = self.home.clone(),
            _ => {}
        }
    }

    fn redirect(
        &mut self,
        r: &ast::IoRedirect,
        scope: &Scope,
        id: Option<usize>,
    ) -> Option<RedirectFact> {
        let owner = id.unwrap_or(usize::MAX);
        let (fd, op, mode, word, target_is_file) = match r {
            ast::IoRedirect::File(fd, kind, target) => {
                let (op, mode, default_fd) = match kind {
                    ast::IoFileRedirectKind::Read => ("<", "read", 0),
                    ast::IoFileRedirectKind::Write => (">", "write", 1),
                    ast::IoFileRedirectKind::Append => (">>", "append", 1),
                    ast::IoFileRedirectKind::ReadAndWrite => ("<>", "read_write", 0),
                    ast::IoFileRedirectKind::Clobber => (">|", "write", 1),
                    ast::IoFileRedirectKind::DuplicateInput => ("<&", "duplicate", 0),
                    ast::IoFileRedirectKind::DuplicateOutput => (">&", "duplicate", 1),
                };
                let fd = fd.unwrap_or(default_fd);
                match target {
                    ast::IoFileRedirectTarget::Filename(w) => (fd, op, mode, Some(w), true),
                    ast::IoFileRedirectTarget::Fd(n) => {
                        return Some(RedirectFact {
                            fd,
                            op,
                            mode: "duplicate",
                            target: n.to_string(),
                            literal: true,
                        });
                    }
                    ast::IoFileRedirectTarget::Duplicate(w) => {
                        // `>&word`: a file when the word is not a number or `-`.
                        let out = self.word(&w.value, owner, scope);
                        let text = out.first().map(|o| o.text.clone()).unwrap_or_default();
                        if text == "-" || text.chars().all(|c| c.is_ascii_digit()) {
                            return Some(RedirectFact {
                                fd,
                                op,
                                mode: "duplicate",
                                target: text,
                                literal: true,
                            });
                        }
                        (fd, op, "write", Some(w), true)
                    }
                    ast::IoFileRedirectTarget::ProcessSubstitution(kind, sub) => {
                        let child = Scope {
                            parent: id,
                            via: "process_substitution",
                            depth: scope.depth + 1,
                            wrappers: Vec::new(),
                            redirects: Vec::new(),
                            ..scope.clone()
                        };
                        self.compound_list(&sub.list, &child);
                        let target = match kind {
                            ast::ProcessSubstitutionKind::Read => "<(…)",
                            ast::ProcessSubstitutionKind::Write => ">(…)",
                        };
                        return Some(RedirectFact {
                            fd,
                            op,
                            mode,
                            target: target.into(),
                            literal: false,
                        });
                    }
                }
            }
            ast::IoRedirect::OutputAndError(w, append) => {
                let (op, mode) = if *append {
                    ("&>>", "append")
                } else {
                    ("&>", "write")
                };
                (1, op, mode, Some(w), true)
            }
            ast::IoRedirect::HereDocument(fd, doc) => {
                if doc.requires_expansion {
                    self.substitutions_in(&doc.doc.value, owner, scope);
                }
                return Some(RedirectFact {
                    fd: fd.unwrap_or(0),
                    op: "<<",
                    mode: "read",
                    target: String::new(),
                    literal: !doc.requires_expansion,
                });
            }
            ast::IoRedirect::HereString(fd, _) => {
                return Some(RedirectFact {
                    fd: fd.unwrap_or(0),
                    op: "<<<",
                    mode: "read",
                    target: String::new(),
                    literal: true,
                });
            }
        };
        let w = word?;
        let out = self.word(&w.value, owner, scope);
        let first = out.into_iter().next().unwrap_or_default();
        let is_glob = first.kinds.contains(&"glob");
        let literal = first.kinds.is_empty();
        let text = if is_glob {
            first.pattern.clone()
        } else {
            first.text.clone()
        };
        let target = if target_is_file {
            let p = PathFact::new(
                &text,
                is_glob,
                &self.base(),
                mode,
                id.map_or("redirect".into(), |i| format!("command {i}")),
            );
            let path = p.path.clone();
            super::push_path(self.sink.paths, self.sink.limits, p);
            path
        } else {
            first.text
        };
        Some(RedirectFact {
            fd,
            op,
            mode,
            target,
            literal,
        })
    }

    /// Quote removal and expansion facts for one word; brace expansion may make several.
    fn word(&mut self, raw: &str, owner: usize, scope: &Scope) -> Vec<WordOut> {
        let options = parser_options();
        // brush's brace parser backtracks exponentially on unmatched braces (20 `{` take
        // half a minute), so it only sees words whose unquoted braces all match, and not too
        // many of them; a word with unmatched or too many braces is not expanded and is
        // marked unparsed, so it never passes for plain text.
        let expandable = unquoted_braces(raw).filter(|n| *n <= MAX_WORD_BRACES);
        let expanded: Vec<String> = match expandable {
            Some(n) if n > 0 => match unpanicked(|| word::parse_brace_expansions(raw, &options)) {
                Ok(Some(parts)) => {
                    let mut alternatives = vec![String::new()];
                    if expand_braces(&parts, &mut alternatives, 64) {
                        alternatives
                    } else {
                        vec![raw.to_string()]
                    }
                }
                _ => vec![raw.to_string()],
            },
            _ => vec![raw.to_string()],
        };
        let unexpanded = expandable.is_none();
        let brace = expanded.len() > 1 || expanded.first().is_some_and(|e| e != raw);
        let mut out = Vec::with_capacity(expanded.len());
        for text in expanded {
            let mut w = WordOut::default();
            if brace {
                w.kind("brace");
            }
            if unexpanded {
                w.kind("unparsed");
            }
            match unpanicked(|| word::parse(&text, &options)) {
                Ok(pieces) => self.pieces(&pieces, &text, false, &mut w, owner, scope),
                Err(_) => {
                    // Not a word brush can read (unbalanced quotes inside): keep it as it
                    // stands, marked dynamic so it is never mistaken for plain text.
                    w.push(&text, true);
                    w.kind("unparsed");
                }
            }
            if let Some(at) = subscript_substitution(&w.inert) {
                self.subscripts
                    .push((owner, w.inert[at..].to_string(), scope.clone()));
            }
            out.push(w);
        }
        out
    }

    fn pieces(
        &mut self,
        pieces: &[WordPieceWithSource],
        source: &str,
        quoted: bool,
        w: &mut WordOut,
        owner: usize,
        scope: &Scope,
    ) {
        for p in pieces {
            let raw = source.get(p.start_index..p.end_index).unwrap_or_default();
            match &p.piece {
                WordPiece::Text(t) => {
                    // `[` opens a bracket expression only with a `]` after it (`[ -d x ]`
                    // runs the program `[`).
                    let bracket = t.find('[').is_some_and(|i| t[i + 1..].contains(']'));
                    if !quoted && (t.contains(['*', '?']) || bracket) {
                        w.kind("glob");
                    }
                    if !quoted && (t.contains("@(") || t.contains("!(") || t.contains("+(")) {
                        w.kind("glob");
                    }
                    w.push(t, quoted);
                }
                WordPiece::SingleQuotedText(t) => w.push(t, true),
                WordPiece::AnsiCQuotedText(t) => w.push(&ansi_c(t), true),
                WordPiece::EscapeSequence(e) => {
                    let c = e.strip_prefix('\\').unwrap_or(e);
                    w.push(c, true);
                }
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    self.pieces(inner, source, true, w, owner, scope);
                }
                WordPiece::TildeExpansion(t) => match t {
                    word::TildeExpr::Home => w.push(&self.home.clone(), true),
                    word::TildeExpr::UserHome(u) if u == "root" => w.push("/root", true),
                    // `~+` is the working directory (`rm -rf ~+/..`).
                    word::TildeExpr::WorkingDir => w.push(&self.cwd.clone(), true),
                    word::TildeExpr::UserHome(u) => {
                        w.push(&format!("/home/{u}"), true);
                        w.kind("tilde_user");
                    }
                    _ => {
                        w.push_expansion(raw);
                        w.kind("variable");
                    }
                },
                WordPiece::ParameterExpansion(expr) => {
                    let name = match expr {
                        word::ParameterExpr::Parameter {
                            parameter: word::Parameter::Named(n),
                            indirect: false,
                        } => Some(n.as_str()),
                        _ => None,
                    };
                    match name {
                        Some("HOME") => w.push(&self.home.clone(), true),
                        // The working directory as the walker tracks it (`rm -rf $PWD/..`).
                        Some("PWD") if !self.vars.contains_key("PWD") => {
                            w.push(&self.cwd.clone(), true)
                        }
                        Some(n) if self.vars.get(n).is_some_and(|b| b.names_from.is_some()) => {
                            w.push_expansion(raw);
                            w.kind("variable");
                            w.names_from = self.vars[n].names_from;
                        }
                        Some(n) if self.vars.contains_key(n) => {
                            let Bound { text, pattern, .. } = self.vars[n].clone();
                            if let Some(pattern) = pattern {
                                w.kind("glob");
                                w.text.push_str(&text);
                                w.pattern.push_str(&pattern);
                            } else {
                                // An unquoted value is split and globbed again by the shell.
                                if !quoted && text.contains(['*', '?', '[', ' ', '\t', '\n']) {
                                    w.kind("variable");
                                }
                                w.push(&text, true);
                            }
                        }
                        _ => {
                            // `${D:-.aws}` with D unknown: most likely the default, which is
                            // what a path rule must see (`cat ~/${D:-.aws}/credentials`).
                            match default_of_unset(raw, &self.vars) {
                                Some(text) => w.push(&text, true),
                                None => w.push_expansion(raw),
                            }
                            w.kind("variable");
                            // `${X:-$(cmd)}` and friends run what their words hold.
                            if let Some(inner) =
                                raw.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                            {
                                self.substitutions_in(inner, owner, scope);
                            }
                        }
                    }
                }
                WordPiece::CommandSubstitution(body)
                | WordPiece::BackquotedCommandSubstitution(body) => {
                    let first = self.sink.commands.len();
                    self.nested(body, owner, scope, "substitution");
                    // `$(echo rm)` is the word `rm`: a program named that way is judged
                    // as that program (and stays marked as computed).
                    w.push_expansion(self.echoed_word(first).as_deref().unwrap_or(raw));
                    w.kind("command_substitution");
                }
                WordPiece::ArithmeticExpression(expr) => {
                    w.push_expansion(raw);
                    w.kind("arithmetic");
                    self.substitutions_in(&expr.value, owner, scope);
                }
            }
        }
    }

    /// The subscripts found in the words of `fact` (`subscripts`), stated on it and
    /// returned for parsing, unless the text is the command's own pattern or program
    /// (awk's `c[$(NF)]` is a field, not a shell command).
    fn own_subscripts(&mut self, fact: &mut CommandFact) -> Vec<String> {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.subscripts)
            .into_iter()
            .partition(|(owner, _, _)| *owner == fact.id);
        self.subscripts = others;
        let programs = fact.program_text.as_deref().unwrap_or_default();
        let texts: Vec<String> = mine
            .into_iter()
            .map(|(_, text, _)| text)
            .filter(|text| !programs.iter().any(|p| p.contains(text.as_str())))
            .collect();
        fact.evaluated_subscripts.extend(texts.iter().cloned());
        texts
    }

    /// A subscript of a word outside any simple command, stated on its owner.
    fn evaluate_subscript(&mut self, owner: usize, text: String, scope: &Scope) {
        if let Some(c) = self.sink.commands.get_mut(owner) {
            c.evaluated_subscripts.push(text.clone());
            self.substitutions_in(&text, owner, scope);
        }
    }

    /// Commands hidden in text that is not itself a command word (arithmetic, parameter
    /// defaults, here-documents): only its substitutions run.
    fn substitutions_in(&mut self, text: &str, owner: usize, scope: &Scope) {
        if !(text.contains('$') || text.contains('`')) {
            return;
        }
        let quoted = format!("\"{}\"", text.replace('"', "\\\""));
        if let Ok(pieces) = unpanicked(|| word::parse(&quoted, &parser_options())) {
            let mut scratch = WordOut::default();
            self.pieces(&pieces, &quoted, true, &mut scratch, owner, scope);
        }
    }

    /// Parse text that a command runs as shell code.
    fn nested(&mut self, text: &str, owner: usize, scope: &Scope, via: &'static str) {
        let child = Scope {
            parent: (owner != usize::MAX).then_some(owner),
            via,
            depth: scope.depth + 1,
            wrappers: Vec::new(),
            background: false,
            subshell: false,
            redirects: Vec::new(),
            ..scope.clone()
        };
        let source = if owner == usize::MAX {
            format!("{via} in script {}", scope.script)
        } else {
            format!("command {owner} ({via})")
        };
        let saved = self.cwd.clone();
        let vars = self.vars.clone();
        if owner != usize::MAX
            && via != "substitution"
            && via != "variable"
            && let Some(c) = self.sink.commands.get_mut(owner)
        {
            c.runs_script = Some(self.sink.scripts.len());
        }
        self.script(text, source, &child);
        self.cwd = saved;
        self.vars = vars;
    }

    /// What inline code names in its string literals: a literal given to a call that runs
    /// a shell (`os.system("…")`, `execSync('…')`, awk's `system("…")`, a Ruby or Perl
    /// backtick) is parsed as the command it runs (`via: "code"`); a literal that is one
    /// path-shaped or URL-shaped word is a path or URL the code names. The code itself is
    /// not parsed: this reads its literals, the way a reviewer skims it.
    fn code_literals(&mut self, id: usize, code: &str, language: &str, scope: &Scope) {
        // A quoted literal: '…' or "…" on one line, escapes kept.
        const QUOTED: &str = r#"'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*""#;
        static LITERAL: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(r#"'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)"|`((?:[^`\\]|\\.)*)`"#)
                .expect("literal pattern")
        });
        static SHELL_CALL: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(
                r"(?:\b(?:os\.system|os\.popen|subprocess\.\w+|commands\.\w+|execSync|spawnSync|exec|execFile|system|popen|shell_exec|passthru|proc_open|qx|getoutput|check_output|check_call|call|run|Popen|spawn))\s*\(\s*\[?\s*$",
            )
            .expect("shell call pattern")
        });
        // A list of literals closed by `]`: an argv (`subprocess.run(["rm", "-rf", "/"])`).
        static ARGV_LIST: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(&format!(r"^(?:(?:{QUOTED})\s*,\s*)*(?:{QUOTED})\s*,?\s*\]"))
                .expect("argv list pattern")
        });
        let base = self.base();
        let source = format!("command {id} (code)");
        let mut argv_end = 0;
        for m in LITERAL.captures_iter(code).take(MAX_CODE_LITERALS) {
            let (Some(whole), Some(text)) = (m.get(0), m.get(1).or(m.get(2)).or(m.get(3))) else {
                continue;
            };
            if whole.start() < argv_end {
                continue;
            }
            let text = text.as_str();
            let backtick = whole.as_str().starts_with('`');
            let runs_shell = if backtick {
                // Ruby's and Perl's backticks run a shell; JavaScript's are template strings.
                matches!(language, "ruby" | "perl")
            } else {
                SHELL_CALL.is_match(&code[..whole.start()])
            };
            let before = code[..whole.start()].trim_end();
            if runs_shell
                && before.ends_with('[')
                && let Some(list) = ARGV_LIST.find(&code[whole.start()..])
            {
                // The words of the argv, as one command line.
                let words: Vec<&str> = LITERAL
                    .captures_iter(list.as_str())
                    .filter_map(|w| w.get(1).or(w.get(2)).map(|t| t.as_str()))
                    .collect();
                argv_end = whole.start() + list.end();
                match shlex::try_join(words.iter().copied()) {
                    Ok(line) => self.nested(&line, id, scope, "code"),
                    Err(_) => self.nested(&words.join(" "), id, scope, "code"),
                }
            } else if runs_shell {
                self.nested(text, id, scope, "code");
            } else if super::roles::looks_like_path(text) {
                let mut fact = std::mem::take(&mut self.sink.commands[id]);
                self.add_path(&mut fact, text, false, &base, &source);
                self.sink.commands[id] = fact;
            } else if super::roles::looks_like_url(text) {
                self.add_url(text, &source);
            }
        }
    }

    /// The command a wrapper, shell or interpreter runs.
    fn unwrap(&mut self, id: usize, scope: &Scope, heredoc: Option<String>) {
        let fact = self.sink.commands[id].clone();
        if !fact.literal && fact.dynamic.iter().any(|d| d.index == 0) {
            return;
        }
        let name = fact.name.as_str();
        let argv = &fact.argv;
        if AWKS.contains(&name) {
            // Every `-e`/`--source` text and the program operand; a program from a file
            // (`-f`, `-E`) or an argv the grammar does not read is code of unknown text.
            let text = fact
                .program_text
                .as_ref()
                .map(|t| t.join("\n"))
                .unwrap_or_default();
            self.code_literals(id, &text, "awk", scope);
            self.sink.commands[id].code = Some(InlineCode {
                language: "awk",
                effects: awk_effects(&text),
                text,
            });
            return;
        }
        match super::wrappers::inner(name, argv) {
            super::wrappers::Inner::Command(start) if start < argv.len() => {
                // xargs hands the command the words it reads: from a here-string or an
                // `echo`/`printf` piped in they are known (`echo / | xargs rm -rf`).
                let input = if name == "xargs" {
                    heredoc.clone().or_else(|| self.piped_text(&fact))
                } else {
                    None
                };
                match input {
                    Some(text) => {
                        for words in xargs_words(&argv[..start], &argv[start..], &text) {
                            self.wrapped(id, scope, start..argv.len(), name, &words);
                        }
                    }
                    None => self.wrapped(id, scope, start..argv.len(), name, &[]),
                }
            }
            super::wrappers::Inner::Commands(ranges) => {
                for (a, b) in ranges {
                    if a < b && b <= argv.len() {
                        self.wrapped(id, scope, a..b, name, &[]);
                    }
                }
            }
            super::wrappers::Inner::Script(text) => {
                self.nested(&text, id, scope, "shell_c");
            }
            super::wrappers::Inner::Eval(text) => self.nested(&text, id, scope, "eval"),
            super::wrappers::Inner::Scripts(texts) => {
                for text in texts {
                    self.nested(&text, id, scope, "shell_c");
                }
            }
            super::wrappers::Inner::Stdin => {
                let text = heredoc.or_else(|| self.piped_text(&fact));
                if let Some(text) = text {
                    self.nested(&text, id, scope, "stdin");
                }
            }
            super::wrappers::Inner::CodeStdin(language) => {
                // Code from a here-document or piped text is code like `-c`'s; with no
                // text known the interpreter runs code nobody saw (not read-only either way).
                if let Some(text) = heredoc.or_else(|| self.piped_text(&fact)) {
                    self.code_literals(id, &text, language, scope);
                    self.sink.commands[id].code = Some(InlineCode {
                        language,
                        text,
                        effects: Vec::new(),
                    });
                }
            }
            super::wrappers::Inner::Code(language, text) => {
                self.code_literals(id, &text, language, scope);
                self.sink.commands[id].code = Some(InlineCode {
                    language,
                    text,
                    effects: Vec::new(),
                });
            }
            _ => {}
        }
    }

    /// The text an `echo`/`printf` earlier in the pipeline writes to this command's stdin.
    fn piped_text(&self, fact: &CommandFact) -> Option<String> {
        let (pipeline, index) = (fact.pipeline?, fact.pipe_index?.checked_sub(1)?);
        let prev = self
            .sink
            .commands
            .iter()
            .rev()
            .find(|c| c.pipeline == Some(pipeline) && c.pipe_index == Some(index))?;
        match prev.name.as_str() {
            "echo" => Some(echo_words(&prev.argv).join(" ").replace("\\n", "\n")),
            "printf" => Some(
                prev.argv[1..]
                    .iter()
                    .map(|a| a.replace("\\n", "\n"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            // `cat <<EOF | sh`: cat with no file passes its here-document on.
            "cat" if prev.argv.len() == 1 => prev.stdin_text.clone(),
            _ => None,
        }
    }

    /// The one word a substitution prints when it is a lone `echo`/`printf` of literal
    /// words (`$(echo rm)`, `` `printf rm` ``), the commands it added starting at `first`.
    fn echoed_word(&self, first: usize) -> Option<String> {
        let [c] = self.sink.commands.get(first..)? else {
            return None;
        };
        if !c.literal || !c.redirects.is_empty() {
            return None;
        }
        let words: Vec<&String> = match c.name.as_str() {
            "echo" => echo_words(&c.argv).iter().collect(),
            "printf" => match c.argv.get(1..)? {
                [format] if !format.contains(['%', '\\']) => vec![format],
                [format, arg] if format == "%s" => vec![arg],
                _ => return None,
            },
            _ => return None,
        };
        match words.as_slice() {
            [one] if !one.is_empty() && !one.contains(char::is_whitespace) => Some(one.to_string()),
            _ => None,
        }
    }

    /// Add the command a wrapper runs, as its own command fact.
    /// `range` is the run command's words in the wrapper's argv; `input`, when not empty,
    /// is the argv as xargs builds it from words it reads (replacing the range).
    fn wrapped(
        &mut self,
        wrapper: usize,
        scope: &Scope,
        range: std::ops::Range<usize>,
        name: &str,
        input: &[String],
    ) {
        if !self.budget_left() || scope.depth >= self.sink.limits.max_depth {
            self.sink.truncated = true;
            return;
        }
        let id = self.reserve();
        let outer = self.sink.commands[wrapper].clone();
        let mut wrappers = outer.wrappers.clone();
        wrappers.push(name.to_string());
        let child = Scope {
            parent: Some(wrapper),
            via: "wrapper",
            depth: scope.depth + 1,
            wrappers,
            redirects: Vec::new(),
            ..scope.clone()
        };
        let mut fact = self.new_command(id, &child, outer.joined_by, None);
        fact.pipeline = outer.pipeline;
        fact.pipe_index = outer.pipe_index;
        let start = range.start;
        let words = if input.is_empty() {
            outer.argv[range]
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let kinds = outer
                        .dynamic
                        .iter()
                        .find(|d| d.index == start + i)
                        .map(|d| d.kinds.clone())
                        .unwrap_or_default();
                    let mut w = WordOut::default();
                    w.push(a, true);
                    w.kinds = kinds;
                    w
                })
                .collect()
        } else {
            input
                .iter()
                .map(|a| {
                    let mut w = WordOut::default();
                    w.push(a, true);
                    w
                })
                .collect()
        };
        self.fill(&mut fact, words);
        // The environment the wrapper runs with reaches the command it runs, and so do the
        // `NAME=value` words a wrapper sets itself (`env LD_PRELOAD=x ls`, `sudo PAGER=x git log`).
        let mut assignments = outer.assignments.clone();
        assignments.extend(
            outer
                .argv
                .get(1..start)
                .unwrap_or_default()
                .iter()
                .filter_map(|w| super::wrappers::assignment_name(w))
                .map(str::to_string),
        );
        assignments.append(&mut fact.assignments);
        assignments.sort();
        assignments.dedup();
        fact.assignments = assignments;
        self.sink.commands[id] = fact;
        if self.sink.commands[wrapper].runs.is_none() {
            self.sink.commands[wrapper].runs = Some(id);
        }
        self.unwrap(id, &child, None);
    }
}

/// The words of a `[[ … ]]` expression.
fn test_words(e: &ast::ExtendedTestExpr, out: &mut Vec<ast::Word>) {
    match e {
        ast::ExtendedTestExpr::And(a, b) | ast::ExtendedTestExpr::Or(a, b) => {
            test_words(a, out);
            test_words(b, out);
        }
        ast::ExtendedTestExpr::Not(a) | ast::ExtendedTestExpr::Parenthesized(a) => {
            test_words(a, out)
        }
        ast::ExtendedTestExpr::UnaryTest(_, w) => out.push(w.clone()),
        ast::ExtendedTestExpr::BinaryTest(_, a, b) => {
            out.push(a.clone());
            out.push(b.clone());
        }
    }
}

/// Words with more unquoted `{` than this are not brace-expanded (and count as unparsed).
const MAX_WORD_BRACES: usize = 32;

/// The number of unquoted `{` in a word when every one has its `}`; `None` when they do not
/// match. Quotes and backslash escapes are skipped as the shell skips them.
fn unquoted_braces(raw: &str) -> Option<usize> {
    let (mut depth, mut count) = (0usize, 0usize);
    let mut chars = raw.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => {
                chars.next();
            }
            (Some('"'), '"') => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '{') => {
                depth += 1;
                count += 1;
            }
            (None, '}') => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    (depth == 0).then_some(count)
}

/// Expand brace expressions into their alternatives; false past `max` alternatives.
fn expand_braces(parts: &[word::BraceExpressionOrText], acc: &mut Vec<String>, max: usize) -> bool {
    for part in parts {
        match part {
            word::BraceExpressionOrText::Text(t) => {
                for a in acc.iter_mut() {
                    a.push_str(t);
                }
            }
            word::BraceExpressionOrText::Expr(members) => {
                let mut options: Vec<String> = Vec::new();
                for m in members {
                    match m {
                        word::BraceExpressionMember::Child(children) => {
                            let mut sub = vec![String::new()];
                            if !expand_braces(children, &mut sub, max) {
                                return false;
                            }
                            options.extend(sub);
                        }
                        word::BraceExpressionMember::NumberSequence {
                            start,
                            end,
                            increment,
                        } => {
                            let step = increment.unsigned_abs().max(1) as usize;
                            let (lo, hi) = (*start.min(end), *start.max(end));
                            if (hi - lo) as usize / step > max {
                                return false;
                            }
                            let mut n = *start;
                            loop {
                                options.push(n.to_string());
                                if n == *end {
                                    break;
                                }
                                let next = if start <= end {
                                    n + step as i64
                                } else {
                                    n - step as i64
                                };
                                if (start <= end && next > *end) || (start > end && next < *end) {
                                    break;
                                }
                                n = next;
                            }
                        }
                        word::BraceExpressionMember::CharSequence { start, end, .. } => {
                            let (lo, hi) = (*start.min(end) as u32, *start.max(end) as u32);
                            if (hi - lo) as usize > max {
                                return false;
                            }
                            options.extend(
                                (lo..=hi).filter_map(char::from_u32).map(|c| c.to_string()),
                            );
                        }
                    }
                }
                if acc.len() * options.len().max(1) > max {
                    return false;
                }
                let mut next = Vec::with_capacity(acc.len() * options.len());
                for a in acc.iter() {
                    for o in &options {
                        next.push(format!("{a}{o}"));
                    }
                }
                *acc = next;
            }
        }
    }
    true
}

/// Decode the escapes of an ANSI-C quoted string (`$'\x72m'` is `rm`).
fn ansi_c(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        let mut num = |radix: u32, max: usize, first: Option<char>| {
            let mut digits = String::new();
            if let Some(f) = first {
                digits.push(f);
            }
            while digits.len() < max {
                match chars.peek() {
                    Some(d) if d.is_digit(radix) => {
                        digits.push(*d);
                        chars.next();
                    }
                    _ => break,
                }
            }
            u32::from_str_radix(&digits, radix)
                .ok()
                .and_then(char::from_u32)
        };
        let decoded = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            '\'' => Some('\''),
            '"' => Some('"'),
            '?' => Some('?'),
            'x' => num(16, 2, None),
            'u' => num(16, 4, None),
            'U' => num(16, 8, None),
            '0'..='7' => num(8, 3, Some(e)),
            'c' => chars.next().and_then(|c| char::from_u32((c as u32) & 0x1f)),
            other => {
                out.push('\\');
                Some(other)
            }
        };
        if let Some(d) = decoded {
            out.push(d);
        }
    }
    out
}

/// String literals of inline code read for commands, paths and URLs, at most.
const MAX_CODE_LITERALS: usize = 64;

/// The awk implementations: their program is inline code.
const AWKS: [&str; 5] = ["awk", "gawk", "mawk", "nawk", "busybox-awk"];

/// What an awk program can do beyond reading: call commands or write files.
fn awk_effects(program: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    // Outside string literals only, so that `print "a > b"` reads as text.
    let mut code = String::with_capacity(program.len());
    let mut in_str = false;
    let mut prev = ' ';
    for c in program.chars() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
            code.push(' ');
        } else if !in_str {
            code.push(c);
        }
        prev = c;
    }
    if code.contains("system") {
        out.push("system");
    }
    if code.contains("getline") {
        out.push("getline");
    }
    // The process environment (API keys, tokens), as `env` or `printenv` would print it.
    if code.contains("ENVIRON") {
        out.push("environ");
    }
    // gawk's `@load "x"` loads a shared library (native code); `@include "f"` runs the awk
    // program of another file.
    if code.contains("@load") {
        out.push("load");
    }
    if code.contains("@include") {
        out.push("include");
    }
    // `print | "cmd"`, `print > "file"`: an output after print/printf on the same statement.
    for stmt in code.split([';', '\n', '{', '}']) {
        let s = stmt.trim_start();
        if s.starts_with("print") {
            if s.contains('|') {
                out.push("pipe");
            }
            if s.contains('>') {
                out.push("redirect");
            }
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::unquoted_braces;
    use crate::action::Action;
    use crate::facts::{Facts, FactsContext, Limits, ParamRoles, facts_for};
    use serde_json::json;

    fn ctx() -> FactsContext {
        FactsContext {
            home: "/home/dev".into(),
            workspace: "/home/dev/project".into(),
            sidecar_paths: Vec::new(),
            sidecar_ports: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// The shipped bundle's roles (its option grammars among them), exec reduced to its
    /// command and workdir.
    fn roles() -> ParamRoles {
        let shipped: serde_json::Value =
            serde_json::from_str(include_str!("../../policies/data.json")).expect("data.json");
        ParamRoles::from_data([
            &shipped,
            &json!({"clawgate": {"tools": {
                "exec": {"command_params": ["command"], "path_params": ["workdir"]}
            }}}),
        ])
    }

    fn facts(cmd: &str) -> Facts {
        facts_for(
            &Action::tool("exec", Some(json!({"command": cmd}))),
            &roles(),
            &ctx(),
        )
    }

    /// Every command of `cmds` states the path `path`.
    fn assert_each_states_path(cmds: &[&str], path: &str) {
        for cmd in cmds {
            let f = facts(cmd);
            assert!(
                f.paths.iter().any(|p| p.path == path),
                "{cmd}: {:?}",
                f.paths
            );
        }
    }

    /// Each command as `name argv...` (argv after quote removal, joined by spaces).
    fn shown(cmd: &str) -> Vec<String> {
        facts(cmd)
            .commands
            .iter()
            .map(|c| format!("{}|{}", c.name, c.argv.join(" ")))
            .collect()
    }

    #[test]
    fn credential_shapes_in_tool_arguments_are_stated_wherever_they_are() {
        let key = format!("AKIA{}", "IOSFODNN7EXAMPLE");
        let of = |params: serde_json::Value| {
            facts_for(&Action::tool("message", Some(params)), &roles(), &ctx()).param_credentials
        };
        assert_eq!(
            of(json!({"message": format!("see {key}")})),
            ["aws_access_key"]
        );
        // Nested, in a list, in a key, and past the depth the walk follows.
        let mut deep = json!(format!("-----BEGIN RSA PRIVATE KEY-----\nMIIE"));
        for _ in 0..40 {
            deep = json!({ "x": [deep] });
        }
        assert_eq!(of(json!({"a": deep})), ["private_key_header"]);
        assert_eq!(of(json!({"a": [{ key.clone(): 1 }]})), ["aws_access_key"]);
        // Each shape once; a string that only mentions a shape's prefix is none.
        assert_eq!(of(json!({"a": key, "b": key})), ["aws_access_key"]);
        assert!(of(json!({"message": "rotate the AKIA key and the ghp_ token"})).is_empty());
    }

    #[test]
    fn variables_the_call_sets_beside_its_command_are_bound() {
        let roles = ParamRoles::from_data([&json!({"clawgate": {"tools": {
            "exec": {"command_params": ["command"], "env_params": ["env"]}
        }}})]);
        let f = facts_for(
            &Action::tool(
                "exec",
                Some(
                    json!({"command": "cat \"$F\"; rm -rf $D", "env": {"F": "/home/dev/.ssh/id_rsa", "D": "/home/dev", "N": 1}}),
                ),
            ),
            &roles,
            &ctx(),
        );
        let paths: Vec<Vec<String>> = f.commands.iter().map(|c| c.paths.clone()).collect();
        assert_eq!(paths, [["/home/dev/.ssh/id_rsa"], ["/home/dev"]]);
    }

    #[test]
    fn literal_array_elements_are_kept_like_scalar_values() {
        assert_each_states_path(
            &[
                "a=(~/.ssh/id_rsa); cat ${a[0]}",
                "k=(x /home/dev/.ssh/id_rsa) ls",
            ],
            "/home/dev/.ssh/id_rsa",
        );
    }

    #[test]
    fn a_variable_holding_what_a_command_printed_names_that_command() {
        let names_from = |cmd: &str, program: &str| {
            let f = facts(cmd);
            let c = f.commands.iter().find(|c| c.name == program).unwrap();
            let d = c.dynamic.iter().find(|d| d.kinds == ["variable"]).unwrap();
            d.names_from.map(|i| f.commands[i].name.clone())
        };
        assert_eq!(
            names_from("for f in $(git ls-files); do head -1 $f; done", "head").as_deref(),
            Some("git")
        );
        assert_eq!(
            names_from(
                r#"git ls-files | while read -r f; do cat "$f"; done"#,
                "cat"
            )
            .as_deref(),
            Some("git")
        );
        assert_eq!(
            names_from(
                r#"find . -name '*.py' | grep -v test | while read f; do wc -l "$f"; done"#,
                "wc"
            )
            .as_deref(),
            Some("grep")
        );
        // Text the loop does not get from a command: unknown, no command named.
        assert_eq!(
            names_from(r#"while read f; do cat "$f"; done < list"#, "cat"),
            None
        );
        assert_eq!(names_from(r#"for f in $X; do cat "$f"; done"#, "cat"), None);
    }

    #[test]
    fn a_for_loop_body_is_stated_once_per_value_of_its_list() {
        assert_eq!(
            shown(r#"for f in notes.txt ~/.aws/credentials; do cat "$f"; done"#),
            ["cat|cat notes.txt", "cat|cat /home/dev/.aws/credentials"]
        );
        // A glob in the list stays a glob where the variable is used, quoted or not.
        let f = facts(r#"for f in ~/.ssh/id_*; do cat "$f"; done"#);
        let globbed: Vec<_> = f.paths.iter().filter(|p| p.glob).map(|p| &p.path).collect();
        assert_eq!(globbed, ["/home/dev/.ssh/id_*"]);
        // A list known only at run time leaves the variable unknown, as before.
        let f = facts(r#"for f in $(ls); do cat "$f"; done"#);
        assert_eq!(f.commands.len(), 2);
        assert!(!f.commands[1].dynamic.is_empty());
        // Past the bound the facts say they are not everything.
        let many = (0..70)
            .map(|i| format!("f{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let f = facts(&format!("for f in {many}; do cat $f; done"));
        assert_eq!(f.commands.len(), 64);
        assert!(f.truncated);
    }

    #[test]
    fn quotes_are_removed_before_anything_is_judged() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"find ~ -maxdepth 0 -e"x"ec r""m -rf {} +"#,
                &[
                    "find|find /home/dev -maxdepth 0 -exec rm -rf {} +",
                    "rm|rm -rf {}",
                ],
            ),
            (
                r#"rg --p''re=sh -e . /tmp/p"#,
                &["rg|rg --pre=sh -e . /tmp/p"],
            ),
            (
                r#"sort notes.txt "-o" ~/.bashrc"#,
                &["sort|sort notes.txt -o /home/dev/.bashrc"],
            ),
            (r#"$'\x72m' -rf /"#, &["rm|rm -rf /"]),
            (r#"\rm -rf x"#, &["rm|rm -rf x"]),
            (r#"r\m -rf x"#, &["rm|rm -rf x"]),
            (r#"{rm,-rf,/}"#, &["rm|rm -rf /"]),
            (r#"X=rm; $X -rf /"#, &["|", "rm|rm -rf /"]),
        ];
        for (cmd, want) in cases {
            assert_eq!(shown(cmd), *want, "{cmd}");
        }
    }

    #[test]
    fn joins_and_nesting_are_stated() {
        let f = facts("a | b && c || d; e & (f) ");
        let joins: Vec<_> = f.commands.iter().map(|c| c.joined_by).collect();
        // The subshell's own list starts afresh.
        assert_eq!(joins, ["first", "pipe", "and", "or", "sequence", "first"]);
        assert!(f.commands[4].background);
        assert!(f.commands[5].subshell);
        assert_eq!(f.commands[0].pipeline, f.commands[1].pipeline);
        let mut joins = f.scripts[0].joins.clone();
        joins.sort();
        assert_eq!(
            joins,
            ["and", "background", "or", "pipe", "sequence", "subshell"]
        );

        // Commands inside substitutions, process substitutions, sh -c, eval and stdin scripts.
        for (cmd, inner, via) in [
            ("echo $(rm -rf x)", "rm", "substitution"),
            ("echo `rm -rf x`", "rm", "substitution"),
            ("cat <(rm -rf x)", "rm", "process_substitution"),
            ("sh -c 'rm -rf x'", "rm", "shell_c"),
            ("bash -lc \"rm -rf x\"", "rm", "shell_c"),
            ("eval 'rm -rf x'", "rm", "eval"),
            ("echo 'rm -rf x' | sh", "rm", "stdin"),
            ("sh <<EOF\nrm -rf x\nEOF", "rm", "stdin"),
            ("cat <<EOF | sh\nrm -rf x\nEOF", "rm", "stdin"),
            ("cat <<< 'rm -rf x' | bash -s", "rm", "stdin"),
            ("echo ${X:-$(rm -rf x)}", "rm", "substitution"),
            ("echo $(( $(rm -rf x) ))", "rm", "substitution"),
        ] {
            let f = facts(cmd);
            let c = f.commands.iter().find(|c| c.name == inner);
            assert!(
                c.is_some_and(|c| c.via == via && c.depth == 1),
                "{cmd}: {:?}",
                f.commands
            );
        }
    }

    #[test]
    fn commands_in_quoted_array_subscripts_are_stated_on_the_word_that_holds_them() {
        // bash runs `$(…)` in a subscript when it evaluates the text as a name or as
        // arithmetic, though the quotes keep it from running where it is written.
        for (cmd, owner) in [
            ("test -v 'a[$(rm -rf x)]'", "test"),
            ("[[ -v 'a[$(rm -rf x)]' ]]", "[["),
            ("printf -v 'a[`rm -rf x`]' %s 1", "printf"),
            ("read 'a[$(rm -rf x)]' <<< 1", "read"),
            ("declare -n r='a[$(rm -rf x)]'", "declare"),
            ("[ 1 -eq \"1+a[\\$(rm -rf x)]\" ]", "["),
            // A real substitution beside it does not hide the inert one.
            ("test -v \"a[\\$(rm -rf x)]$(true)\"", "test"),
            ("x='a[$(rm -rf x)]'; echo $((x))", ""),
            ("x='a[$(rm -rf x)]'; test -v \"$x\"", "test"),
        ] {
            let f = facts(cmd);
            let held_by = |h: &super::CommandFact| {
                f.commands
                    .iter()
                    .any(|r| r.name == "rm" && r.parent == Some(h.id) && r.via == "substitution")
            };
            assert!(
                f.commands
                    .iter()
                    .any(|h| h.name == owner && !h.evaluated_subscripts.is_empty() && held_by(h)),
                "{cmd}: {:?}",
                f.commands
            );
        }
        // Not a subscript the shell evaluates: awk's fields, a grep pattern, arithmetic in
        // a subscript, a substitution that runs where it is written.
        for cmd in [
            "awk '{c[$(NF)]++} END {for (k in c) print k}' data.txt",
            "rg -F 'a[$(id)]' src",
            "echo \"${arr[$((i+1))]}\"",
            "echo \"a[$(date)]\"",
        ] {
            let f = facts(cmd);
            assert!(
                f.commands.iter().all(|c| c.evaluated_subscripts.is_empty()),
                "{cmd}: {:?}",
                f.commands
            );
        }
    }

    #[test]
    fn here_documents_with_an_empty_delimiter_are_not_parsed() {
        // Found by libFuzzer: brush's parser never returned on `cat <<'' #`.
        for text in [
            "cat <<'' #",
            "<<<<<''<#",
            "cat <<\"\" #",
            "cat <<- '' x",
            "a <<$''",
            // Found by libFuzzer: brush allocated gigabytes on a missing delimiter in `$(`.
            "$(<<\t\t",
            "x $(cat <<)",
            "cat <<",
            "cat << ;",
            // And on a here-document inside an unclosed `$(`.
            "$(<<  O ",
            "$(<<\t\tEOF ",
            "x \"$(cat <<EOF\nx\nEOF",
            "\"$(<<\t\t\x0f)\" ",
            "cat <<EOF",
        ] {
            let f = facts(text);
            assert!(f.scripts[0].parse_error.is_some(), "{text}");
        }
        for text in [
            "cat <<'EOF'\nx\nEOF",
            "cat <<<'x'",
            "cat <<< \"\" ",
            "cat <<-EOF\nx\nEOF",
            "echo $((1 << 2))",
            "((a <<= 2))",
            "x \"$(cat <<EOF\nx\nEOF\n)\"",
        ] {
            let f = facts(text);
            assert!(f.scripts[0].parse_error.is_none(), "{text}");
        }
    }

    #[test]
    fn a_parser_panic_is_a_parse_error() {
        // Found by libFuzzer: brush unwraps the fd number of `99999999999>x` as an int.
        let f = facts("echo 99999999999>x");
        assert!(f.scripts[0].parse_error.is_some(), "{:?}", f.scripts);
        let f = facts("echo 2>x");
        assert!(f.scripts[0].parse_error.is_none());
    }

    #[test]
    fn word_parser_panics_are_unparsed_words() {
        // Found by libFuzzer: brush unwraps the directory-stack index of `~NNN`.
        let f = facts("ls ~111111111111111111111111 && git status");
        assert!(
            f.commands.iter().any(|c| c.name == "git"),
            "{:?}",
            f.commands
        );
        assert!(!f.commands[0].literal, "{:?}", f.commands[0]);
    }

    #[test]
    fn deep_unmatched_brackets_stay_fast() {
        // Found by libFuzzer: brush's parser backtracks exponentially on unmatched `(`
        // (28 of them took 13 s); past 16 open brackets the script is not parsed.
        for n in [16, 17, 28, 64] {
            let text = format!("{}ls -lit: 0tatus", "(".repeat(n));
            let t = std::time::Instant::now();
            let f = facts(&text);
            assert!(t.elapsed() < std::time::Duration::from_secs(2), "{n}");
            if n > 16 {
                assert!(f.scripts[0].parse_error.is_some(), "{n}");
            }
        }
    }

    #[test]
    fn unmatched_braces_are_not_expanded_and_stay_fast() {
        // Found by the fuzz smoke: brush's brace parser took 33 s on 20 `{`.
        for text in [
            "{".repeat(64),
            "{,".repeat(500),
            "{$(".repeat(40),
            "x{".repeat(300),
        ] {
            let t = std::time::Instant::now();
            let f = facts(&text);
            assert!(t.elapsed() < std::time::Duration::from_secs(2), "{text}");
            assert!(
                !f.commands.iter().any(|c| c.literal),
                "{text}: {:?}",
                f.commands
            );
        }
        assert_eq!(unquoted_braces("{a,b}"), Some(1));
        assert_eq!(unquoted_braces("'{'{a,b}\\{"), Some(1));
        assert_eq!(unquoted_braces("{a,b}{"), None);
        assert_eq!(unquoted_braces("}{"), None);
        let f = facts("{rm,-rf,/}");
        assert_eq!(f.commands[0].name, "rm");
        let f = facts("awk '{print $1}' data.txt");
        assert!(f.commands[0].literal, "{:?}", f.commands[0]);
    }

    #[test]
    fn a_url_after_a_multibyte_character_is_found() {
        // Found by libFuzzer: the scheme's start was taken one byte after a 3-byte character.
        // (`.http:` is no scheme: no URL, and no panic.)
        let f = facts("curl \u{fffd}\u{fffd}.http://[::ffff:169.254.169.254]:80/x");
        assert!(f.urls.is_empty());
        let f = facts("curl \u{fffd}http://169.254.169.254/x");
        assert_eq!(f.urls[0].host, "169.254.169.254");
    }

    #[test]
    fn words_are_marked_literal_or_not() {
        let f = facts("cat $F \"$(date)\" *.rs {a,b}.txt ~bob/x $((1+2)) plain");
        let kinds: Vec<(usize, Vec<&str>)> = f.commands[0]
            .dynamic
            .iter()
            .map(|d| (d.index, d.kinds.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, vec!["variable"]),
                (2, vec!["command_substitution"]),
                (3, vec!["glob"]),
                (4, vec!["brace"]),
                (5, vec!["brace"]),
                (6, vec!["tilde_user"]),
                (7, vec!["arithmetic"]),
            ]
        );
        assert!(!f.commands[0].literal);
        assert!(facts("ls -la").commands[0].literal);
        // A quoted glob character is text, not a glob.
        assert!(facts("cat '*.rs'").commands[0].dynamic.is_empty());
    }

    #[test]
    fn redirections_are_stated_with_normalised_targets() {
        let f = facts("cmd < in > ./out 2>> ~/log &> /dev/null 2>&1 <> rw");
        let r: Vec<(i32, &str, &str, String)> = f.commands[0]
            .redirects
            .iter()
            .map(|r| (r.fd, r.op, r.mode, r.target.clone()))
            .collect();
        assert_eq!(
            r,
            [
                (0, "<", "read", "/home/dev/project/in".to_string()),
                (1, ">", "write", "/home/dev/project/out".to_string()),
                (2, ">>", "append", "/home/dev/log".to_string()),
                (1, "&>", "write", "/dev/null".to_string()),
                (2, ">&", "duplicate", "1".to_string()),
                (0, "<>", "read_write", "/home/dev/project/rw".to_string()),
            ]
        );
        // `{ …; } > f` applies to every command inside.
        let f = facts("{ echo a; echo b; } > /etc/x");
        assert!(f.commands.iter().all(|c| c.redirects[0].target == "/etc/x"));
    }

    #[test]
    fn only_text_passed_on_unchanged_is_a_piped_script() {
        // cat with no file passes its here-document on; python's here-document is code,
        // and what python prints is not known.
        let f = facts("python3 - <<EOF | sh\nrm -rf x\nEOF");
        assert!(
            f.commands.iter().all(|c| c.name != "rm"),
            "{:?}",
            f.commands
        );
        let f = facts("cat notes.txt <<EOF | sh\nrm -rf x\nEOF");
        assert!(
            f.commands.iter().all(|c| c.name != "rm"),
            "{:?}",
            f.commands
        );
    }

    #[test]
    fn wrappers_are_unwrapped_and_stay_commands() {
        for (cmd, wrappers) in [
            ("sudo -u root rm -rf /", vec!["sudo"]),
            ("env A=1 rm -rf /", vec!["env"]),
            ("env - A=1 rm -rf /", vec!["env"]),
            ("env -i - -u X rm -rf /", vec!["env"]),
            ("timeout 5 nice -n 5 rm -rf /", vec!["timeout", "nice"]),
            ("nohup stdbuf -oL rm -rf / &", vec!["nohup", "stdbuf"]),
            ("command exec rm -rf /", vec!["command", "exec"]),
            ("xargs -0 rm -rf", vec!["xargs"]),
            ("watch -n 1 'rm -rf /'", vec![]),
            ("flock /tmp/l setsid rm -rf /", vec!["flock", "setsid"]),
            ("chroot /mnt rm -rf /", vec!["chroot"]),
            ("pkexec --user root rm -rf /", vec!["pkexec"]),
            ("run0 -u root rm -rf /", vec!["run0"]),
            ("doas time rm -rf /", vec!["doas", "time"]),
            ("ionice -c3 rm -rf /", vec!["ionice"]),
            ("find . -execdir rm -rf {} ;", vec!["find"]),
            ("fd . -X rm -rf", vec!["fd"]),
        ] {
            let f = facts(cmd);
            let rm = f.commands.iter().find(|c| c.name == "rm");
            assert!(
                rm.is_some_and(|c| c.wrappers == wrappers),
                "{cmd}: {:?}",
                f.commands
            );
            assert!(
                f.commands[0].name != "rm",
                "{cmd}: the wrapper stays a command"
            );
        }
    }

    #[test]
    fn the_environment_a_wrapper_sets_reaches_the_command_it_runs() {
        for (cmd, names) in [
            ("env LD_PRELOAD=/x.so ls", vec!["LD_PRELOAD"]),
            ("env -i A=1 B=2 ls", vec!["A", "B"]),
            ("sudo PAGER=x ls", vec!["PAGER"]),
            ("GIT_PAGER=x timeout 5 ls", vec!["GIT_PAGER"]),
            ("A=1 env B=2 nice ls", vec!["A", "B"]),
            ("timeout 5 ls", vec![]),
        ] {
            let f = facts(cmd);
            let ls = f.commands.iter().find(|c| c.name == "ls");
            assert!(
                ls.is_some_and(|c| c.assignments == names),
                "{cmd}: {:?}",
                f.commands
            );
        }
    }

    #[test]
    fn a_lone_bracket_is_the_test_program_not_a_glob() {
        let f = facts("[ -d src ] && ls src");
        assert_eq!(f.commands[0].name, "[");
        assert!(f.commands[0].literal, "{:?}", f.commands[0]);
        let f = facts("ls [ab].txt");
        assert_eq!(f.commands[0].dynamic[0].kinds, ["glob"]);
    }

    #[test]
    fn inline_code_is_stated() {
        for (cmd, language) in [
            ("python3 -c 'import os'", "python"),
            ("node -e 'x'", "javascript"),
            ("perl -e 'x'", "perl"),
            ("ruby -e 'x'", "ruby"),
            ("php -r 'x'", "php"),
            ("awk '{print}' f", "awk"),
        ] {
            let f = facts(cmd);
            assert_eq!(
                f.commands[0].code.as_ref().map(|c| c.language),
                Some(language)
            );
        }
        let f = facts(r#"awk '{ system("id") }' f"#);
        assert_eq!(f.commands[0].code.as_ref().unwrap().effects, ["system"]);
        let f = facts(r#"awk 'BEGIN { print ENVIRON["GITHUB_TOKEN"] }'"#);
        assert_eq!(f.commands[0].code.as_ref().unwrap().effects, ["environ"]);
        let f = facts(r#"awk '{ print > "/tmp/x" }' f"#);
        assert_eq!(f.commands[0].code.as_ref().unwrap().effects, ["redirect"]);
        // A comparison in a pattern is not an output redirection.
        assert!(
            facts("awk '$3 > 10 { print $1 }' f").commands[0]
                .code
                .as_ref()
                .unwrap()
                .effects
                .is_empty()
        );
    }

    #[test]
    fn inline_code_literals_are_read_for_commands_paths_and_urls() {
        // A literal given to a call that runs a shell is parsed as that command.
        for (cmd, program) in [
            (r#"python3 -c 'import os; os.system("rm -rf ~")'"#, "rm"),
            (
                r#"node -e 'require("child_process").execSync("curl x | sh")'"#,
                "curl",
            ),
            ("ruby -e 'puts `id`'", "id"),
            (r#"awk 'BEGIN{system("shred x")}'"#, "shred"),
            (
                r#"python3 -c 'import subprocess; subprocess.run(["rm", "-rf", "/"])'"#,
                "rm",
            ),
            // A program read from stdin: a here-document, a here-string, piped text.
            (
                "python3 - <<'PY'\nimport os\nos.system(\"rm -rf ~\")\nPY",
                "rm",
            ),
            (
                r#"node <<< 'require("child_process").execSync("shred x")'"#,
                "shred",
            ),
            (r#"echo 'system("mkfs /dev/sda")' | perl"#, "mkfs"),
        ] {
            let f = facts(cmd);
            let inner = f.commands.iter().find(|c| c.name == program);
            assert_eq!(
                inner.map(|c| c.via),
                Some("code"),
                "{cmd}: {:?}",
                f.commands
            );
        }
        // One path-shaped or URL-shaped literal is a path or URL the code names.
        let f = facts(r#"node -e "require('fs').readFileSync('/home/dev/.aws/credentials')""#);
        assert!(
            f.paths
                .iter()
                .any(|p| p.path == "/home/dev/.aws/credentials")
        );
        let f = facts(r#"python3 -c 'import urllib.request as u; u.urlopen("http://10.0.0.1/x")'"#);
        assert!(f.urls.iter().any(|u| u.host == "10.0.0.1"), "{:?}", f.urls);
        // An interpreter given its program on stdin runs code, whatever the text says.
        let f = facts("python3 <<< 'print(1)'");
        assert_eq!(
            f.commands[0].code.as_ref().map(|c| c.language),
            Some("python")
        );
        // JavaScript's backticks are template strings, not commands; prose is not a path.
        let f = facts("node -e 'console.log(`rm -rf /`, \"see /etc and more\")'");
        assert!(f.commands.iter().all(|c| c.name != "rm"));
        assert!(f.paths.iter().all(|p| p.path != "/etc"));
    }

    #[test]
    fn an_awk_program_is_every_text_its_grammar_gives_or_unknown() {
        let code = |cmd: &str| facts(cmd).commands[0].code.clone().expect("awk is code");
        // -e/--source texts are the program, all of them; the first operand is then a file.
        let c = code(r#"gawk -e 'BEGIN{print 1}' -e 'BEGIN{system("id")}' f"#);
        assert_eq!(c.effects, ["system"]);
        assert_eq!(
            code(r#"gawk --source='BEGIN{system("id")}'"#).effects,
            ["system"]
        );
        assert_eq!(code("awk -F, -v x=1 '{print $1}' f").text, "{print $1}");
        // A program from a file, or options the grammar does not know: text unknown.
        for cmd in [
            "gawk -E /tmp/p.awk",
            "gawk --exec=/tmp/p.awk",
            "awk -f p.awk f",
            "awk --unknown '{print}' f",
        ] {
            assert_eq!(code(cmd).text, "", "{cmd}");
        }
    }

    #[test]
    fn a_pattern_operand_is_program_text_not_a_path() {
        let paths = |cmd: &str| -> Vec<String> {
            facts(cmd).paths.iter().map(|p| p.path.clone()).collect()
        };
        let cwd = "/home/dev/project";
        // The regex, filter or script is not a file the command reads.
        for (cmd, text, files) in [
            ("grep -rn id_rsa src/", "id_rsa", vec!["src"]),
            ("yq '.env' deploy.yaml", ".env", vec!["deploy.yaml"]),
            (
                "jq --arg k v .token resp.json",
                ".token",
                vec!["k", "v", "resp.json"],
            ),
            ("rg -g '*.rs' -- -x lib", "-x", vec!["*.rs", "lib"]),
            ("yq e .a x.yaml", ".a", vec!["e", "x.yaml"]),
            ("sed -n 1,5p README.md", "1,5p", vec!["README.md"]),
        ] {
            let f = facts(cmd);
            assert_eq!(
                f.commands[0].program_text.as_deref(),
                Some(&[text.to_string()][..]),
                "{cmd}"
            );
            let want: Vec<String> = files.iter().map(|p| format!("{cwd}/{p}")).collect();
            assert_eq!(paths(cmd), want, "{cmd}");
        }
        // Where the program comes from elsewhere, every operand is a file: after `-e`
        // (even given after the operands, as GNU getopt allows, or abbreviated), with a
        // program file, an option the grammar does not know, a word known only at run
        // time, or a lone yq operand (yq reads an existing file with the filter `.`).
        assert_each_states_path(
            &[
                "grep ~/.ssh/id_rsa -e x",
                "grep --rege=x ~/.ssh/id_rsa",
                "grep --fil ~/.ssh/id_rsa x",
                "grep -rex ~/.ssh/id_rsa",
                "grep $X ~/.ssh/id_rsa",
                "grep ~/.ssh/id_rsa $X",
                "jq -f ~/.ssh/id_rsa x",
                "jq --rawfile k ~/.ssh/id_rsa -n .",
                "sed -e p ~/.ssh/id_rsa",
                "sed -s -f x ~/.ssh/id_rsa",
                "yq ~/.ssh/id_rsa",
                "yq -s . ~/.ssh/id_rsa",
                "rg --files ~/.ssh/id_rsa",
                "grep -5 ~/.ssh/id_rsa x",
            ],
            "/home/dev/.ssh/id_rsa",
        );
    }

    #[test]
    fn find_states_what_it_selects_by_name() {
        let f = facts("find ~ -name 'id_*' -exec cat {} +");
        assert!(
            f.paths.iter().any(|p| p.path == "/home/dev/id_*" && p.glob),
            "{:?}",
            f.paths
        );
        let f = facts("find src . -iname '*.KEY' | xargs cat");
        for p in ["/home/dev/project/src/*.key", "/home/dev/project/*.key"] {
            assert!(f.paths.iter().any(|x| x.path == p), "{p}: {:?}", f.paths);
        }
        // Without a starting point, find starts at the working directory.
        let f = facts("cat $(find -name '*.rs')");
        assert!(
            f.paths.iter().any(|p| p.path == "/home/dev/project/*.rs"),
            "{:?}",
            f.paths
        );
        // Handed on in other ways: a write of the list, a deletion.
        assert_each_states_path(
            &[
                "find . -name '*.pem' > list.txt",
                "find . -name '*.pem' -delete",
            ],
            "/home/dev/project/*.pem",
        );
        // A find that only prints names touches no file's contents.
        let f = facts("find . -name '*.pem' -o -name .env");
        assert!(f.paths.iter().all(|p| !p.glob), "{:?}", f.paths);
    }

    #[test]
    fn xargs_hands_its_command_the_words_it_reads() {
        let cases: &[(&str, &[&str])] = &[
            (
                "echo / | xargs rm -rf",
                &["echo|echo /", "xargs|xargs rm -rf", "rm|rm -rf /"],
            ),
            (
                "echo -rf / | xargs rm",
                &["echo|echo -rf /", "xargs|xargs rm", "rm|rm -rf /"],
            ),
            (
                "xargs rm -rf <<< '/tmp/a /tmp/b'",
                &["xargs|xargs rm -rf", "rm|rm -rf /tmp/a /tmp/b"],
            ),
            (
                "printf 'a\\nb\\n' | xargs -I{} cat {}.txt",
                &[
                    "printf|printf a\\nb\\n",
                    "xargs|xargs -I{} cat {}.txt",
                    "cat|cat a.txt",
                    "cat|cat b.txt",
                ],
            ),
            (
                "echo x | xargs -I % cp % /tmp/%",
                &[
                    "echo|echo x",
                    "xargs|xargs -I % cp % /tmp/%",
                    "cp|cp x /tmp/x",
                ],
            ),
            // Words from a file or another program are unknown: the command as written.
            (
                "git log | xargs cat",
                &["git|git log", "xargs|xargs cat", "cat|cat"],
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(shown(cmd), *want, "{cmd}");
        }
    }

    #[test]
    fn a_substitution_that_echoes_one_word_is_that_word() {
        for cmd in [
            "$(echo rm) -rf x",
            "`printf rm` -rf x",
            "\"$(printf %s rm)\" -rf x",
        ] {
            let f = facts(cmd);
            let c = f.commands.iter().find(|c| c.via == "script");
            assert!(
                c.is_some_and(|c| c.name == "rm"
                    && c.dynamic
                        .iter()
                        .any(|d| d.index == 0 && d.kinds.contains(&"command_substitution"))),
                "{cmd}: {:?}",
                f.commands
            );
        }
        // Anything else stays unknown.
        for cmd in [
            "$(echo rm -rf) x",
            "$(cat name) x",
            "$(echo $X) x",
            "$(printf '%s%s' r m) x",
        ] {
            let f = facts(cmd);
            let c = f.commands.iter().find(|c| c.via == "script");
            assert!(c.is_some_and(|c| c.name != "rm"), "{cmd}: {:?}", f.commands);
        }
    }

    #[test]
    fn a_curl_write_out_file_is_a_path() {
        assert_each_states_path(
            &[
                "curl -w '%output{/home/dev/.bashrc}x' https://example.com",
                "curl -w '%output{>>~/.bashrc}%{http_code}' https://example.com",
                "curl --write-out='%output{~/.bashrc}' https://example.com",
            ],
            "/home/dev/.bashrc",
        );
        assert_eq!(super::write_out_file("%{http_code}\\n"), None);
        assert_eq!(super::write_out_file("%output{}x"), None);
        assert_eq!(super::write_out_file("%output{unclosed"), None);
    }

    #[test]
    fn paths_follow_cd_and_variables() {
        let f = facts("cd ~/.ssh && cat id_rsa");
        assert!(f.paths.iter().any(|p| p.path == "/home/dev/.ssh/id_rsa"));
        let f = facts("D=~/.aws; cat $D/credentials");
        assert!(
            f.paths
                .iter()
                .any(|p| p.path == "/home/dev/.aws/credentials")
        );
        let f = facts("cat ~/.ss*/id_*");
        assert!(
            f.paths
                .iter()
                .any(|p| p.glob && p.path == "/home/dev/.ss*/id_*")
        );
        let f = facts("git diff --output=/home/dev/.bashrc");
        assert!(f.paths.iter().any(|p| p.path == "/home/dev/.bashrc"));
        // A short option's value written against it, a KEY=PATH operand, a variable read
        // from a here-string, and a default for a variable the script never sets.
        assert_each_states_path(
            &[
                "grep -f/home/dev/.ssh/id_rsa x",
                "tar -xzf/home/dev/.ssh/id_rsa",
                "dd if=/home/dev/.ssh/id_rsa",
                "read -r f <<< ~/.ssh/id_rsa; cat \"$f\"",
                "cat ~/${D:-.ssh}/id_rsa",
                "cat ${K:=~/.ssh/id_rsa}",
            ],
            "/home/dev/.ssh/id_rsa",
        );
        let f = facts("D=docs; cat ${D:-.ssh}/x");
        assert!(
            f.paths.iter().all(|p| p.path != "/home/dev/project/.ssh/x"),
            "{:?}",
            f.paths
        );
        assert_eq!(super::attached_path("-I/usr/include"), Some("/usr/include"));
        assert_eq!(super::attached_path("--x/y"), None);
        assert_eq!(super::attached_path("-/x"), None);
        assert_eq!(super::attached_path("-a.b/c"), None);
    }

    #[test]
    fn urls_in_commands_are_parsed() {
        let f = facts("curl -s http://0xa9fea9fe/latest && wget 2852039166/x");
        let hosts: Vec<&str> = f.urls.iter().map(|u| u.host.as_str()).collect();
        assert_eq!(hosts, ["169.254.169.254", "169.254.169.254"]);
    }

    #[test]
    fn what_does_not_parse_is_a_fact() {
        let f = facts("echo 'unterminated");
        assert!(f.scripts[0].parse_error.is_some());
        assert!(f.commands.is_empty());
        let f = facts("echo ok; )");
        assert!(f.scripts[0].parse_error.is_some());
    }
}
