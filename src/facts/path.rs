//! Path facts: every path-like value normalised lexically, the way the kernel will resolve it
//! when no symlink is involved: `~`, `~user`, `$HOME` and `${HOME}` expanded with the configured
//! home, relative paths joined to the working directory, `//` and `/./` collapsed, `..`
//! resolved. A glob keeps its wildcards (policy matches it as a pattern).

use serde::Serialize;

use super::glob;

/// One path-like value as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathFact {
    /// The normalised absolute path. A glob keeps its wildcards; a literal `*`, `?`, `[`, `]`
    /// or `\` in a glob is escaped with `\`.
    pub path: String,
    /// The path has wildcards: it names every path it can match.
    pub glob: bool,
    /// The last segment.
    pub name: String,
    /// The path and each wildcard-free ancestor, longest first, plus the same under the home
    /// directory written with `~` (`~/.ssh/id_rsa`, `~/.ssh`, `~`): sensitive-path rules look
    /// these up instead of matching patterns.
    pub prefixes: Vec<String>,
    /// The wildcard-free segments of the path (`.ssh` in `/root/.ssh/x`).
    pub segments: Vec<String>,
    /// For a glob: each prefix from its first wildcard segment on, as a glob that matches
    /// the way the shell does (a leading `*` or `?` never matches a leading `.`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub glob_prefixes: Vec<String>,
    /// `read`, `write`, `append`, `read_write` (redirections), `argument` (a command argument),
    /// `param` (a tool parameter), `workdir`.
    pub access: &'static str,
    /// Where it was found: `params.path`, `command 2`, ...
    pub source: String,
    /// As written (after quote removal).
    pub raw: String,
}

/// The directories a path is resolved against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathBase {
    pub home: String,
    pub cwd: String,
}

impl PathFact {
    /// A path whose glob characters (if `pattern`) are wildcards; else every character is
    /// literal.
    pub fn new(
        raw: &str,
        pattern: bool,
        base: &PathBase,
        access: &'static str,
        source: String,
    ) -> PathFact {
        let text = if pattern {
            raw.to_string()
        } else {
            glob::escape(raw)
        };
        let path = normalize(&text, base);
        let is_glob = pattern && glob::has_wildcards(&path);
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        let mut prefixes = prefixes(&path, &base.home);
        let segs: Vec<&str> = path.split('/').skip(1).collect();
        let mut segments: Vec<String> = segs
            .iter()
            .filter(|s| !s.is_empty() && !glob::has_wildcards(s))
            .map(|s| unescape(s))
            .collect();
        // macOS' and Windows' file systems ignore case by default: `~/.SSH/id_rsa` is
        // `~/.ssh/id_rsa` there, so the lower-case forms are looked up too.
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            let lower = path.to_ascii_lowercase();
            for p in self::prefixes(&lower, &base.home.to_ascii_lowercase()) {
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
            let lowered: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
            for s in lowered {
                if !segments.contains(&s) {
                    segments.push(s);
                }
            }
        }
        let glob_prefixes = if is_glob {
            let first = segs
                .iter()
                .position(|s| glob::has_wildcards(s))
                .unwrap_or(segs.len());
            (first..segs.len())
                .map(|k| {
                    let shell_like: Vec<String> =
                        segs[..=k].iter().map(|s| no_leading_dot(s)).collect();
                    format!("/{}", shell_like.join("/"))
                })
                .collect()
        } else {
            Vec::new()
        };
        PathFact {
            segments,
            glob_prefixes,
            path: if is_glob { path } else { unescape(&path) },
            glob: is_glob,
            name: unescape(&name),
            prefixes,
            access,
            source,
            raw: raw.to_string(),
        }
    }
}

/// Expand the home forms, join to `cwd`, and resolve `.`, `..` and empty segments. The text is
/// a glob (literal metacharacters escaped); the result is one too.
pub fn normalize(text: &str, base: &PathBase) -> String {
    let expanded = expand_home(text, &base.home);
    // A Windows drive path (`C:/Windows/...`) is absolute too.
    let bytes = expanded.as_bytes();
    let drive = bytes.len() > 2 && bytes[0].is_ascii_alphabetic() && &bytes[1..3] == b":/";
    let joined = if drive {
        format!("/{expanded}")
    } else if expanded.starts_with('/') {
        expanded
    } else {
        format!("{}/{}", base.cwd, expanded)
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." | "\\." => {}
            ".." | "\\.\\." | ".\\." | "\\.." => {
                parts.pop();
            }
            s => {
                parts.push(s);
                through_proc(&mut parts, &base.cwd);
            }
        }
    }
    format!("/{}", parts.join("/"))
}

