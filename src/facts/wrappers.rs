//! What a command runs besides itself: the command behind a wrapper (`sudo`, `env`, `timeout`,
//! `xargs`, `find -exec`, ...), the script of a shell (`sh -c STRING`, stdin), `eval`, and the
//! code given inline to an interpreter (`python -c`, `node -e`, an awk program).
//!
//! Each wrapper is read with its own option grammar (which options take a value), so that the
//! wrapped command starts where the wrapper's real parser would start it.

/// What a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inner {
    Nothing,
    /// `argv[i..]` is a command.
    Command(usize),
    /// Each `argv[a..b]` is a command (`find -exec … ; -exec … +`).
    Commands(Vec<(usize, usize)>),
    /// Shell code in a string (`sh -c`, `su -c`, `watch`).
    Script(String),
    /// `eval`: its arguments joined by spaces, parsed as shell code.
    Eval(String),
    /// A shell that reads its script from stdin (a here-document or a pipe).
    Stdin,
    /// Inline code for an interpreter.
    Code(&'static str, String),
    /// Several pieces of shell code (`alias a='…' b='…'`, `export PROMPT_COMMAND='…'`).
    Scripts(Vec<String>),
    /// An interpreter that reads its program from stdin (`python3`, `node -`, `perl`
    /// with no script operand): the code is a here-document, a here-string or piped text.
    CodeStdin(&'static str),
}

/// How a wrapper's options read: which short letters and long names take a value.
struct Grammar {
    short_value: &'static str,
    long_value: &'static [&'static str],
}

/// The index of the first operand at or after `from` (after `--` when there is one).
fn first_operand(argv: &[String], from: usize, g: &Grammar) -> usize {
    let mut i = from;
    while i < argv.len() {
        let w = argv[i].as_str();
        if w == "--" {
            return i + 1;
        }
        if let Some(long) = w.strip_prefix("--") {
            let takes = !long.contains('=') && g.long_value.contains(&long);
            i += if takes { 2 } else { 1 };
            continue;
        }
        if w.len() > 1 && w.starts_with('-') {
            let letters: Vec<char> = w[1..].chars().collect();
            let mut skip_next = false;
            for (k, c) in letters.iter().enumerate() {
                if g.short_value.contains(*c) {
                    // The value is the rest of this word, or the next word.
                    skip_next = k + 1 == letters.len();
                    break;
                }
            }
            i += if skip_next { 2 } else { 1 };
            continue;
        }
        return i;
    }
    i
}

fn has_flag(argv: &[String], short: char, long: &str) -> Option<usize> {
    argv.iter().skip(1).position(|w| {
        w == &format!("--{long}")
            || (w.starts_with('-') && !w.starts_with("--") && w[1..].contains(short))
    })
}

/// Variables whose value is a command line some program runs later (bash before each
/// prompt, git for ssh, pagers and editors, less's input filter).
pub const COMMAND_VARIABLES: &[&str] = &[
    "PROMPT_COMMAND",
    "GIT_SSH_COMMAND",
    "GIT_PAGER",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "PAGER",
    "MANPAGER",
    "SYSTEMD_PAGER",
    "EDITOR",
    "VISUAL",
    "FCEDIT",
    "BROWSER",
    "LESSOPEN",
    "LESSCLOSE",
    "RSYNC_RSH",
    "CVS_RSH",
];

/// The command line `value` is when variable `name` holds one, if it does (LESSOPEN's leading
/// `|` marks a pipe, not part of the command).
pub fn command_line_of<'a>(name: &str, value: &'a str) -> Option<&'a str> {
    COMMAND_VARIABLES
        .contains(&name)
        .then(|| value.trim_start_matches(['|', ' ']))
}

const SHELLS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "yash", "fish", "rbash", "tcsh", "csh",
    "posh", "oksh", "loksh", "nu", "xonsh", "elvish",
];

