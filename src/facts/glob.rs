//! Glob syntax for path facts: which characters of a path are wildcards, and how to write a
//! literal path as a glob.
//!
//! Syntax, as the shell reads it (without globstar) plus `**` for policy patterns: `*` any run
//! of characters within a segment, `?` one character, `[abc]`, `[a-z]`, `[!x]`/`[^x]` one
//! character of a class, `\x` a literal `x`, a whole segment `**` any number of segments, and a
//! trailing `/**` the path itself or anything under it. As in the shell, `*`, `?` and classes
//! never match a leading `.` of a segment (`*` does not match `.ssh`) and never match `/`.

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
    fn wildcards_and_escapes() {
        assert!(!has_wildcards(&escape("/a/*?[x]")));
        assert!(has_wildcards("/a/*"));
        assert!(has_wildcards("/a/?"));
        assert!(has_wildcards("/a/[bc]"));
        assert!(!has_wildcards("/a/["));
        assert!(!has_wildcards("/a/b"));
        // A pattern too long to read in full counts as one with wildcards.
        assert!(has_wildcards(&"a".repeat(2000)));
    }
}