/// `/proc/PID/root` (and `/proc/PID/task/TID/root`) is the process's root directory, so
/// `/proc/1/root/etc/shadow` is `/etc/shadow`; `/proc/self/cwd` is the caller's directory.
/// Any PID counts, a glob included: only processes have these entries.
fn through_proc<'a>(parts: &mut Vec<&'a str>, cwd: &'a str) {
    match parts.as_slice() {
        ["proc", _, "root"] | ["proc", _, "task", _, "root"] => parts.clear(),
        ["proc", "self" | "thread-self", "cwd"] => {
            parts.clear();
            parts.extend(cwd.split('/').filter(|s| !s.is_empty()));
        }
        _ => {}
    }
}

/// `~`, `~/x`, `~user/x`, `$HOME/x`, `${HOME}/x` at the start of a path.
fn expand_home(text: &str, home: &str) -> String {
    for var in ["$HOME", "${HOME}"] {
        if let Some(rest) = text.strip_prefix(var)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{home}{rest}");
        }
    }
    let Some(rest) = text.strip_prefix('~') else {
        return text.to_string();
    };
    let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match user {
        "" => format!("{home}{tail}"),
        "root" => format!("/root{tail}"),
        u if u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
        {
            format!("/home/{u}{tail}")
        }
        _ => text.to_string(),
    }
}

/// The path and each wildcard-free ancestor, plus the `~` forms under `home`.
fn prefixes(path: &str, home: &str) -> Vec<String> {
    let mut out = Vec::new();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    // Only ancestors without wildcards name a real directory that can be looked up.
    let literal = segs.iter().take_while(|s| !glob::has_wildcards(s)).count();
    for n in (0..=literal).rev() {
        out.push(unescape(&format!("/{}", segs[..n].join("/"))));
    }
    // The `~` forms: under the configured home, and under any other user's home
    // (`/root`, `/home/NAME`, macOS' `/Users/NAME`, Windows' `C:/Users/NAME`), since
    // `~/.ssh` is sensitive in every home.
    let home = home.trim_end_matches('/');
    let other_home = match segs.as_slice() {
        ["root", ..] => Some("/root".to_string()),
        ["home", user, ..] if !glob::has_wildcards(user) => Some(format!("/home/{user}")),
        ["Users", user, ..] if !glob::has_wildcards(user) => Some(format!("/Users/{user}")),
        [drive, users, user, ..]
            if drive.len() == 2
                && drive.ends_with(':')
                && users.eq_ignore_ascii_case("users")
                && !glob::has_wildcards(user) =>
        {
            Some(format!("/{drive}/{users}/{user}"))
        }
        _ => None,
    };
    let mut homes: Vec<String> = Vec::new();
    if !home.is_empty() {
        homes.push(home.to_string());
    }
    if let Some(h) = other_home.map(|h| unescape(&h))
        && h != home
    {
        homes.push(h);
    }
    for home in homes {
        let tilde: Vec<String> = out
            .iter()
            .filter_map(|p| {
                if *p == home {
                    Some("~".to_string())
                } else {
                    p.strip_prefix(home.as_str())
                        .filter(|r| r.starts_with('/'))
                        .map(|r| format!("~{r}"))
                }
            })
            .collect();
        if !tilde.is_empty() {
            out.extend(tilde);
            break;
        }
    }
    out
}