/// What the command `name` with `argv` runs.
pub fn inner(name: &str, argv: &[String]) -> Inner {
    let g = |short_value, long_value| Grammar {
        short_value,
        long_value,
    };
    let after = |grammar: Grammar, positional: usize| {
        let mut i = first_operand(argv, 1, &grammar) + positional;
        // sudo takes `NAME=value` words before the command and sets them for it.
        while name == "sudo" && argv.get(i).is_some_and(|w| is_assignment(w)) {
            i += 1;
        }
        if i < argv.len() {
            Inner::Command(i)
        } else {
            Inner::Nothing
        }
    };
    match name {
        "sudo" => {
            if argv
                .iter()
                .any(|w| w == "-e" || w == "--edit" || w == "-l" || w == "--list")
            {
                return Inner::Nothing;
            }
            after(
                g(
                    "ugCDprtTUR",
                    &[
                        "user",
                        "group",
                        "chdir",
                        "close-from",
                        "prompt",
                        "role",
                        "type",
                        "command-timeout",
                        "other-user",
                        "chroot",
                        "host",
                    ],
                ),
                0,
            )
        }
        "doas" => after(g("uC", &[]), 0),
        // polkit's and systemd's sudo-likes.
        "pkexec" => after(g("", &["user"]), 0),
        "run0" => after(
            g(
                "uDg",
                &[
                    "user",
                    "group",
                    "chdir",
                    "unit",
                    "property",
                    "description",
                    "slice",
                    "nice",
                    "setenv",
                    "background",
                    "machine",
                ],
            ),
            0,
        ),
        "nohup" | "setsid" | "busybox" | "caffeinate" | "unbuffer" => after(g("", &[]), 0),
        "nice" => after(g("n", &["adjustment"]), 0),
        "ionice" => {
            if argv.iter().any(|w| w == "-p" || w == "--pid") {
                return Inner::Nothing;
            }
            after(g("cnP", &["class", "classdata"]), 0)
        }
        "timeout" => after(g("sk", &["signal", "kill-after"]), 1),
        "stdbuf" => after(g("ioe", &["input", "output", "error"]), 0),
        "time" => after(g("fo", &["format", "output"]), 0),
        "taskset" => {
            if argv.iter().any(|w| w == "-p" || w == "--pid") {
                return Inner::Nothing;
            }
            after(g("", &[]), 1)
        }
        "strace" | "ltrace" => after(g("oeEpsuUXPaIbS", &["output"]), 0),
        "chroot" => after(g("", &["userspec", "groups"]), 1),
        "command" | "builtin" => {
            if argv.iter().skip(1).any(|w| w == "-v" || w == "-V") {
                return Inner::Nothing;
            }
            after(g("", &[]), 0)
        }
        "exec" => after(g("a", &[]), 0),
        "env" => {
            if let Some(i) = argv.iter().position(|w| w == "-S" || w == "--split-string") {
                return argv
                    .get(i + 1)
                    .map_or(Inner::Nothing, |s| Inner::Script(s.clone()));
            }
            if let Some(s) = argv.iter().find_map(|w| w.strip_prefix("--split-string=")) {
                return Inner::Script(s.to_string());
            }
            let options = g("uCS", &["unset", "chdir"]);
            let mut i = first_operand(argv, 1, &options);
            // A lone `-` is `-i` (an empty environment); options may follow it.
            while argv.get(i).is_some_and(|w| w == "-") {
                i = first_operand(argv, i + 1, &options);
            }
            while i < argv.len() && is_assignment(&argv[i]) {
                i += 1;
            }
            if i < argv.len() {
                Inner::Command(i)
            } else {
                Inner::Nothing
            }
        }
        "xargs" => after(
            g(
                "aEdILnPs",
                &[
                    "arg-file",
                    "delimiter",
                    "eof",
                    "replace",
                    "max-lines",
                    "max-args",
                    "max-procs",
                    "max-chars",
                    "process-slot-var",
                ],
            ),
            0,
        ),
        "watch" => {
            let i = first_operand(argv, 1, &g("nq", &["interval", "equexit"]));
            if i >= argv.len() {
                return Inner::Nothing;
            }
            if has_flag(&argv[..i], 'x', "exec").is_some() {
                Inner::Command(i)
            } else {
                Inner::Script(argv[i..].join(" "))
            }
        }
        "flock" => {
            if let Some(i) = argv.iter().position(|w| w == "-c" || w == "--command") {
                return argv
                    .get(i + 1)
                    .map_or(Inner::Nothing, |s| Inner::Script(s.clone()));
            }
            after(g("wEc", &["timeout", "wait", "conflict-exit-code"]), 1)
        }
        "su" | "runuser" | "script" | "sg" => {
            if let Some(i) = argv.iter().position(|w| w == "-c" || w == "--command") {
                return argv
                    .get(i + 1)
                    .map_or(Inner::Nothing, |s| Inner::Script(s.clone()));
            }
            if let Some(s) = argv.iter().find_map(|w| w.strip_prefix("--command=")) {
                return Inner::Script(s.to_string());
            }
            match argv.iter().position(|w| w == "--") {
                Some(i) if name == "runuser" && i + 1 < argv.len() => Inner::Command(i + 1),
                _ => Inner::Nothing,
            }
        }
        "find" => {
            let mut ranges = Vec::new();
            let mut i = 1;
            while i < argv.len() {
                if matches!(argv[i].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                    let start = i + 1;
                    let mut end = start;
                    while end < argv.len() && argv[end] != ";" && argv[end] != "+" {
                        end += 1;
                    }
                    ranges.push((start, end));
                    i = end;
                }
                i += 1;
            }
            Inner::Commands(ranges)
        }
        "fd" | "fdfind" => {
            let mut ranges = Vec::new();
            for (i, w) in argv.iter().enumerate() {
                if matches!(w.as_str(), "-x" | "-X" | "--exec" | "--exec-batch") {
                    let start = i + 1;
                    let end = argv[start..]
                        .iter()
                        .position(|w| w == ";")
                        .map_or(argv.len(), |p| start + p);
                    ranges.push((start, end));
                }
            }
            Inner::Commands(ranges)
        }
        "eval" => Inner::Eval(argv[1..].join(" ")),
        // `trap CODE SIGNAL...`: the code runs when the signal (or EXIT) comes.
        "trap" => {
            let i = first_operand(argv, 1, &g("", &[]));
            match argv.get(i) {
                Some(code) if code != "-" && i + 1 < argv.len() => Inner::Script(code.clone()),
                _ => Inner::Nothing,
            }
        }
        // An alias's value is the command its name runs from then on.
        "alias" => Inner::Scripts(
            argv[1..]
                .iter()
                .filter_map(|w| w.split_once('=').map(|(_, v)| v.to_string()))
                .collect(),
        ),
        "export" | "declare" | "typeset" | "local" | "readonly" => Inner::Scripts(
            argv[1..]
                .iter()
                .filter_map(|w| {
                    let name = assignment_name(w)?;
                    command_line_of(name, &w[name.len() + 1..]).map(String::from)
                })
                .collect(),
        ),
        // A callback run for lines read (mapfile -C) or to complete a word (complete -C).
        "mapfile" | "readarray" | "complete" | "compgen" => {
            match argv.iter().position(|w| w == "-C") {
                Some(i) => argv
                    .get(i + 1)
                    .map_or(Inner::Nothing, |c| Inner::Script(c.clone())),
                None => Inner::Nothing,
            }
        }
        // at and batch read the job from stdin unless -f names a file.
        "at" | "batch" => {
            if argv.iter().skip(1).any(|w| w.starts_with("-f")) {
                Inner::Nothing
            } else {
                Inner::Stdin
            }
        }
        "screen" => {
            let i = first_operand(argv, 1, &g("cehpsStTX", &["Logfile"]));
            if i < argv.len() {
                Inner::Command(i)
            } else {
                Inner::Nothing
            }
        }
        // tmux's commands that start a shell command take it as their last word.
        "tmux" => {
            let starts = [
                "new",
                "new-session",
                "new-window",
                "neww",
                "split-window",
                "splitw",
                "respawn-pane",
                "respawnp",
                "respawn-window",
                "respawnw",
                "run-shell",
                "run",
                "display-popup",
                "popup",
            ];
            let sub = argv
                .iter()
                .skip(1)
                .position(|w| starts.contains(&w.as_str()));
            match (sub, argv.last()) {
                (Some(k), Some(last)) if k + 1 < argv.len() - 1 && !last.starts_with('-') => {
                    Inner::Script(last.clone())
                }
                _ => Inner::Nothing,
            }
        }
        n if SHELLS.contains(&n) => shell(argv),
        n if n.starts_with("python") || n.starts_with("pypy") => {
            code_after(argv, &["-c"], "python", "WXOQm")
        }
        "node" | "nodejs" | "bun" => {
            code_after(argv, &["-e", "--eval", "-p", "--print"], "javascript", "r")
        }
        "deno" => match argv.get(1).map(String::as_str) {
            Some("eval") => argv
                .get(2)
                .map_or(Inner::Nothing, |c| Inner::Code("javascript", c.clone())),
            _ => Inner::Nothing,
        },
        "perl" => code_after(argv, &["-e", "-E"], "perl", "IMmx"),
        "ruby" => code_after(argv, &["-e"], "ruby", "IrC"),
        "php" => code_after(argv, &["-r"], "php", "dc"),
        "lua" | "luajit" => code_after(argv, &["-e"], "lua", "l"),
        "osascript" => code_after(argv, &["-e"], "applescript", ""),
        "pwsh" | "powershell" | "powershell.exe" => {
            code_after(argv, &["-c", "-command", "-Command"], "powershell", "")
        }
        // awk's program is read with its option grammar from the bundle's data (the
        // command's `program_text`), by the walker.
        _ => Inner::Nothing,
    }
}

