//! `[notify]`: where approval requests are sent and how delivery is retried.

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigProblem, not_http_url, out_of_range};

/// Where approval requests are sent. Secrets may also come from the environment
/// (`CLAWGATE_SLACK_WEBHOOK_URL`, `CLAWGATE_SLACK_SIGNING_SECRET`, `CLAWGATE_WEBHOOK_SECRET`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub slack: SlackConfig,
    pub webhook: WebhookConfig,
    /// Delivery attempts per notification before it is recorded as failed.
    pub max_attempts: u32,
    /// First retry delay; each retry doubles it (with jitter) up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Time limit of one delivery attempt.
    pub timeout_ms: u64,
    /// Approval requests announced one message each per window; the window's further
    /// requests are announced together, in one message when it ends.
    pub batch_after: u64,
    /// The window `batch_after` counts over (seconds).
    pub batch_window_s: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            slack: SlackConfig::default(),
            webhook: WebhookConfig::default(),
            max_attempts: 5,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_ms: 5_000,
            batch_after: 5,
            batch_window_s: 60,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// Slack incoming webhook URL that receives the Block Kit approval message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The Slack app's signing secret, to verify interactivity callbacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Receiver of JSON approval events, signed per Standard Webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Shared secret (`whsec_` + base64), for outgoing signatures and incoming callbacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl NotifyConfig {
    /// Delivery limits out of their range.
    pub fn range_problems(&self) -> Vec<ConfigProblem> {
        let ranges = [
            ("notify.max_attempts", self.max_attempts.into(), 1, 50, 5),
            (
                "notify.initial_backoff_ms",
                self.initial_backoff_ms,
                1,
                600_000,
                500,
            ),
            (
                "notify.max_backoff_ms",
                self.max_backoff_ms,
                1,
                3_600_000,
                30_000,
            ),
            ("notify.timeout_ms", self.timeout_ms, 1, 600_000, 5_000),
            ("notify.batch_after", self.batch_after, 1, 1_000, 5),
            ("notify.batch_window_s", self.batch_window_s, 1, 3_600, 60),
        ];
        ranges
            .into_iter()
            .filter_map(|(key, value, min, max, default)| {
                out_of_range(key, value, min, max, default)
            })
            .collect()
    }

    /// Receivers that are not http(s) URLs.
    pub fn url_problems(&self) -> Vec<ConfigProblem> {
        [
            not_http_url("notify.slack.webhook_url", self.slack.webhook_url.as_ref()),
            not_http_url("notify.webhook.url", self.webhook.url.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// A webhook secret that is not a Standard Webhooks secret.
    pub fn secret_problems(&self) -> Vec<ConfigProblem> {
        let bad = (self.webhook.secret.as_deref())
            .is_some_and(|s| super::webhook::WebhookSecret::parse(s).is_err());
        bad.then(|| {
            ConfigProblem::new(
                "notify.webhook.secret",
                "not a Standard Webhooks secret",
                "use whsec_ followed by base64 of at least 24 random bytes",
            )
        })
        .into_iter()
        .collect()
    }
}
