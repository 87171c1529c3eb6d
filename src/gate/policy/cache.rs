//! Decision cache: a bundle is a pure function of the parts of the input it reads, so an
//! identical call (same action, same relevant agent fields, same second) gets the verdict
//! already computed. Which parts a bundle reads is found by scanning its Rego source for
//! `input` references; a bundle that uses `input` as a whole, or a non-deterministic builtin,
//! is never cached. Failures (errors, timeouts) are never cached.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::Verdict;
use crate::audit::jcs;

/// Builtins whose result depends on something besides the input and data.
const IMPURE_BUILTINS: &[&str] = &[
    "time.now_ns",
    "rand.",
    "uuid.",
    "http.send",
    "opa.runtime",
    "net.lookup",
];

/// The parts of `input` a bundle reads: top-level key → `None` (the whole subtree) or the
/// second-level keys read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProjection {
    keys: BTreeMap<String, Option<BTreeSet<String>>>,
}

impl InputProjection {
    /// Scan policy sources. `None` when the bundle cannot be cached.
    pub fn scan<'a>(sources: impl IntoIterator<Item = &'a str>) -> Option<InputProjection> {
        let mut keys: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
        for src in sources {
            let code = strip_comments_and_strings(src);
            if IMPURE_BUILTINS.iter().any(|b| code.contains(b)) {
                return None;
            }
            for path in input_refs(&code)? {
                match path {
                    (first, None) => {
                        keys.insert(first, None);
                    }
                    (first, Some(second)) => {
                        // A whole-subtree read already covers every second-level key.
                        let entry = keys.entry(first).or_insert_with(|| Some(BTreeSet::new()));
                        if let Some(set) = entry {
                            set.insert(second);
                        }
                    }
                }
            }
        }
        Some(InputProjection { keys })
    }

    pub fn reads_action(&self) -> bool {
        self.keys.contains_key("action")
    }

    /// The cache key: the bundle generation, the action hash (when the bundle reads the
    /// action or its facts), the facts context (when it reads the facts: facts are a function
    /// of the action, the bundle and that context), and the canonical JSON of every other part
    /// of the input the bundle reads.
    pub fn key(
        &self,
        generation: u64,
        action_hash: &str,
        facts_context: &str,
        input: &Value,
    ) -> Option<Vec<u8>> {
        let mut key = Vec::with_capacity(256);
        key.extend_from_slice(&generation.to_be_bytes());
        let reads_facts = self.keys.contains_key("facts");
        if self.reads_action() || reads_facts {
            key.extend_from_slice(action_hash.as_bytes());
        }
        if reads_facts {
            key.extend_from_slice(&(facts_context.len() as u64).to_be_bytes());
            key.extend_from_slice(facts_context.as_bytes());
        }
        // The canonical JSON of the object of every other part read, written straight from the
        // input (no copy of the parts): `{"first":value,...}` in the projection's key order,
        // a second-level selection as an object of the keys present. Members absent from the
        // input are left out, as the object would leave them out.
        key.push(b'{');
        let mut first_member = true;
        for (first, seconds) in &self.keys {
            if first == "action" || first == "facts" {
                continue;
            }
            let Some(v) = input.get(first) else { continue };
            if !first_member {
                key.push(b',');
            }
            first_member = false;
            jcs::write_str(first, &mut key);
            key.push(b':');
            match (seconds, v) {
                (Some(set), Value::Object(obj)) => {
                    key.push(b'{');
                    let mut first_second = true;
                    for (k, x) in set.iter().filter_map(|k| obj.get(k).map(|x| (k, x))) {
                        if !first_second {
                            key.push(b',');
                        }
                        first_second = false;
                        jcs::write_str(k, &mut key);
                        key.push(b':');
                        jcs::write_value(x, &mut key).ok()?;
                    }
                    key.push(b'}');
                }
                _ => jcs::write_value(v, &mut key).ok()?,
            }
        }
        key.push(b'}');
        Some(key)
    }
}

/// Bounded, concurrent map from cache key to verdict.
pub struct DecisionCache {
    entries: quick_cache::sync::Cache<Vec<u8>, Verdict>,
}