/// `sh -c STRING`, `bash -lc STRING`, `sh < file` / `… | sh` (stdin), `sh script.sh`.
fn shell(argv: &[String]) -> Inner {
    let mut c_mode = false;
    let mut i = 1;
    while i < argv.len() {
        let w = argv[i].as_str();
        if w == "--" {
            i += 1;
            break;
        }
        if matches!(w, "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") {
            i += 2;
            continue;
        }
        if w.starts_with("--") {
            i += 1;
            continue;
        }
        if (w.starts_with('-') || w.starts_with('+')) && w.len() > 1 {
            if w[1..].contains('c') {
                c_mode = true;
            }
            // `-s`: read commands from stdin even with operands.
            if w.starts_with('-') && w[1..].contains('s') && !c_mode {
                return Inner::Stdin;
            }
            i += 1;
            continue;
        }
        break;
    }
    match argv.get(i) {
        Some(text) if c_mode => Inner::Script(text.clone()),
        Some(_) => Inner::Nothing,
        None if c_mode => Inner::Nothing,
        None => Inner::Stdin,
    }
}

/// The word after the first of `flags` (also clustered at the end, as in `perl -ne`).
fn code_after(
    argv: &[String],
    flags: &[&str],
    language: &'static str,
    value_letters: &str,
) -> Inner {
    let mut i = 1;
    while i < argv.len() {
        let w = argv[i].as_str();
        if w == "-" {
            return Inner::CodeStdin(language);
        }
        if w == "--" || !w.starts_with('-') {
            return Inner::Nothing;
        }
        for f in flags {
            if w == *f {
                return argv
                    .get(i + 1)
                    .map_or(Inner::Nothing, |c| Inner::Code(language, c.clone()));
            }
            if let Some(long) = f.strip_prefix("--")
                && let Some(v) = w.strip_prefix(&format!("--{long}="))
            {
                return Inner::Code(language, v.to_string());
            }
        }
        // A short flag inside a cluster (`-ne CODE`, `-eCODE`), its letters read in order: a
        // letter that takes a value ends the cluster (`ruby -rsocket -e …` is -r `socket`).
        if !w.starts_with("--") {
            for (pos, ch) in w[1..].char_indices() {
                if flags.iter().any(|f| f.len() == 2 && f.ends_with(ch)) {
                    let rest = &w[1 + pos + ch.len_utf8()..];
                    return if rest.is_empty() {
                        argv.get(i + 1)
                            .map_or(Inner::Nothing, |c| Inner::Code(language, c.clone()))
                    } else {
                        Inner::Code(language, rest.to_string())
                    };
                }
                if value_letters.contains(ch) {
                    break;
                }
            }
        }
        let takes_value = w.len() == 2 && value_letters.contains(&w[1..]);
        i += if takes_value { 2 } else { 1 };
    }
    // Options only, no script: the program comes from stdin.
    Inner::CodeStdin(language)
}

