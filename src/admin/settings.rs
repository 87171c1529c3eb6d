//! `[admin]`: the admin listener's public URL, token, and how anonymous refusals are counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigProblem, bad_token_hash, not_http_url, out_of_range};

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
    /// A Standard Webhooks secret (`whsec_` + base64) of this approver's own: a signed
    /// callback that names this approver must be signed with it (the shared
    /// `notify.webhook.secret` no longer answers for them), and then counts as theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl AdminConfig {
    /// The anonymous refusal window out of its range.
    pub fn range_problems(&self) -> Vec<ConfigProblem> {
        let window = self.anonymous_window_s;
        out_of_range(
            "admin.anonymous_window_s",
            window,
            1,
            86_400,
            ANONYMOUS_WINDOW_S,
        )
        .into_iter()
        .collect()
    }

    /// A public URL that is not http(s).
    pub fn url_problems(&self) -> Vec<ConfigProblem> {
        not_http_url("admin.public_url", self.public_url.as_ref())
            .into_iter()
            .collect()
    }

    /// A token hash that is not 64 hex characters.
    pub fn token_problems(&self) -> Vec<ConfigProblem> {
        let bad = (self.token_sha256.as_deref())
            .is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()));
        bad.then(|| bad_token_hash("admin.token_sha256".into()))
            .into_iter()
            .collect()
    }
}

/// `[approvers.NAME]`: each an approver id other than the local operator's, each with a token
/// of their own (not another approver's, not the admin token).
pub fn approver_problems(
    approvers: &BTreeMap<String, ApproverCredential>,
    admin_token_sha256: Option<&str>,
    local_operator: &str,
    shared_webhook_secret: Option<&str>,
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    let mut seen_secrets: BTreeMap<&str, &str> = BTreeMap::new();
    let admin = admin_token_sha256.map(str::to_ascii_lowercase);
    for (name, approver) in approvers {
        let key = format!("approvers.{name}");
        if name.trim().is_empty()
            || name.trim() != name
            || name.starts_with("group:")
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            problems.push(ConfigProblem::new(
                key.clone(),
                format!("{name:?} is not an approver id (one word, not group:NAME)"),
                "name the approver as policy does, e.g. [approvers.U0123ABCD]",
            ));
        }
        if name == local_operator {
            problems.push(ConfigProblem::new(
                key.clone(),
                "is the local operator, who answers with the admin token",
                "give this approver another id, or set approval.local_operator",
            ));
        }
        let hash = approver.token_sha256.trim().to_ascii_lowercase();
        let own_token = "give each approver a token of their own";
        if crate::token::TokenHash::from_hex(&hash).is_none() {
            problems.push(bad_token_hash(format!("{key}.token_sha256")));
        } else if admin.as_deref() == Some(hash.as_str()) {
            problems.push(ConfigProblem::new(
                format!("{key}.token_sha256"),
                "is the admin token's hash",
                own_token,
            ));
        } else if let Some(other) = seen.insert(hash, name) {
            problems.push(ConfigProblem::new(
                format!("{key}.token_sha256"),
                format!("is also approvers.{other}'s token"),
                own_token,
            ));
        }
        if let Some(secret) = approver.webhook_secret.as_deref() {
            let secret_key = format!("{key}.webhook_secret");
            let own_secret = "give each approver's client a webhook secret of its own";
            if crate::approvers::webhook::WebhookSecret::parse(secret).is_err() {
                problems.push(ConfigProblem::new(
                    secret_key,
                    "not a Standard Webhooks secret",
                    "use whsec_ followed by base64, e.g. whsec_$(openssl rand -base64 32)",
                ));
            } else if shared_webhook_secret == Some(secret) {
                problems.push(ConfigProblem::new(
                    secret_key,
                    "is notify.webhook.secret, which every webhook receiver holds",
                    own_secret,
                ));
            } else if let Some(other) = seen_secrets.insert(secret, name) {
                problems.push(ConfigProblem::new(
                    secret_key,
                    format!("is also approvers.{other}'s webhook secret"),
                    own_secret,
                ));
            }
        }
    }
    problems
}
