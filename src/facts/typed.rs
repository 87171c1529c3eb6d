//! Text typed into a live terminal (OpenClaw's `process` write, send-keys, submit and paste,
//! `terminal` input), as the shell there will read it.
//!
//! `send-keys` sends its `literal`, then its `hex` bytes, then its `keys` tokens (OpenClaw's
//! order); a carriage return ends a line as a newline does. Anything else below a space, and
//! DEL, edits the line before the shell reads it (backspace, `^U`, `^W`, `^C`, arrows and
//! other escape sequences, tab completion), so the typed text is not the command that runs:
//! such input is stated as not parsed, never parsed as if the edit were not there
//! (`cat ~/.aws/credx⌫entials` would otherwise read as a harmless path).
//!
//! Input that stops before its line ends leaves that line to whatever is typed next
//! (`rm -rf ` now, `~` and Enter in the next call), and a `paste` is only inserted into the
//! line (bracketed paste) until Enter comes: both are stated as an unfinished line, since no
//! single call shows what runs. `submit` ends its line itself.

use serde_json::Value;

/// What typing the parameters amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    /// The text, line ends as `\n`.
    pub text: String,
    /// The first edit in it (`backspace`, `escape sequence`, `control character ^U`, ...).
    pub edited: Option<String>,
    /// The input leaves a line for later input to finish (no line end after its last text,
    /// or a paste, which waits for Enter).
    pub unfinished: bool,
}

/// The input the parameters named `names` (in that order) type; `None` when none is set.
/// `hex` is an array of bytes in hex and `keys` an array of key tokens; any other name is
/// text. The call's `action` says how it is sent (`submit` adds Enter, `paste` waits for it).
pub fn typed(params: &serde_json::Map<String, Value>, names: &[String]) -> Option<Typed> {
    let mut bytes = Vec::new();
    let mut any = false;
    for name in names {
        let Some(value) = params.get(name) else {
            continue;
        };
        any = true;
        match (name.as_str(), value) {
            ("hex", Value::Array(items)) => {
                bytes.extend(items.iter().filter_map(Value::as_str).filter_map(hex_byte))
            }
            ("keys", Value::Array(items)) => {
                for token in items.iter().filter_map(Value::as_str) {
                    bytes.extend_from_slice(key_token(token).as_bytes());
                }
            }
            (_, Value::String(s)) => bytes.extend_from_slice(s.as_bytes()),
            _ => {}
        }
    }
    if !any {
        return None;
    }
    let action = params.get("action").and_then(Value::as_str);
    if action == Some("submit") {
        bytes.push(b'\r');
    }
    let text = String::from_utf8_lossy(&bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let edited = text.chars().find_map(edit_name);
    let unfinished = action == Some("paste") || !(text.is_empty() || text.ends_with('\n'));
    Some(Typed {
        text,
        edited,
        unfinished,
    })
}

/// A byte written as hex (`"1b"`, `"0x0A"`), as OpenClaw reads it; others are skipped.
fn hex_byte(raw: &str) -> Option<u8> {
    let lower = raw.trim().to_ascii_lowercase();
    let digits = lower.strip_prefix("0x").unwrap_or(&lower);
    if digits.is_empty() || digits.len() > 2 {
        return None;
    }
    u8::from_str_radix(digits, 16).ok()
}

/// The bytes one key token sends, as OpenClaw encodes it (`Enter`, `^C`, `C-u`, `M-b`,
/// `Up`, a single character, or anything else sent as it is written).
fn key_token(raw: &str) -> String {
    let token = raw.trim();
    if let Some(c) = token.strip_prefix('^')
        && let Some(ctrl) = single(c).and_then(ctrl_char)
    {
        return ctrl.to_string();
    }
    let (mut ctrl, mut alt, mut shift) = (false, false, false);
    let mut base = token;
    while base.len() > 2 && base.as_bytes()[1] == b'-' {
        match base.as_bytes()[0].to_ascii_lowercase() {
            b'c' => ctrl = true,
            b'm' => alt = true,
            b's' => shift = true,
            _ => break,
        }
        base = &base[2..];
    }
    let named = match base.to_ascii_lowercase().as_str() {
        "enter" | "return" => Some("\r".to_string()),
        "tab" if shift => Some("\x1b[Z".to_string()),
        "tab" => Some("\t".to_string()),
        "space" => Some(" ".to_string()),
        "escape" | "esc" => Some("\x1b".to_string()),
        "bspace" | "backspace" => Some("\x7f".to_string()),
        // Cursor, editing and function keys: escape sequences.
        "up" | "down" | "left" | "right" | "home" | "end" | "pageup" | "pgup" | "ppage"
        | "pagedown" | "pgdn" | "npage" | "insert" | "ic" | "delete" | "del" | "dc" | "btab" => {
            Some("\x1b[".to_string())
        }
        other if other.starts_with("kp") || is_function_key(other) => Some("\x1bO".to_string()),
        _ => None,
    };
    if let Some(seq) = named {
        return if alt { format!("\x1b{seq}") } else { seq };
    }
    match single(base) {
        Some(c) => {
            let mut c = if shift { c.to_ascii_uppercase() } else { c };
            if ctrl && let Some(x) = ctrl_char(c) {
                c = x;
            }
            if alt {
                format!("\x1b{c}")
            } else {
                c.to_string()
            }
        }
        None => base.to_string(),
    }
}

fn is_function_key(name: &str) -> bool {
    name.strip_prefix('f')
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| (1..=12).contains(&n))
}

