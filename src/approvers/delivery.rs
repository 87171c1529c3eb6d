//! Approval notifications: a Block Kit message in Slack with Approve and Deny buttons,
//! replaced in place once the approval resolves, and signed Standard Webhooks events for any
//! other system.
//!
//! Notifying never slows the gate: `requested` and `resolved` only spawn tasks. Each delivery
//! is retried with capped, jittered exponential backoff, and its outcome is an audit entry.
//! Slack webhook URLs and `response_url`s are credentials, so they never reach logs or the
//! audit log.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::NotifyConfig;
use super::signature::SignatureError;
use super::slack::{slack_batch_message, slack_request_message, slack_resolved_message};
use super::webhook::{
    REQUESTED, REQUESTED_BATCH, RESOLVED, WebhookSecret, webhook_batch_event, webhook_event,
};
use crate::audit::AuditLog;
use crate::gate::approval::{ApprovalListener, ApprovalView};
use crate::metrics::Metrics;

/// Deliveries with a request open at once. More wait their turn in the background, so a
/// flood of approvals cannot open unbounded connections.
const MAX_IN_FLIGHT: usize = 64;
/// How much of an error response's body is kept to explain a failure.
const ERROR_BODY_MAX: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "notify.webhook.url is set but notify.webhook.secret is not: outgoing webhook events \
         must be signed; set notify.webhook.secret (or CLAWGATE_WEBHOOK_SECRET) to a whsec_ secret"
    )]
    MissingWebhookSecret,
    #[error("notify.webhook.secret: {0}")]
    WebhookSecret(#[from] SignatureError),
    // The URL itself is left out: a Slack webhook URL is a secret.
    #[error("{0} is not a valid http(s) URL")]
    Url(&'static str),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Sends approval notifications. Cheap to clone; clones share the HTTP client and the bound on
/// concurrent deliveries.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("channels", &self.channels())
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    slack_url: Option<Url>,
    webhook: Option<(Url, WebhookSecret)>,
    callback_base: String,
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
    retry: Retry,
    in_flight: Semaphore,
    batch: Batcher,
}

/// Announces the first `after` approval requests of each window one by one, and the rest of
/// the window's together when it ends (issue 15, finding 6): a burst of approvals is a few
/// messages, not one per approval.
struct Batcher {
    after: u64,
    window: Duration,
    state: std::sync::Mutex<BatchState>,
}

#[derive(Default)]
struct BatchState {
    opened: Option<tokio::time::Instant>,
    announced: u64,
    held: Vec<ApprovalView>,
}

/// What to do with one new approval's announcement.
enum Announce {
    Now,
    /// Held for the window's batch, which is already due to be sent.
    Held,
    /// Held as the first of the window's batch: send the batch at this instant.
    BatchAt(tokio::time::Instant),
}

impl Batcher {
    fn announce(&self, view: &ApprovalView) -> Announce {
        let now = tokio::time::Instant::now();
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = st
            .opened
            .filter(|o| now < *o + self.window || !st.held.is_empty());
        let opened = match open {
            Some(o) => o,
            None => {
                *st = BatchState {
                    opened: Some(now),
                    ..BatchState::default()
                };
                now
            }
        };
        if st.announced < self.after {
            st.announced += 1;
            return Announce::Now;
        }
        st.held.push(view.clone());
        if st.held.len() == 1 {
            Announce::BatchAt(opened + self.window)
        } else {
            Announce::Held
        }
    }

    /// The window's held approvals; the next request opens a new window.
    fn take(&self) -> Vec<ApprovalView> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *st).held
    }
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
}

impl Retry {
    /// Delay after the `failures`-th failed attempt: `initial * 2^(failures-1)` capped at `max`,
    /// then "equal jitter" (a random point in its upper half) so that receivers coming back
    /// up are not hit by every sender at the same instant.
    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let base = self.initial.saturating_mul(1 << exp).min(self.max);
        let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
        let half = base_ms / 2;
        // Without randomness the delay is still correct, only not spread out.
        let jitter = getrandom::u64()
            .map(|r| r % (base_ms - half + 1))
            .unwrap_or(base_ms - half);
        Duration::from_millis(half + jitter)
    }
}

