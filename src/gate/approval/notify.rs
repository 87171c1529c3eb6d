//! Approval notifications: a Block Kit message in Slack with Approve and Deny buttons,
//! replaced in place once the approval resolves, and signed Standard Webhooks events for any
//! other system.
//!
//! Notifying never slows the gate: `requested` and `resolved` only spawn tasks. Each delivery
//! is retried with capped, jittered exponential backoff, and its outcome is an audit entry.
//! Slack webhook URLs and `response_url`s are credentials, so they never reach logs or the
//! audit log.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::model::{ApprovalStatus, ApprovalView, now_ms, rfc3339};
use super::signature::{SignatureError, WebhookSecret};
use crate::audit::AuditLog;
use crate::config::NotifyConfig;

/// Deliveries with a request open at once. More wait their turn in the background, so a
/// flood of approvals cannot open unbounded connections.
const MAX_IN_FLIGHT: usize = 64;
/// Slack's limit on the text of a section, a context element or the top-level fallback we
/// send (their documented limit is 3000 characters; counted here in UTF-16 units, which is
/// never fewer).
pub const SLACK_TEXT_MAX: usize = 3000;
/// Slack's limit on a header's plain text.
pub const SLACK_HEADER_MAX: usize = 150;
/// Slack's limit on one section field.
pub const SLACK_FIELD_MAX: usize = 2000;
/// `block_id` of the buttons; the interactivity handler looks for it.
pub const ACTIONS_BLOCK_ID: &str = "clawgate_approval";
/// Longest name (agent, approver, channel) shown; ids are far shorter.
const NAME_MAX: usize = 200;
/// Longest single reason shown, so one long reason does not push out all others.
const REASON_MAX: usize = 500;
/// How much of an error response's body is kept to explain a failure.
const ERROR_BODY_MAX: usize = 200;