/// A segment glob whose leading wildcard cannot match a leading `.`, as in the shell.
fn no_leading_dot(seg: &str) -> String {
    if let Some(rest) = seg.strip_prefix('*') {
        format!("[!.]*{rest}")
    } else if let Some(rest) = seg.strip_prefix('?') {
        format!("[!.]{rest}")
    } else {
        seg.to_string()
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PathBase {
        PathBase {
            home: "/home/dev".into(),
            cwd: "/home/dev/project".into(),
        }
    }

    fn norm(raw: &str) -> String {
        PathFact::new(raw, false, &base(), "param", "t".into()).path
    }

    #[test]
    fn non_canonical_forms_normalise() {
        let cases = [
            ("/home/dev/.aws/./credentials", "/home/dev/.aws/credentials"),
            ("/home/dev/.kube//config", "/home/dev/.kube/config"),
            (
                "~/.openclaw/./credentials/x.json",
                "/home/dev/.openclaw/credentials/x.json",
            ),
            ("/proc/self//environ", "/proc/self/environ"),
            // Found by the fuzz smoke: a multi-byte character second (was a slice panic).
            ("f\u{fffd}ind/x", "/home/dev/project/f\u{fffd}ind/x"),
            ("C:/Windows/x", "/C:/Windows/x"),
            ("/proc/1/root/etc/shadow", "/etc/shadow"),
            (
                "/proc/self/root/home/dev/.ssh/id_rsa",
                "/home/dev/.ssh/id_rsa",
            ),
            ("/proc/*/root/etc/shadow", "/etc/shadow"),
            ("/proc/1/task/1/root/etc/sudoers", "/etc/sudoers"),
            ("/proc/self/cwd/../.ssh/id_rsa", "/home/dev/.ssh/id_rsa"),
            ("/proc/thread-self/cwd/x", "/home/dev/project/x"),
            ("/proc/1/cwd/x", "/proc/1/cwd/x"),
            ("~", "/home/dev"),
            ("~/", "/home/dev"),
            ("$HOME/.ssh/id_rsa", "/home/dev/.ssh/id_rsa"),
            ("${HOME}/.ssh", "/home/dev/.ssh"),
            ("~root/.ssh", "/root/.ssh"),
            ("~alice/.aws", "/home/alice/.aws"),
            ("../.ssh/id_rsa", "/home/dev/.ssh/id_rsa"),
            ("src/../../.ssh", "/home/dev/.ssh"),
            ("/../../etc/shadow", "/etc/shadow"),
            ("notes.txt", "/home/dev/project/notes.txt"),
            ("./a/b/", "/home/dev/project/a/b"),
            ("/a/*/b", "/a/*/b"),
            ("$HOMEX/y", "/home/dev/project/$HOMEX/y"),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw), want, "{raw}");
        }
    }

    #[test]
    fn prefixes_include_the_home_forms() {
        let f = PathFact::new("~/.ssh/id_rsa", false, &base(), "param", "t".into());
        assert_eq!(
            f.prefixes,
            [
                "/home/dev/.ssh/id_rsa",
                "/home/dev/.ssh",
                "/home/dev",
                "/home",
                "/",
                "~/.ssh/id_rsa",
                "~/.ssh",
                "~"
            ]
        );
        assert_eq!(f.name, "id_rsa");
        assert!(!f.glob);
        // Upper-case letters: the lower-case forms too (case-insensitive file systems).
        let f = PathFact::new("/home/dev/.SSH/ID_RSA", false, &base(), "param", "t".into());
        assert!(
            f.prefixes.iter().any(|p| p == "~/.ssh/id_rsa"),
            "{:?}",
            f.prefixes
        );
        assert!(f.segments.iter().any(|s| s == ".ssh"), "{:?}", f.segments);
        // Any user's home, on Linux, macOS and Windows, has its `~` forms too.
        for (path, tilde) in [
            ("/root/.aws/credentials", "~/.aws"),
            ("/home/ops/.aws/credentials", "~/.aws"),
            ("/Users/ops/.aws/credentials", "~/.aws"),
            ("C:/Users/ops/.aws/credentials", "~/.aws"),
        ] {
            let f = PathFact::new(path, false, &base(), "param", "t".into());
            assert!(
                f.prefixes.iter().any(|p| p == tilde),
                "{path}: {:?}",
                f.prefixes
            );
        }
    }

    #[test]
    fn globs_keep_their_wildcards_and_literal_stars_stay_literal() {
        let f = PathFact::new("~/.ss*/id_*", true, &base(), "argument", "t".into());
        assert!(f.glob);
        assert_eq!(f.path, "/home/dev/.ss*/id_*");
        assert_eq!(f.prefixes, ["/home/dev", "/home", "/", "~"]);
        assert_eq!(f.glob_prefixes, ["/home/dev/.ss*", "/home/dev/.ss*/id_*"]);
        let f = PathFact::new("/proc/*/environ", true, &base(), "argument", "t".into());
        assert_eq!(f.glob_prefixes, ["/proc/[!.]*", "/proc/[!.]*/environ"]);
        assert_eq!(f.segments, ["proc", "environ"]);
        let f = PathFact::new("/tmp/a*b", false, &base(), "param", "t".into());
        assert!(!f.glob);
        assert_eq!(f.path, "/tmp/a*b");
        assert_eq!(f.prefixes[0], "/tmp/a*b");
    }
}
