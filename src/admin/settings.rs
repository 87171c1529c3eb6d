//! `[admin]`: the admin listener's public URL and token.

use serde::{Deserialize, Serialize};

/// The admin listener's own settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The URL approvers' systems reach the admin listener at (used in callback links);
    /// defaults to `http://<listeners.admin.addr>` (`https://` when the admin listener serves TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Hex SHA-256 of the admin token. Unset: `CLAWGATE_ADMIN_TOKEN`, else a token created on
    /// first start in `<data_dir>/admin.token` (mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}