const REQUESTED: &str = "approval.requested";
const RESOLVED: &str = "approval.resolved";

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
    retry: Retry,
    in_flight: Semaphore,
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
                retry: Retry {
                    max_attempts: cfg.max_attempts.max(1),
                    initial: Duration::from_millis(cfg.initial_backoff_ms),
                    max: Duration::from_millis(cfg.max_backoff_ms),
                },
                in_flight: Semaphore::new(MAX_IN_FLIGHT),
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

    /// Announce a new approval: the Slack message with buttons and the `approval.requested`
    /// event. Returns at once; delivery happens in the background.
    pub fn requested(&self, view: &ApprovalView) {
        if self.channels().is_empty() {
            return;
        }
        self.spawn(view.clone(), Vec::new(), REQUESTED);
    }

    /// Announce the outcome: replace each Slack message through its `response_url` and send
    /// the `approval.resolved` event. Returns at once; delivery happens in the background.
    pub fn resolved(&self, view: &ApprovalView, slack_response_urls: &[String]) {
        if self.inner.webhook.is_none() && slack_response_urls.is_empty() {
            return;
        }
        self.spawn(view.clone(), slack_response_urls.to_vec(), RESOLVED);
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
                        self.audit.metrics().notification_failed("slack_update");
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
                self.audit.metrics().notification_failed(d.channel);
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

/// The generic webhook event: `{"type", "timestamp", "data": view + decision_url}`.
pub fn webhook_event(kind: &str, view: &ApprovalView, callback_base: &str) -> Value {
    let mut data = serde_json::to_value(view).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut data {
        m.insert(
            "decision_url".into(),
            json!(format!(
                "{}/v1/approvals/{}/decision",
                callback_base.trim_end_matches('/'),
                view.id
            )),
        );
    }
    json!({"type": kind, "timestamp": rfc3339(now_ms()), "data": data})
}

/// The Slack message announcing an approval request, with Approve and Deny buttons whose
/// `value` is the approval id.
pub fn slack_request_message(view: &ApprovalView) -> Value {
    let subject = view.subject();
    let mut blocks = vec![
        header(&format!("Approval needed: {subject}")),
        json!({"type": "section", "fields": summary_fields(view, &subject)}),
    ];
    if !view.reasons.is_empty() {
        let bullets: Vec<String> = view
            .reasons
            .iter()
            .map(|r| format!("• {}", esc_truncate(r, REASON_MAX)))
            .collect();
        blocks.push(section(&join_bounded(
            "*Reasons*\n",
            &bullets,
            "\n",
            SLACK_TEXT_MAX,
        )));
    }
    blocks.push(section(&arguments_text(&view.action)));
    let approvers: Vec<String> = view.approvers.iter().map(|a| mention(a)).collect();
    let context = join_bounded(
        &format!(
            "Approval `{}` · policy `{}` · quorum {} of ",
            esc(&view.id),
            esc(short(&view.policy_revision)),
            view.quorum
        ),
        &approvers,
        ", ",
        SLACK_TEXT_MAX,
    );
    blocks.push(json!({"type": "context", "elements": [mrkdwn(&context)]}));
    blocks.push(json!({
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [
            button("approve", "Approve", "primary", &view.id),
            button("deny", "Deny", "danger", &view.id),
        ],
    }));
    let text = esc_truncate(
        &format!(
            "Approval needed: {subject} (risk {}, agent {})",
            view.risk.as_str(),
            view.agent_id
        ),
        SLACK_TEXT_MAX,
    );
    // Unfurling a link from the arguments would fetch it from Slack's side.
    json!({"text": text, "blocks": blocks, "unfurl_links": false, "unfurl_media": false})
}

/// The message that replaces the request in Slack once it resolved: the outcome, who decided
/// (as Slack mentions where the approver is a Slack user id), and no buttons.
pub fn slack_resolved_message(view: &ApprovalView) -> Value {
    let subject = view.subject();
    let deciders: Vec<String> = view.decided_by.iter().map(|a| mention(a)).collect();
    let (title, lead) = match view.status {
        ApprovalStatus::Approved => ("Approved", "*Approved* by "),
        ApprovalStatus::Denied => ("Denied", "*Denied* by "),
        ApprovalStatus::Expired => ("Expired", "*Expired* without a decision"),
        ApprovalStatus::Pending => ("Pending", "*Pending*"),
    };
    let mut outcome = if view.status == ApprovalStatus::Expired || deciders.is_empty() {
        lead.to_string()
    } else {
        join_bounded(lead, &deciders, ", ", SLACK_TEXT_MAX / 2)
    };
    if let Some(at) = &view.resolved_at {
        outcome.push_str(&format!(" at {}", esc(at)));
    }
    let reasons: Vec<String> = view
        .answers
        .iter()
        .filter(|a| view.decided_by.contains(&a.approver))
        .filter_map(|a| {
            let reason = a.reason.as_deref()?.trim();
            (!reason.is_empty()).then(|| {
                format!(
                    "> {}: {}",
                    mention(&a.approver),
                    esc_truncate(reason, REASON_MAX)
                )
            })
        })
        .collect();
    let outcome = join_bounded(&format!("{outcome}\n"), &reasons, "\n", SLACK_TEXT_MAX);
    let context = esc_truncate(
        &format!(
            "Approval `{}` · policy `{}`",
            view.id,
            short(&view.policy_revision)
        ),
        SLACK_TEXT_MAX,
    );
    let blocks = vec![
        header(&format!("{title}: {subject}")),
        section(outcome.trim_end()),
        json!({"type": "section", "fields": summary_fields(view, &subject)}),
        json!({"type": "context", "elements": [mrkdwn(&context)]}),
    ];
    let text = esc_truncate(&format!("{title}: {subject}"), SLACK_TEXT_MAX);
    json!({"replace_original": true, "text": text, "blocks": blocks})
}

fn summary_fields(view: &ApprovalView, subject: &str) -> Vec<Value> {
    let requester = match &view.requester {
        Some(r) => {
            let who = r.sender_id.as_deref().map(mention);
            let via = r.channel.as_deref().map(|c| esc_truncate(c, NAME_MAX));
            match (who, via) {
                (Some(w), Some(c)) => format!("{w} via {c}"),
                (Some(w), None) => w,
                (None, Some(c)) => format!("via {c}"),
                (None, None) => "unknown".into(),
            }
        }
        None => "unknown".into(),
    };
    let label = match view.action.get("kind").and_then(Value::as_str) {
        Some("http") | Some("connect") => "Destination",
        Some("mcp") => "MCP tool",
        _ => "Tool",
    };
    vec![
        field("Agent", &esc_truncate(&view.agent_id, NAME_MAX)),
        field("Requester", &requester),
        field(label, &esc_truncate(subject, SLACK_FIELD_MAX / 2)),
        field("Risk", view.risk.as_str()),
        field("Expires", &esc_truncate(&view.expires_at, NAME_MAX)),
    ]
}

/// The redacted arguments as pretty JSON in a code block, cut to fit one section.
fn arguments_text(action: &Value) -> String {
    let part = match action.get("kind").and_then(Value::as_str) {
        Some("http") => action.get("http"),
        Some("connect") => action.get("dest"),
        _ => action.get("params"),
    };
    const PREFIX: &str = "*Arguments* (redacted)\n```\n";
    const SUFFIX: &str = "\n```";
    let json = match part {
        None | Some(Value::Null) => return "*Arguments*: none".into(),
        // Only as much as can be shown is rendered: arguments may be megabytes.
        Some(v) => capped_pretty(v, SLACK_TEXT_MAX * 4),
    };
    // A literal ``` inside would end the code block early.
    let json = json.replace("```", "`\u{200b}`\u{200b}`");
    let budget = SLACK_TEXT_MAX - units(PREFIX) - units(SUFFIX);
    format!("{PREFIX}{}{SUFFIX}", esc_truncate(&json, budget))
}

fn capped_pretty(v: &Value, cap: usize) -> String {
    struct Capped(Vec<u8>, usize);
    impl io::Write for Capped {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let room = self.1.saturating_sub(self.0.len());
            if room == 0 {
                return Err(io::Error::other("full"));
            }
            let n = room.min(b.len());
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = Capped(Vec::new(), cap);
    // Running out of room is the expected way to stop; what was written is kept.
    let _ = serde_json::to_writer_pretty(&mut w, v);
    let full = w.0.len() >= cap;
    let mut s = String::from_utf8_lossy(&w.0).into_owned();
    if full {
        s.push('…');
    }
    s
}

fn header(text: &str) -> Value {
    // Plain text is shown literally by Slack, so it needs no escaping.
    let text = truncate_units(text, SLACK_HEADER_MAX);
    json!({"type": "header", "text": {"type": "plain_text", "text": text, "emoji": false}})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": mrkdwn(text)})
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// `value` is escaped and already bounded well below the field limit by the caller.
fn field(label: &str, value: &str) -> Value {
    mrkdwn(&format!("*{label}*\n{value}"))
}

fn button(action_id: &str, label: &str, style: &str, id: &str) -> Value {
    json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "value": id,
    })
}

/// A Slack user id (`U…`/`W…`) as a mention; anything else as escaped text.
fn mention(id: &str) -> String {
    let slack_user = id.len() >= 3
        && id.len() <= 32
        && matches!(id.as_bytes()[0], b'U' | b'W')
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if slack_user {
        format!("<@{id}>")
    } else {
        esc_truncate(id, NAME_MAX)
    }
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// Slack's mrkdwn escaping: without it, text from the agent could ping `<!channel>` or
/// render a disguised link.
fn esc(s: &str) -> String {
    esc_truncate(s, usize::MAX)
}

/// Escape and keep at most `max` UTF-16 units, ending in `…` when cut. Never cuts an
/// escape sequence in half.
fn esc_truncate(s: &str, max: usize) -> String {
    fn piece(c: char) -> Option<&'static str> {
        match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            _ => None,
        }
    }
    let width = |c: char| piece(c).map_or(c.len_utf16(), str::len);
    let whole: usize = s.chars().map(width).sum();
    // When it does not all fit, one unit is kept for the ellipsis.
    let limit = if whole <= max {
        usize::MAX
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + width(c) > limit {
            out.push('…');
            return out;
        }
        used += width(c);
        match piece(c) {
            Some(p) => out.push_str(p),
            None => out.push(c),
        }
    }
    out
}

