//! What every configuration section shares: the problem a check reports (key, what is wrong,
//! how to fix it) and the common checks. Each section's struct and checks live with the
//! module that owns it; `config.rs` composes them. This module sits below all of them, so
//! no section imports the composition.

/// One thing wrong with a config file: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path (`policy.eval_timeout_ms`), or `line N` for syntax errors.
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (fix: {})", self.key, self.message, self.fix)
    }
}

/// `value` outside `min..=max`, reported with the default to go back to.
pub fn out_of_range(
    key: &str,
    value: u64,
    min: u64,
    max: u64,
    default: u64,
) -> Option<ConfigProblem> {
    (value < min || value > max).then(|| {
        ConfigProblem::new(
            key,
            format!("{value} is out of range"),
            format!("use a value between {min} and {max} (default {default})"),
        )
    })
}

/// A URL setting that is not http(s).
pub fn not_http_url(key: &str, url: Option<&String>) -> Option<ConfigProblem> {
    let url = url?;
    (!(url.starts_with("https://") || url.starts_with("http://"))).then(|| {
        ConfigProblem::new(
            key,
            format!("{url:?} is not an http(s) URL"),
            "write the full URL, starting with https://",
        )
    })
}

/// A token hash that is not 64 hex characters (what `printf %s TOKEN | sha256sum` prints).
pub fn bad_token_hash(key: String) -> ConfigProblem {
    ConfigProblem::new(
        key,
        "must be 64 hex characters",
        "put the output of `printf %s TOKEN | sha256sum` here",
    )
}
