//! `[admin]`: the admin listener's public URL, token, and how anonymous refusals are counted.

use serde::{Deserialize, Serialize};

/// The admin listener's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Requests refused before they proved who sent them (bad or missing signature or token,
    /// an exact replay) are counted, and each window of this many seconds that saw any ends in
    /// one `access` audit entry with the counts (the last one at shutdown).
    pub anonymous_window_s: u64,
}

/// The default [`AdminConfig::anonymous_window_s`].
pub const ANONYMOUS_WINDOW_S: u64 = 60;

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            public_url: None,
            token_sha256: None,
            anonymous_window_s: ANONYMOUS_WINDOW_S,
        }
    }
}

/// `[approvers.NAME]`: a person who answers approvals with a credential of their own, so an
/// answer is theirs because they proved it, not because someone named them (issue 15,
/// finding 2). `NAME` is the approver id policy and `[approval.groups]` use (e.g. a Slack
/// user id, or `ops-alice`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverCredential {
    /// Hex SHA-256 of the approver's token, presented as `Authorization: Bearer <token>` to
    /// `POST /v1/approvals/{id}/decision` (`clawgate approvals approve ID --token ...`).
    pub token_sha256: String,
}