impl DecisionCache {
    pub fn new(capacity: usize) -> DecisionCache {
        DecisionCache {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }
    pub fn get(&self, key: &[u8]) -> Option<Verdict> {
        self.entries.get(key)
    }
    pub fn insert(&self, key: Vec<u8>, verdict: Verdict) {
        self.entries.insert(key, verdict);
    }
}

/// Replace comments and string literals with spaces so that scans see only code.
fn strip_comments_and_strings(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            c => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `input` reference as (first key, second key). `None` if `input` is used whole.
fn input_refs(code: &str) -> Option<Vec<(String, Option<String>)>> {
    let bytes: Vec<char> = code.chars().collect();
    let mut refs = Vec::new();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        let is_token = bytes[i..i + 5].iter().collect::<String>() == "input"
            && (i == 0 || (!is_ident(bytes[i - 1]) && bytes[i - 1] != '.'))
            && bytes.get(i + 5).is_none_or(|c| !is_ident(*c));
        if !is_token {
            i += 1;
            continue;
        }
        let mut j = i + 5;
        let segment = |j: &mut usize| -> Option<String> {
            if bytes.get(*j) != Some(&'.') {
                return None;
            }
            let start = *j + 1;
            let mut end = start;
            while bytes.get(end).is_some_and(|c| is_ident(*c)) {
                end += 1;
            }
            if end == start {
                return None;
            }
            *j = end;
            Some(bytes[start..end].iter().collect())
        };
        let first = segment(&mut j)?;
        let second = segment(&mut j);
        refs.push((first, second));
        i = j;
    }
    Some(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scan_finds_the_paths_read() {
        let p = InputProjection::scan([
            "package x\n# input is not read here\nr if input.action.tool == \"input\"\n\
             s if input.agent.id\nt := input.environment\nu if input.agent[k]",
        ])
        .unwrap();
        assert!(p.reads_action());
        let input = json!({"action": {"tool": "exec"}, "agent": {"id": "a", "run_id": "r"},
                           "environment": "prod", "now": "2026-11-25T10:00:00Z"});
        let other_run = json!({"action": {"tool": "exec"}, "agent": {"id": "a", "run_id": "q"},
                               "environment": "prod", "now": "2026-11-25T10:00:01Z"});
        // agent is read whole (input.agent[k]), so run_id matters; now is not read.
        assert_ne!(p.key(1, "h", "", &input), p.key(1, "h", "", &other_run));
        let later = json!({"action": {"tool": "exec"}, "agent": {"id": "a", "run_id": "r"},
                           "environment": "prod", "now": "2026-11-25T11:00:00Z"});
        assert_eq!(p.key(1, "h", "", &input), p.key(1, "h", "", &later));
        assert_ne!(p.key(1, "h", "", &input), p.key(2, "h", "", &input));
        assert_ne!(p.key(1, "h", "", &input), p.key(1, "g", "", &input));
        // This bundle does not read facts: the facts context is not part of its key.
        assert_eq!(p.key(1, "h", "", &input), p.key(1, "h", "/home/x", &input));
    }

    #[test]
    fn a_bundle_reading_facts_keys_on_the_action_and_the_facts_context() {
        let p = InputProjection::scan(["r if input.facts.commands[0].name == \"ls\""]).unwrap();
        let input = json!({"action": {"tool": "exec"}});
        assert_ne!(
            p.key(1, "h", "/home/a", &input),
            p.key(1, "g", "/home/a", &input)
        );
        assert_ne!(
            p.key(1, "h", "/home/a", &input),
            p.key(1, "h", "/home/b", &input)
        );
        assert_eq!(
            p.key(1, "h", "/home/a", &input),
            p.key(1, "h", "/home/a", &input)
        );
    }

    #[test]
    fn whole_input_or_impure_builtins_disable_caching() {
        assert!(InputProjection::scan(["r := f(input)"]).is_none());
        assert!(InputProjection::scan(["r := input[\"agent\"]"]).is_none());
        assert!(InputProjection::scan(["r := time.now_ns()"]).is_none());
        assert!(InputProjection::scan(["r := x.input.y"]).is_some());
    }
}
