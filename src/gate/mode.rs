//! The gate's mode: enforce verdicts, or only report what enforcement would have done.

use serde::{Deserialize, Serialize};

/// Whether verdicts are enforced or only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny and hold as the policy says.
    #[default]
    Enforce,
    /// Let everything through; report what would have been denied or held.
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}