fn single(s: &str) -> Option<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// `^X`: the control character of a letter or `@[\]^_`, `?` for DEL.
fn ctrl_char(c: char) -> Option<char> {
    if c == '?' {
        return Some('\x7f');
    }
    let upper = c.to_ascii_uppercase();
    (('@'..='_').contains(&upper)).then(|| char::from(upper as u8 & 0x1f))
}

/// The name of a character that edits the line instead of being part of it.
fn edit_name(c: char) -> Option<String> {
    match c {
        '\n' => None,
        '\x7f' | '\x08' => Some("backspace".into()),
        '\x1b' => Some("escape sequence (cursor or editing key)".into()),
        '\t' => Some("tab (completion)".into()),
        c if (c as u32) < 0x20 => {
            Some(format!("control character ^{}", char::from(c as u8 + b'@')))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(params: Value, names: &[&str]) -> Typed {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        typed(params.as_object().unwrap(), &names).unwrap()
    }

    const SEND_KEYS: &[&str] = &["data", "text", "literal", "hex", "keys"];

    #[test]
    fn send_keys_is_literal_then_hex_then_keys() {
        let t = of(
            json!({"keys": ["Enter"], "literal": "cat ", "hex": ["7e", "0x2F", "zz", "2e"]}),
            SEND_KEYS,
        );
        assert_eq!(t.text, "cat ~/.\n");
        assert_eq!(t.edited, None);
        let t = of(
            json!({"keys": ["l", "s", "Space", "S--", "S-a", "Enter"]}),
            SEND_KEYS,
        );
        assert_eq!(t.text, "ls -A\n");
        assert_eq!(t.edited, None);
    }

    #[test]
    fn line_editing_is_an_edit_wherever_it_comes_from() {
        for (params, edit) in [
            (
                json!({"data": "cat ~/.aws/credx\u{7f}entials\n"}),
                "backspace",
            ),
            (
                json!({"data": "cat ~/.aws/credx\u{8}entials\n"}),
                "backspace",
            ),
            (
                json!({"data": "echo hi\u{15}cat ~/.aws/credentials\r"}),
                "^U",
            ),
            (json!({"keys": ["Up", "Enter"]}), "escape"),
            (json!({"keys": ["C-u"]}), "^U"),
            (json!({"keys": ["^W"]}), "^W"),
            (json!({"keys": ["M-b"]}), "escape"),
            (json!({"hex": ["1b", "5b", "41", "0d"]}), "escape"),
            (
                json!({"literal": "cat ~/.ss", "keys": ["Tab", "Enter"]}),
                "tab",
            ),
            (json!({"keys": ["F5"]}), "escape"),
        ] {
            let t = of(params.clone(), SEND_KEYS);
            let got = t
                .edited
                .unwrap_or_else(|| panic!("{params} was not an edit"));
            assert!(got.contains(edit), "{params}: {got}");
        }
    }

    #[test]
    fn nothing_typed_is_none_and_carriage_returns_end_lines() {
        let names: Vec<String> = SEND_KEYS.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            typed(json!({"action": "poll"}).as_object().unwrap(), &names),
            None
        );
        let t = of(json!({"data": "ls\r\ngit status\r"}), SEND_KEYS);
        assert_eq!(t.text, "ls\ngit status\n");
        assert!(!t.unfinished);
    }

    #[test]
    fn a_line_left_for_the_next_input_is_unfinished() {
        for (params, unfinished) in [
            (json!({"action": "write", "data": "rm -rf "}), true),
            (json!({"action": "write", "data": "ls\nrm -rf "}), true),
            (json!({"action": "send-keys", "literal": "y"}), true),
            (json!({"action": "paste", "text": "rm -rf ~\n"}), true),
            (json!({"action": "write", "data": "ls -la\n"}), false),
            (json!({"action": "submit", "data": "ls -la"}), false),
            (
                json!({"action": "send-keys", "literal": "y", "keys": ["Enter"]}),
                false,
            ),
        ] {
            assert_eq!(
                of(params.clone(), SEND_KEYS).unfinished,
                unfinished,
                "{params}"
            );
        }
        assert_eq!(
            of(json!({"action": "submit", "data": "ls -la"}), SEND_KEYS).text,
            "ls -la\n"
        );
    }
}
