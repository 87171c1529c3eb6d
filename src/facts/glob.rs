//! Whether two path globs can match one path: what a sensitive-path rule needs when the agent
//! writes a glob (`cat ~/.ss*/id_*` against `~/.ssh`). Exposed to policy as the Rego builtin
//! `clawgate.glob_overlaps(pattern, glob)`; policy decides what an overlap means.
//!
//! Syntax, as the shell reads it (without globstar) plus `**` for policy patterns: `*` any run
//! of characters within a segment, `?` one character, `[abc]`, `[a-z]`, `[!x]`/`[^x]` one
//! character of a class, `\x` a literal `x`, a whole segment `**` any number of segments, and a
//! trailing `/**` the path itself or anything under it. As in the shell, `*`, `?` and classes
//! never match a leading `.` of a segment (`*` does not match `.ssh`) and never match `/`.

use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    One,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    Star,
    /// `**/`: zero or more whole segments.
    AnyDirs,
    /// A trailing `/**`: nothing, or `/` then anything.
    OptRest,
    /// After the `/` of a trailing `/**`: anything.
    AnyRest,
}

/// Longest pattern considered. A longer one is cut and then matches anything after the cut,
/// so cutting can only widen what it may match (fail closed).
const MAX_TOKENS: usize = 256;

fn tokens(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().take(MAX_TOKENS * 2).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_TOKENS {
        let at_seg_start = i == 0 || chars[i - 1] == '/';
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*')
                && at_seg_start
                && matches!(chars.get(i + 2), None | Some('/')) =>
            {
                if chars.get(i + 2).is_none() {
                    // A trailing `/**`: the `/` before it becomes optional.
                    if out.last() == Some(&Token::Lit('/')) {
                        out.pop();
                        out.push(Token::OptRest);
                        out.push(Token::AnyRest);
                    } else {
                        out.push(Token::AnyRest);
                    }
                    i += 2;
                } else {
                    out.push(Token::AnyDirs);
                    i += 3;
                }
            }
            '*' => {
                // `**` inside a segment is just `*`.
                while chars.get(i + 1) == Some(&'*') {
                    i += 1;
                }
                out.push(Token::Star);
                i += 1;
            }
            '?' => {
                out.push(Token::One);
                i += 1;
            }
            '[' => match class(&chars, i) {
                Some((token, next)) => {
                    out.push(token);
                    i = next;
                }
                None => {
                    out.push(Token::Lit('['));
                    i += 1;
                }
            },
            '\\' if i + 1 < chars.len() => {
                out.push(Token::Lit(chars[i + 1]));
                i += 2;
            }
            c => {
                out.push(Token::Lit(c));
                i += 1;
            }
        }
    }
    if i < chars.len() {
        out.push(Token::AnyRest);
    }
    out
}

/// A bracket expression starting at `start`: the token and the index after `]`.
fn class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Token::Class { negated, items }, i + 1));
        }
        first = false;
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            items.push((c, chars[i + 2]));
            i += 3;
        } else {
            items.push((c, c));
            i += 1;
        }
    }
    None
}

/// Characters worth trying where both sides accept "almost anything".
const GENERIC: &[char] = &[
    'a', 'q', 'z', 'A', 'Q', 'Z', '0', '5', '9', '_', '-', '+', '.', '/', '~', '@', ',', 'é',
];

/// Which characters a token may consume next, and where it goes after consuming one.
fn accepts(t: &Token, c: char, seg_start: bool) -> bool {
    let plain = c != '/' && !(seg_start && c == '.');
    match t {
        Token::Lit(l) => *l == c,
        Token::One | Token::Star => plain,
        Token::Class { negated, items } => {
            plain && (items.iter().any(|(a, b)| *a <= c && c <= *b) != *negated)
        }
        Token::AnyDirs | Token::AnyRest => true,
        Token::OptRest => c == '/',
    }
}

fn candidates(t: &Token, out: &mut Vec<char>) {
    match t {
        Token::Lit(c) => out.push(*c),
        Token::Class { items, .. } => {
            for (a, b) in items {
                out.push(*a);
                out.push(*b);
                if let Some(n) = char::from_u32(*a as u32 + 1) {
                    out.push(n);
                }
            }
        }
        _ => {}
    }
}

/// Where a token goes after consuming a character (`None`: it cannot consume).
fn step(tokens: &[Token], i: usize) -> usize {
    match tokens.get(i) {
        Some(Token::Star | Token::AnyDirs | Token::AnyRest) => i,
        _ => i + 1,
    }
}