/// One message to one receiver, retried as a unit.
struct Delivery {
    approval_id: String,
    run_id: Option<String>,
    /// `slack`, `webhook` or `slack_update` (the audit entry's `channel`).
    channel: &'static str,
    /// `approval.requested` or `approval.resolved`.
    notification: &'static str,
    url: Url,
    body: Bytes,
    /// The Standard Webhooks message id: one per message, the same on every attempt so the
    /// receiver can deduplicate retries. `None` for Slack.
    webhook_id: Option<String>,
    /// The approvals a batched announcement carries (`approval_id` is then the first).
    batch: Option<Vec<String>>,
}

enum Attempt {
    Delivered(u16),
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    Fatal {
        status: Option<u16>,
        error: String,
    },
}

impl Notifier {
    /// `callback_base` is the admin listener base URL (e.g. `http://127.0.0.1:9482`), used
    /// for `decision_url` in generic webhook events.
    pub fn new(
        cfg: &NotifyConfig,
        audit: Arc<AuditLog>,
        metrics: Arc<Metrics>,
        callback_base: String,
    ) -> Result<Notifier, NotifyError> {
        let slack_url = cfg
            .slack
            .webhook_url
            .as_deref()
            .map(|u| http_url(u, "notify.slack.webhook_url"))
            .transpose()?;
        let webhook = match (&cfg.webhook.url, &cfg.webhook.secret) {
            (None, _) => None,
            (Some(_), None) => return Err(NotifyError::MissingWebhookSecret),
            (Some(url), Some(secret)) => Some((
                http_url(url, "notify.webhook.url")?,
                WebhookSecret::parse(secret)?,
            )),
        };
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A signed event must reach the configured receiver, not wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clawgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Client(e.without_url().to_string()))?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                http,
                slack_url,
                webhook,
                callback_base: callback_base.trim_end_matches('/').to_string(),
                audit,
                metrics,
                retry: Retry {
                    max_attempts: cfg.max_attempts.max(1),
                    initial: Duration::from_millis(cfg.initial_backoff_ms),
                    max: Duration::from_millis(cfg.max_backoff_ms),
                },
                in_flight: Semaphore::new(MAX_IN_FLIGHT),
                batch: Batcher {
                    after: cfg.batch_after,
                    window: Duration::from_secs(cfg.batch_window_s.max(1)),
                    state: Default::default(),
                },
            }),
        })
    }

    /// Which channels are configured: `slack`, `webhook`; empty when none.
    pub fn channels(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.inner.slack_url.is_some() {
            out.push("slack");
        }
        if self.inner.webhook.is_some() {
            out.push("webhook");
        }
        out
    }

    /// Building messages (pretty-printing arguments) also happens off the caller's task.
    fn spawn(&self, view: ApprovalView, response_urls: Vec<String>, notification: &'static str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(approval_id = %view.id, notification, "no async runtime; approval notification not sent");
            return;
        };
        let inner = self.inner.clone();
        rt.spawn(async move {
            let deliveries = inner.deliveries(&view, &response_urls, notification).await;
            for d in deliveries {
                let inner = inner.clone();
                tokio::spawn(async move { inner.deliver(d).await });
            }
        });
    }
}

impl Notifier {
    /// Send the window's held announcements together once it ends.
    fn spawn_batch(&self, at: tokio::time::Instant) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!("no async runtime; batched approval notifications not sent");
            return;
        };
        let inner = self.inner.clone();
        rt.spawn(async move {
            tokio::time::sleep_until(at).await;
            let views = inner.batch.take();
            if views.is_empty() {
                return;
            }
            tracing::info!(
                approvals = views.len(),
                "announcing a burst of approval requests in one message"
            );
            for d in inner.batch_deliveries(&views) {
                let inner = inner.clone();
                tokio::spawn(async move { inner.deliver(d).await });
            }
        });
    }
}

