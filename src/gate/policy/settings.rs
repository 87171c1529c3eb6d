//! `[policy]`: where the bundle comes from, the evaluation budget, reloads and the decision
//! cache.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::ConfigProblem;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// A directory of `.rego` files and `data.json` that replaces the embedded bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Time budget of one policy evaluation; over it, the action is denied.
    pub eval_timeout_ms: u64,
    /// Reload the bundle when its files change (SIGHUP always reloads).
    pub watch: bool,
    /// Verdicts remembered for identical calls (0 turns the cache off). Only the parts of the
    /// input the bundle reads are compared; bundles using time or randomness are not cached.
    pub decision_cache_entries: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: None,
            eval_timeout_ms: 50,
            watch: true,
            decision_cache_entries: 10_000,
        }
    }
}

impl PolicyConfig {
    /// Checks that types alone cannot express.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.eval_timeout_ms == 0 || self.eval_timeout_ms > 10_000 {
            problems.push(ConfigProblem {
                key: "policy.eval_timeout_ms".into(),
                message: format!("{} is out of range", self.eval_timeout_ms),
                fix: "use a value between 1 and 10000 (default 50)".into(),
            });
        }
        if let Some(dir) = &self.dir
            && !dir.is_dir()
        {
            problems.push(ConfigProblem {
                key: "policy.dir".into(),
                message: format!("{} is not a directory", dir.display()),
                fix: "point it at a folder of .rego files, or remove it to use the embedded bundle"
                    .into(),
            });
        }
        problems
    }
}