/// Truncate already-safe text to `max` UTF-16 units.
fn truncate_units(s: &str, max: usize) -> String {
    if units(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() + 1 > max {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

/// `prefix` then whole `items` joined by `sep` while they fit in `max` units; `…` marks any
/// left out. Items are never cut, so no mention or escape is broken.
fn join_bounded(prefix: &str, items: &[String], sep: &str, max: usize) -> String {
    let mut out = truncate_units(prefix, max.saturating_sub(1));
    let mut used = units(&out);
    for (n, item) in items.iter().enumerate() {
        let sep = if n == 0 { "" } else { sep };
        let need = units(sep) + units(item);
        // Room for "…" is kept unless this is the last item.
        let reserve = usize::from(n + 1 < items.len());
        if used + need + reserve > max {
            out.push('…');
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
        used += need;
    }
    out
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Requester;
    use crate::gate::approval::model::{Answer, Channel, Vote};
    use crate::gate::policy::Risk;

    fn view() -> ApprovalView {
        ApprovalView {
            id: "01970000-0000-7000-8000-000000000001".into(),
            status: ApprovalStatus::Pending,
            decision_id: "d-1".into(),
            action: json!({"kind": "tool", "tool": "exec",
                           "params": {"command": "rm -rf /tmp/x", "token": "[REDACTED:github_token]"}}),
            action_hash: "ab".repeat(32),
            policy_revision: "0123456789abcdef0123".into(),
            agent_id: "main".into(),
            authenticated_as: None,
            requester: Some(Requester {
                channel: Some("slack".into()),
                sender_id: Some("U0REQ".into()),
                sender_is_owner: Some(false),
            }),
            run_id: Some("run-1".into()),
            risk: Risk::High,
            reasons: vec!["exec is dangerous".into(), "touches <files> & more".into()],
            approvers: vec!["group:sre".into(), "U0APPROVER".into()],
            quorum: 1,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: "2026-01-01T00:05:00.000Z".into(),
            resolved_at: None,
            answers: vec![],
            decided_by: vec![],
        }
    }

    fn head(s: &str) -> String {
        s.chars().take(80).collect()
    }

    fn tail(s: &str) -> String {
        let n = s.chars().count().saturating_sub(40);
        s.chars().skip(n).collect()
    }

    fn block<'a>(msg: &'a Value, ty: &str) -> &'a Value {
        msg["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == ty)
            .unwrap_or_else(|| panic!("no {ty} block in {msg:#}"))
    }

    /// Every text in the message, with the limit that applies to it.
    fn texts(msg: &Value) -> Vec<(String, usize)> {
        let mut out = vec![(msg["text"].as_str().unwrap().to_string(), SLACK_TEXT_MAX)];
        for b in msg["blocks"].as_array().unwrap() {
            match b["type"].as_str().unwrap() {
                "header" => {
                    out.push((b["text"]["text"].as_str().unwrap().into(), SLACK_HEADER_MAX))
                }
                "section" => {
                    if let Some(t) = b["text"]["text"].as_str() {
                        out.push((t.into(), SLACK_TEXT_MAX));
                    }
                    for f in b["fields"].as_array().into_iter().flatten() {
                        out.push((f["text"].as_str().unwrap().into(), SLACK_FIELD_MAX));
                    }
                }
                "context" => {
                    for e in b["elements"].as_array().unwrap() {
                        out.push((e["text"].as_str().unwrap().into(), SLACK_TEXT_MAX));
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn request_message_has_buttons_carrying_the_id() {
        let v = view();
        let msg = slack_request_message(&v);
        assert_eq!(
            block(&msg, "header")["text"]["text"],
            "Approval needed: tool exec"
        );
        let actions = block(&msg, "actions");
        assert_eq!(actions["block_id"], ACTIONS_BLOCK_ID);
        let buttons = actions["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["action_id"], "approve");
        assert_eq!(buttons[0]["style"], "primary");
        assert_eq!(buttons[1]["action_id"], "deny");
        assert_eq!(buttons[1]["style"], "danger");
        for b in buttons {
            assert_eq!(b["value"], v.id.as_str());
        }
        let all: String = texts(&msg).into_iter().map(|(t, _)| t + "\n").collect();
        for want in [
            "*Agent*\nmain",
            "*Requester*\n<@U0REQ> via slack",
            "*Tool*\ntool exec",
            "*Risk*\nhigh",
            "*Expires*\n2026-01-01T00:05:00.000Z",
            "• exec is dangerous\n• touches &lt;files&gt; &amp; more",
            "\"command\": \"rm -rf /tmp/x\"",
            "[REDACTED:github_token]",
            "quorum 1 of group:sre, <@U0APPROVER>",
            "policy `0123456789ab`",
            &v.id,
        ] {
            assert!(all.contains(want), "{want:?} missing from {all}");
        }
        assert!(
            !all.contains("0123456789abcdef0123"),
            "revision is shortened"
        );
    }

    #[test]
    fn huge_arguments_stay_within_slack_limits() {
        let mut v = view();
        v.action = json!({"kind": "mcp", "server": "fs", "tool": "write".repeat(100),
            "params": {"content": "<&>😀".repeat(10_000), "more": "x".repeat(100_000)}});
        v.reasons = (0..500).map(|i| format!("reason {i} ").repeat(5)).collect();
        v.approvers = (0..500).map(|i| format!("U{i:08}")).collect();
        v.agent_id = "a".repeat(5000);
        for msg in [slack_request_message(&v), slack_resolved_message(&v)] {
            for (text, max) in texts(&msg) {
                assert!(
                    units(&text) <= max,
                    "{} > {max}: {}",
                    units(&text),
                    head(&text)
                );
            }
        }
        let msg = slack_request_message(&v);
        let args = msg["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .find(|t| t.starts_with("*Arguments*"))
            .unwrap();
        assert!(args.ends_with("…\n```"), "{}", tail(args));
        // Cut between escapes, never inside one.
        let body = args.trim_end_matches("…\n```");
        assert!(
            body.ends_with(';') || body.ends_with('😀'),
            "{}",
            tail(body)
        );
        let ctx = block(&msg, "context")["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(ctx.ends_with('…') && ctx.contains("<@U00000000>"), "{ctx}");
    }

    #[test]
    fn http_and_connect_show_the_destination() {
        let mut v = view();
        v.action = json!({"kind": "http", "http": {"method": "POST", "scheme": "https",
            "host": "api.example.com", "port": 443, "path": "/v1/x", "query": "",
            "headers": {"authorization": "[REDACTED:bearer_token]"}}});
        let msg = slack_request_message(&v);
        let all: String = texts(&msg).into_iter().map(|(t, _)| t + "\n").collect();
        assert!(
            all.contains("*Destination*\nPOST https://api.example.com/v1/x"),
            "{all}"
        );
        assert!(all.contains("\"host\": \"api.example.com\""), "{all}");
        v.action = json!({"kind": "connect", "dest": {"host": "db.internal", "port": 5432}});
        let all: String = texts(&slack_request_message(&v))
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert!(
            all.contains("CONNECT db.internal:5432") && all.contains("\"port\": 5432"),
            "{all}"
        );
    }

    #[test]
    fn agent_text_cannot_ping_or_break_out_of_the_code_block() {
        let mut v = view();
        v.agent_id = "<!channel>".into();
        v.action = json!({"kind": "tool", "tool": "x", "params": {"s": "```<!here>```"}});
        let msg = slack_request_message(&v);
        let all: String = texts(&msg).into_iter().map(|(t, _)| t).collect();
        assert!(
            !all.contains("<!channel>") && !all.contains("<!here>"),
            "{all}"
        );
        let args = msg["blocks"][3]["text"]["text"].as_str().unwrap();
        assert_eq!(args.matches("```").count(), 2, "{args}");
    }

    #[test]
    fn resolved_message_names_the_deciders_as_mentions() {
        let mut v = view();
        v.status = ApprovalStatus::Approved;
        v.resolved_at = Some("2026-01-01T00:01:00.000Z".into());
        v.decided_by = vec!["U123".into(), "alice@ops".into()];
        v.answers = vec![Answer {
            approver: "U123".into(),
            vote: Vote::Approve,
            channel: Channel::Slack,
            at: "2026-01-01T00:01:00.000Z".into(),
            reason: Some("looks fine <ok>".into()),
        }];
        let msg = slack_resolved_message(&v);
        assert_eq!(msg["replace_original"], true);
        assert!(
            msg["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["type"] != "actions")
        );
        assert_eq!(block(&msg, "header")["text"]["text"], "Approved: tool exec");
        let outcome = msg["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(
            outcome,
            "*Approved* by <@U123>, alice@ops at 2026-01-01T00:01:00.000Z\n> <@U123>: looks fine &lt;ok&gt;"
        );

        v.status = ApprovalStatus::Denied;
        v.decided_by = vec!["W42".into()];
        let msg = slack_resolved_message(&v);
        assert!(
            msg["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Denied* by <@W42>")
        );

        v.status = ApprovalStatus::Expired;
        v.decided_by = vec![];
        let msg = slack_resolved_message(&v);
        assert_eq!(msg["text"], "Expired: tool exec");
        assert!(
            msg["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Expired* without a decision")
        );
    }

    #[test]
    fn webhook_event_carries_the_view_and_decision_url() {
        let v = view();
        let e = webhook_event(REQUESTED, &v, "http://127.0.0.1:9482/");
        assert_eq!(e["type"], REQUESTED);
        assert!(chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(e["data"]["id"], v.id.as_str());
        assert_eq!(e["data"]["status"], "pending");
        assert_eq!(e["data"]["action"], v.action);
        assert_eq!(
            e["data"]["decision_url"],
            format!("http://127.0.0.1:9482/v1/approvals/{}/decision", v.id)
        );
    }

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

    #[test]
    fn truncation_helpers_respect_limits() {
        assert_eq!(esc_truncate("a<b", 10), "a&lt;b");
        assert_eq!(esc_truncate("a<bcdef", 5), "a…");
        assert_eq!(esc_truncate("abc", 3), "abc");
        assert_eq!(truncate_units("😀😀😀", 4), "😀…");
        let items: Vec<String> = vec!["aa".into(), "bb".into(), "cc".into()];
        assert_eq!(join_bounded("x: ", &items, ", ", 100), "x: aa, bb, cc");
        assert_eq!(join_bounded("x: ", &items, ", ", 10), "x: aa, bb…");
        assert_eq!(mention("U123"), "<@U123>");
        assert_eq!(mention("u123"), "u123");
        assert_eq!(mention("U<1>"), "U&lt;1&gt;");
    }
}