impl ApprovalListener for Notifier {
    /// Announce a new approval: the Slack message with buttons and the `approval.requested`
    /// event. Returns at once; delivery happens in the background.
    fn requested(&self, view: &ApprovalView) {
        if self.channels().is_empty() {
            return;
        }
        match self.inner.batch.announce(view) {
            Announce::Now => self.spawn(view.clone(), Vec::new(), REQUESTED),
            Announce::Held => {}
            Announce::BatchAt(at) => self.spawn_batch(at),
        }
    }

    /// Announce the outcome: replace each Slack message through its `response_url` (the reply
    /// handles) and send the `approval.resolved` event. Returns at once; delivery happens in
    /// the background.
    fn resolved(&self, view: &ApprovalView, reply_handles: &[String]) {
        if self.inner.webhook.is_none() && reply_handles.is_empty() {
            return;
        }
        self.spawn(view.clone(), reply_handles.to_vec(), RESOLVED);
    }
}

fn http_url(s: &str, key: &'static str) -> Result<Url, NotifyError> {
    match Url::parse(s.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(NotifyError::Url(key)),
    }
}

impl Inner {
    async fn deliveries(
        &self,
        view: &ApprovalView,
        response_urls: &[String],
        notification: &'static str,
    ) -> Vec<Delivery> {
        let delivery = |channel, url: Url, body: Value, webhook_id| Delivery {
            approval_id: view.id.clone(),
            run_id: view.run_id.clone(),
            channel,
            notification,
            url,
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            webhook_id,
            batch: None,
        };
        let mut out = Vec::new();
        if notification == REQUESTED {
            if let Some(url) = &self.slack_url {
                out.push(delivery(
                    "slack",
                    url.clone(),
                    slack_request_message(view),
                    None,
                ));
            }
        } else {
            let message = slack_resolved_message(view);
            for raw in response_urls {
                match Url::parse(raw) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {
                        out.push(delivery("slack_update", url, message.clone(), None));
                    }
                    // Nothing to send to; still an outcome worth recording.
                    _ => {
                        self.metrics.notification_failed("slack_update");
                        self.record(
                            view.id.as_str(),
                            view.run_id.as_deref(),
                            json!({"event": "notify_failed", "approval_id": view.id,
                                   "channel": "slack_update", "notification": notification,
                                   "attempts": 0, "error": "response_url is not an http(s) URL"}),
                        )
                        .await;
                    }
                }
            }
        }
        if let Some((url, _)) = &self.webhook {
            let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
            out.push(delivery(
                "webhook",
                url.clone(),
                webhook_event(notification, view, &self.callback_base),
                Some(id),
            ));
        }
        out
    }

    /// One message per channel announcing several new approvals.
    fn batch_deliveries(&self, views: &[ApprovalView]) -> Vec<Delivery> {
        let ids: Vec<String> = views.iter().map(|v| v.id.clone()).collect();
        let delivery = |channel, url: Url, body: Value, webhook_id| Delivery {
            approval_id: ids.first().cloned().unwrap_or_default(),
            run_id: None,
            channel,
            notification: REQUESTED_BATCH,
            url,
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            webhook_id,
            batch: Some(ids.clone()),
        };
        let mut out = Vec::new();
        if let Some(url) = &self.slack_url {
            out.push(delivery(
                "slack",
                url.clone(),
                slack_batch_message(views),
                None,
            ));
        }
        if let Some((url, _)) = &self.webhook {
            let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
            out.push(delivery(
                "webhook",
                url.clone(),
                webhook_batch_event(views, &self.callback_base),
                Some(id),
            ));
        }
        out
    }

    async fn deliver(&self, d: Delivery) {
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            match self.attempt(&d).await {
                Attempt::Delivered(status) => break Ok(status),
                Attempt::Fatal { status, error } => break Err((status, error)),
                Attempt::Retry {
                    status,
                    error,
                    after,
                } => {
                    if attempts >= self.retry.max_attempts {
                        break Err((status, error));
                    }
                    let delay = match after {
                        Some(after) => after.min(self.retry.max),
                        None => self.retry.backoff(attempts),
                    };
                    tracing::debug!(approval_id = %d.approval_id, channel = d.channel, attempts,
                        ?status, %error, delay_ms = delay.as_millis() as u64, "approval notification will be retried");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let mut fields = json!({
            "approval_id": d.approval_id,
            "channel": d.channel,
            "notification": d.notification,
            "attempts": attempts,
        });
        match outcome {
            Ok(status) => {
                tracing::info!(approval_id = %d.approval_id, channel = d.channel, attempts, status,
                    "approval notification delivered");
                fields["event"] = json!("notified");
                fields["status"] = json!(status);
            }
            Err((status, error)) => {
                tracing::warn!(approval_id = %d.approval_id, channel = d.channel, attempts, ?status,
                    %error, "approval notification failed");
                self.metrics.notification_failed(d.channel);
                fields["event"] = json!("notify_failed");
                fields["error"] = json!(error);
                if let Some(status) = status {
                    fields["status"] = json!(status);
                }
            }
        }
        if let Some(id) = &d.webhook_id {
            fields["webhook_id"] = json!(id);
        }
        if let Some(ids) = &d.batch {
            fields["approval_ids"] = json!(ids);
        }
        self.record(&d.approval_id, d.run_id.as_deref(), fields)
            .await;
    }

    async fn record(&self, approval_id: &str, run_id: Option<&str>, fields: Value) {
        let event = crate::audit::events::approval(fields, run_id);
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(approval_id, error = %e, "approval notification outcome not recorded");
        }
    }

    async fn attempt(&self, d: &Delivery) -> Attempt {
        // Held only while a request is open, not during backoff.
        let Ok(_permit) = self.in_flight.acquire().await else {
            return Attempt::Fatal {
                status: None,
                error: "notifier shut down".into(),
            };
        };
        let mut req = self
            .http
            .post(d.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(d.body.clone());
        if let (Some(id), Some((_, secret))) = (&d.webhook_id, &self.webhook) {
            // Timestamp and signature are per attempt; the id stays.
            let ts = chrono::Utc::now().timestamp();
            req = req
                .header("webhook-id", id.as_str())
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", secret.sign(id, ts, &d.body));
        }
        let mut resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) if e.is_builder() => {
                return Attempt::Fatal {
                    status: None,
                    error: describe(e, &d.url),
                };
            }
            // Connect errors, timeouts and broken connections are all worth another try.
            Err(e) => {
                return Attempt::Retry {
                    status: None,
                    error: describe(e, &d.url),
                    after: None,
                };
            }
        };
        let status = resp.status();
        let code = status.as_u16();
        if status.is_success() {
            return Attempt::Delivered(code);
        }
        let after = retry_after(resp.headers());
        let error = match error_body(&mut resp).await {
            Some(body) => format!("HTTP {code}: {body}"),
            None => format!("HTTP {code}"),
        };
        if code == 429 || status.is_server_error() {
            Attempt::Retry {
                status: Some(code),
                error,
                after: if code == 429 { after } else { None },
            }
        } else {
            Attempt::Fatal {
                status: Some(code),
                error,
            }
        }
    }
}

/// An error without the URL (reqwest puts it in its message; for Slack it is a secret).
fn describe(e: reqwest::Error, url: &Url) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut msg = if timeout {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    // Belt and braces: no layer below may echo the URL either.
    msg.replace(url.as_str(), "[url]")
}

/// `Retry-After` in seconds (the HTTP-date form falls back to our own backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// The start of an error response's body (Slack says why there, e.g. `invalid_blocks`),
/// printable characters only.
async fn error_body(resp: &mut reqwest::Response) -> Option<String> {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_MAX * 4 {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text: String = String::from_utf8_lossy(&buf)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ERROR_BODY_MAX)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let r = Retry {
            max_attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let ms = |n| r.backoff(n).as_millis();
            assert!((50..=100).contains(&ms(1)));
            assert!((100..=200).contains(&ms(2)));
            assert!((200..=400).contains(&ms(3)));
            assert!((500..=1000).contains(&ms(5)));
            assert!((500..=1000).contains(&ms(40)));
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