fn is_assignment(w: &str) -> bool {
    assignment_name(w).is_some()
}

/// The variable a `NAME=value` word sets.
pub(super) fn assignment_name(w: &str) -> Option<&str> {
    let (name, _) = w.split_once('=')?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmd: &str) -> Inner {
        let argv: Vec<String> = shlex::split(cmd).expect("a test command line");
        inner(&argv[0], &argv)
    }

    #[test]
    fn wrappers_skip_their_own_options() {
        let cases = [
            ("sudo -u root -E rm -rf /", Inner::Command(4)),
            ("sudo --user=root rm x", Inner::Command(2)),
            ("sudo --user root rm x", Inner::Command(3)),
            ("doas -u root rm x", Inner::Command(3)),
            ("env -i A=1 B=2 rm x", Inner::Command(4)),
            ("env -u HOME rm x", Inner::Command(3)),
            ("timeout -s KILL 10 rm x", Inner::Command(4)),
            ("timeout 5s rm x", Inner::Command(2)),
            ("nice -n 10 rm x", Inner::Command(3)),
            ("nice -10 rm x", Inner::Command(2)),
            ("ionice -c 3 rm x", Inner::Command(3)),
            ("nohup rm x", Inner::Command(1)),
            ("stdbuf -oL rm x", Inner::Command(2)),
            ("stdbuf -o L rm x", Inner::Command(3)),
            ("time -p rm x", Inner::Command(2)),
            ("command rm x", Inner::Command(1)),
            ("command -v rm", Inner::Nothing),
            ("exec -a name rm x", Inner::Command(3)),
            ("xargs -0 -n 1 rm", Inner::Command(4)),
            ("xargs -I{} rm {}", Inner::Command(2)),
            ("xargs", Inner::Nothing),
            ("flock /tmp/l rm x", Inner::Command(2)),
            ("flock -w 5 /tmp/l rm x", Inner::Command(4)),
            ("setsid -f rm x", Inner::Command(2)),
            ("chroot /mnt rm x", Inner::Command(2)),
            ("watch -x rm x", Inner::Command(2)),
            ("watch -n 1 ls", Inner::Script("ls".into())),
            ("eval rm -rf /", Inner::Eval("rm -rf /".into())),
            (
                "find . -exec rm {} ; -delete",
                Inner::Commands(vec![(3, 5)]),
            ),
            (
                "find . -execdir sh -c x {} +",
                Inner::Commands(vec![(3, 7)]),
            ),
            ("fd . -x truncate -s 0", Inner::Commands(vec![(3, 6)])),
            ("sh -c rm", Inner::Script("rm".into())),
            ("bash -lc rm", Inner::Script("rm".into())),
            ("bash -e -c rm", Inner::Script("rm".into())),
            ("bash -o pipefail -c rm", Inner::Script("rm".into())),
            ("bash", Inner::Stdin),
            ("bash -s", Inner::Stdin),
            ("bash script.sh", Inner::Nothing),
            (
                "python3 -c print(1)",
                Inner::Code("python", "print(1)".into()),
            ),
            ("python -Ic x", Inner::Code("python", "x".into())),
            ("python script.py", Inner::Nothing),
            ("python3", Inner::CodeStdin("python")),
            ("trap 'rm -rf ~' EXIT", Inner::Script("rm -rf ~".into())),
            ("trap - EXIT", Inner::Nothing),
            (
                "alias ls='rm -rf ~' ll='ls -l'",
                Inner::Scripts(vec!["rm -rf ~".into(), "ls -l".into()]),
            ),
            (
                "export PATH=/x PROMPT_COMMAND='curl x|sh'",
                Inner::Scripts(vec!["curl x|sh".into()]),
            ),
            ("mapfile -C 'rm x' -c 1 a", Inner::Script("rm x".into())),
            ("at now", Inner::Stdin),
            ("at -f job.sh now", Inner::Nothing),
            ("screen -dmS s bash -c id", Inner::Command(3)),
            ("tmux new -d 'rm -rf ~'", Inner::Script("rm -rf ~".into())),
            ("tmux ls", Inner::Nothing),
            ("python3 -u -", Inner::CodeStdin("python")),
            ("node -", Inner::CodeStdin("javascript")),
            ("perl -w", Inner::CodeStdin("perl")),
            ("node -e x", Inner::Code("javascript", "x".into())),
            ("node --eval=x", Inner::Code("javascript", "x".into())),
            ("perl -ne x", Inner::Code("perl", "x".into())),
            ("perl -e x", Inner::Code("perl", "x".into())),
            ("ruby -e x", Inner::Code("ruby", "x".into())),
            // A value-taking letter ends its cluster: `socket` holds an `e` that is no -e.
            ("ruby -rsocket -e x", Inner::Code("ruby", "x".into())),
            ("perl -MSocket -e x", Inner::Code("perl", "x".into())),
            ("python3 -Wignore -c x", Inner::Code("python", "x".into())),
            ("php -r x", Inner::Code("php", "x".into())),
            ("su -c rm root", Inner::Script("rm".into())),
            ("env -S rm", Inner::Script("rm".into())),
        ];
        for (cmd, want) in cases {
            assert_eq!(run(cmd), want, "{cmd}");
        }
    }
}