/// The positions reachable from `i` without consuming anything.
fn closure(tokens: &[Token], i: usize, seg_start: bool, out: &mut Vec<usize>) {
    let mut i = i;
    loop {
        out.push(i);
        match tokens.get(i) {
            Some(Token::Star) => i += 1,
            // Zero segments: only at a segment boundary.
            Some(Token::AnyDirs) if seg_start => i += 1,
            Some(Token::OptRest) => {
                // Nothing: skip the AnyRest that follows.
                out.push(i + 2);
                return;
            }
            Some(Token::AnyRest) => i += 1,
            _ => return,
        }
    }
}

/// True when some path matches both globs.
pub fn overlaps(a: &str, b: &str) -> bool {
    let ta = tokens(a);
    let tb = tokens(b);
    let mut seen: HashSet<(usize, usize, bool)> = HashSet::new();
    let mut todo = vec![(0usize, 0usize, true)];
    let (mut ca, mut cb) = (Vec::new(), Vec::new());
    let mut chars = Vec::new();
    while let Some((i, j, seg_start)) = todo.pop() {
        if !seen.insert((i, j, seg_start)) {
            continue;
        }
        ca.clear();
        cb.clear();
        closure(&ta, i, seg_start, &mut ca);
        closure(&tb, j, seg_start, &mut cb);
        for &x in &ca {
            for &y in &cb {
                if x >= ta.len() && y >= tb.len() {
                    return true;
                }
                let (Some(tx), Some(ty)) = (ta.get(x), tb.get(y)) else {
                    continue;
                };
                chars.clear();
                candidates(tx, &mut chars);
                candidates(ty, &mut chars);
                chars.extend_from_slice(GENERIC);
                for &c in &chars {
                    if accepts(tx, c, seg_start) && accepts(ty, c, seg_start) {
                        let next = (step(&ta, x), step(&tb, y), c == '/');
                        if !seen.contains(&next) {
                            todo.push(next);
                        }
                    }
                }
            }
        }
    }
    false
}

/// A literal path as a glob that matches only itself.
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a glob has any wildcard (unescaped `*`, `?` or bracket expression).
pub fn has_wildcards(pattern: &str) -> bool {
    tokens(pattern).iter().any(|t| !matches!(t, Token::Lit(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_that_can_reach_a_sensitive_path() {
        let cases = [
            ("/h/.ss*/id_*", "/h/.ssh/**", true),
            ("/h/.ssh/id_*", "/h/.ssh", false),
            ("/h/.ssh/id_*", "/h/.ssh/**", true),
            ("/h/.aws/cred*", "/h/.aws/credentials", true),
            ("/proc/self/task/*/environ", "/proc/**/environ", true),
            ("/proc/*/environ", "/proc/**/environ", true),
            ("/proc/self/environ", "/proc/**/environ", true),
            ("/proc/self/status", "/proc/**/environ", false),
            ("/h/*", "/h/.ssh/**", false),
            ("/h/.*", "/h/.ssh/**", true),
            ("/h/*/*", "/h/.ssh/**", false),
            ("/h/.[s]sh/x", "/h/.ssh/**", true),
            ("/h/.[!s]sh/x", "/h/.ssh/**", false),
            ("/h/.s?h", "/h/.ssh/**", true),
            ("/h/src/*.rs", "/h/.ssh/**", false),
            ("/h/src/*.rs", "**/*.pem", false),
            ("/h/keys/*", "**/*.pem", true),
            ("/h/a\\*", "/h/a*", true),
            ("/h/a\\*", "/h/ab", false),
            (
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                "/var/run/secrets/**",
                true,
            ),
            ("/var/run/secrets", "/var/run/secrets/**", true),
            ("/var/run/secretsx", "/var/run/secrets/**", false),
            ("**/id_rsa", "/h/.ssh/**", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(overlaps(a, b), want, "{a} vs {b}");
            assert_eq!(overlaps(b, a), want, "{b} vs {a}");
        }
    }

    #[test]
    fn odd_patterns_do_not_break_it() {
        assert!(overlaps("[", "["));
        assert!(!overlaps("[]", "x"));
        assert!(overlaps("\\", "\\"));
        // Cut patterns widen: a glob too long to read in full still meets what it may match.
        let long = format!("/h/.ssh/{}", "?".repeat(2000));
        assert!(overlaps(&long, "/h/.ssh/**"));
        assert!(overlaps(
            &format!("/h/.ssh/{}", "*a".repeat(2000)),
            "/h/.ssh/**"
        ));
        assert!(!overlaps(&"*a".repeat(2000), "/h/.ssh/**"));
        assert!(!has_wildcards(&escape("/a/*?[x]")));
        assert!(has_wildcards("/a/*"));
    }
}
