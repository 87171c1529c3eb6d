//! `[notify]`: where approval requests are sent and how delivery is retried.

use serde::{Deserialize, Serialize};

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
