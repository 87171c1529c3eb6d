//! Approval notifications end to end: a real HTTP receiver on loopback stands in for Slack
//! and for a generic webhook consumer, and a real audit log records every delivery outcome.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clawgate::action::Requester;
use clawgate::approvers::webhook::WebhookSecret;
use clawgate::approvers::{Notifier, NotifyError, SignatureError};
use clawgate::audit::AuditLog;
use clawgate::config::NotifyConfig;
use clawgate::gate::approval::{
    Answer, ApprovalBinding, ApprovalListener, ApprovalRequest, ApprovalStatus, Channel, Vote,
};
use clawgate::gate::policy::Risk;
use serde_json::{Value, json};

use crate::common::receiver::{Receiver, Recorded, Reply};

const CALLBACK_BASE: &str = "http://127.0.0.1:9482";

// ---------------------------------------------------------------------------------------------
// Audit log, approvals and notifier.

async fn open_audit(dir: &Path) -> Arc<AuditLog> {
    let log = crate::common::open_audit_log(dir, 1000, Duration::from_secs(3600)).await;
    Arc::new(log)
}

/// The `approval` entries in the log, in order.
fn approval_entries(audit: &AuditLog) -> Vec<Value> {
    crate::common::audit_entries(audit, "approval")
}

async fn wait_for_entries(audit: &AuditLog, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let entries = approval_entries(audit);
        if entries.len() >= n {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} audit entries: {entries:#?}",
            entries.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn request(n: u32) -> ApprovalRequest {
    ApprovalRequest {
        id: uuid::Uuid::now_v7().to_string(),
        decision_id: format!("decision-{n}"),
        binding: ApprovalBinding {
            action_hash: "ab".repeat(32),
            policy_revision: "0123456789abcdef".repeat(4),
            agent_id: "main".into(),
            authenticated_as: None,
            requester: Some(Requester {
                channel: Some("slack".into()),
                sender_id: Some("U0REQUEST".into()),
                sender_is_owner: Some(false),
            }),
        },
        run_id: Some("run-7".into()),
        action: json!({"kind": "tool", "tool": "exec",
                       "params": {"command": "kubectl delete ns staging", "token": "[REDACTED:github_token]"}}),
        risk: Risk::High,
        reasons: vec!["exec needs a person".into()],
        approvers: vec!["group:sre".into()],
        quorum: 1,
        created_ms: clawgate::gate::approval::model::now_ms(),
        expires_ms: clawgate::gate::approval::model::now_ms() + 300_000,
        status: ApprovalStatus::Pending,
        answers: vec![],
        resolved_ms: None,
        first_used_ms: None,
        reply_handles: vec![],
        constraints: None,
        shown: Default::default(),
    }
}

fn decide(req: &mut ApprovalRequest, approver: &str, vote: Vote) {
    req.answers.push(Answer {
        approver: approver.into(),
        vote,
        channel: Channel::Slack,
        at: "2026-01-01T00:01:00.000Z".into(),
        reason: None,
        credential: Some(format!("slack:{approver}")),
    });
    req.status = match vote {
        Vote::Approve => ApprovalStatus::Approved,
        Vote::Deny => ApprovalStatus::Denied,
    };
    req.resolved_ms = Some(clawgate::gate::approval::model::now_ms());
}

/// Small delays so retries finish fast.
fn config() -> NotifyConfig {
    NotifyConfig {
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 50,
        timeout_ms: 2_000,
        ..NotifyConfig::default()
    }
}

fn with_webhook(mut cfg: NotifyConfig, url: String, secret: &str) -> NotifyConfig {
    cfg.webhook.url = Some(url);
    cfg.webhook.secret = Some(secret.to_string());
    cfg
}

fn with_slack(mut cfg: NotifyConfig, url: String) -> NotifyConfig {
    cfg.slack.webhook_url = Some(url);
    cfg
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn all_text(msg: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    walk(msg, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn slack_message_has_buttons_and_is_replaced_once_decided() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    let rx = Receiver::start(Reply::ok(), &[]).await;
    let slack_url = rx.url("/services/T000/B000/slack-webhook-secret");
    let notifier = Notifier::new(
        &with_slack(config(), slack_url),
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();
    assert_eq!(notifier.channels(), ["slack"]);

    let mut req = request(1);
    notifier.requested(&req.view());
    let entries = wait_for_entries(&audit, 1).await;
    let posted = rx.requests();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].path, "/services/T000/B000/slack-webhook-secret");
    assert_eq!(posted[0].header("content-type"), "application/json");
    let msg = posted[0].json();
    assert!(
        msg["text"]
            .as_str()
            .unwrap()
            .starts_with("Approval needed: tool exec")
    );
    let actions = msg["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    assert_eq!(actions["block_id"], "clawgate_approval");
    let buttons: Vec<(&str, &str)> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["action_id"].as_str().unwrap(),
                b["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(buttons, [("approve", &*req.id), ("deny", &*req.id)]);
    assert!(all_text(&msg).contains("kubectl delete ns staging"));

    let e = &entries[0];
    assert_eq!(e["event"], "notified");
    assert_eq!(e["approval_id"], req.id.as_str());
    assert_eq!(e["channel"], "slack");
    assert_eq!(e["attempts"], 1);
    assert_eq!(e["status"], 200);
    // Indexed under the run, for the timeline.
    let run = audit.reader().unwrap().run_seqs("run-7").unwrap();
    assert_eq!(run, [e["seq"].as_u64().unwrap()]);

    // Approved in Slack: both clicked messages are replaced, naming the approver.
    decide(&mut req, "U0APPROVER", Vote::Approve);
    let urls = [
        rx.url("/actions/T000/1/respond-secret"),
        rx.url("/actions/T000/2/respond-secret"),
    ];
    notifier.resolved(&req.view(), &urls);
    let entries = wait_for_entries(&audit, 3).await;
    let updates: Vec<Recorded> = rx
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/actions/"))
        .collect();
    assert_eq!(updates.len(), 2);
    for u in &updates {
        let msg = u.json();
        assert_eq!(msg["replace_original"], true);
        let text = all_text(&msg);
        assert!(text.contains("*Approved* by <@U0APPROVER>"), "{text}");
        assert!(!text.contains("approve\n"), "no buttons left: {msg:#}");
    }
    for e in &entries[1..] {
        assert_eq!(e["event"], "notified");
        assert_eq!(e["channel"], "slack_update");
        assert_eq!(e["notification"], "approval.resolved");
    }

    // Slack URLs are credentials: none reached the audit log.
    let log = serde_json::to_string(&approval_entries(&audit)).unwrap();
    assert!(
        !log.contains("secret") && !log.contains(&rx.addr.to_string()),
        "{log}"
    );
}

#[tokio::test]
async fn webhook_events_are_signed_per_standard_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    let rx = Receiver::start(Reply::ok(), &[]).await;
    let secret = WebhookSecret::generate();
    let cfg = with_webhook(config(), rx.url("/hooks/clawgate"), &secret);
    let notifier = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        format!("{CALLBACK_BASE}/"),
    )
    .unwrap();
    assert_eq!(notifier.channels(), ["webhook"]);

    let mut req = request(2);
    notifier.requested(&req.view());
    wait_for_entries(&audit, 1).await;
    decide(&mut req, "U0DENIER", Vote::Deny);
    notifier.resolved(&req.view(), &[]);
    let entries = wait_for_entries(&audit, 2).await;
    let posted = rx.requests();
    assert_eq!(posted.len(), 2);

    let key = WebhookSecret::parse(&secret).unwrap();
    let other = WebhookSecret::parse(&WebhookSecret::generate()).unwrap();
    for (r, (kind, status)) in posted.iter().zip([
        ("approval.requested", "pending"),
        ("approval.resolved", "denied"),
    ]) {
        let (id, ts, sig) = (
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
        );
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(r.header("content-type"), "application/json");
        key.verify(id, ts, &r.body, sig, now_unix()).unwrap();
        assert_eq!(
            other.verify(id, ts, &r.body, sig, now_unix()),
            Err(SignatureError::Mismatch)
        );
        let event = r.json();
        assert_eq!(event["type"], kind);
        assert!(chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(event["data"]["id"], req.id.as_str());
        assert_eq!(event["data"]["status"], status);
        assert_eq!(event["data"]["agent_id"], "main");
        assert_eq!(
            event["data"]["decision_url"],
            format!("{CALLBACK_BASE}/v1/approvals/{}/decision", req.id)
        );
    }
    assert_eq!(posted[1].json()["data"]["decided_by"], json!(["U0DENIER"]));
    assert_ne!(
        posted[0].header("webhook-id"),
        posted[1].header("webhook-id"),
        "one id per message"
    );
    for (e, r) in entries.iter().zip(&posted) {
        assert_eq!(e["event"], "notified");
        assert_eq!(e["channel"], "webhook");
        assert_eq!(e["webhook_id"], r.header("webhook-id"));
    }
}

#[tokio::test]
async fn server_errors_are_retried_under_the_same_webhook_id() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    let rx = Receiver::start(Reply::ok(), &[Reply::status(500), Reply::status(503)]).await;
    let secret = WebhookSecret::generate();
    let cfg = with_webhook(config(), rx.url("/hooks"), &secret);
    let notifier = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();

    let req = request(3);
    notifier.requested(&req.view());
    let entries = wait_for_entries(&audit, 1).await;
    let posted = rx.requests();
    assert_eq!(posted.len(), 3);
    let key = WebhookSecret::parse(&secret).unwrap();
    for r in &posted {
        assert_eq!(r.header("webhook-id"), posted[0].header("webhook-id"));
        assert_eq!(r.body, posted[0].body, "the same message every time");
        key.verify(
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            &r.body,
            r.header("webhook-signature"),
            now_unix(),
        )
        .unwrap();
    }
    let e = &entries[0];
    assert_eq!(e["event"], "notified");
    assert_eq!(e["attempts"], 3);
    assert_eq!(e["status"], 200);
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_capped_at_max_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    let limited = Reply {
        retry_after: Some("30"),
        ..Reply::status(429)
    };
    let rx = Receiver::start(Reply::ok(), &[limited]).await;
    let mut cfg = with_slack(config(), rx.url("/slack"));
    cfg.max_backoff_ms = 300;
    let notifier = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();

    notifier.requested(&request(4).view());
    let entries = wait_for_entries(&audit, 1).await;
    let posted = rx.requests();
    assert_eq!(posted.len(), 2);
    // Retry-After (30 s, capped to 300 ms) wins over the 10 ms backoff.
    assert!(posted[1].at - posted[0].at >= Duration::from_millis(300));
    assert_eq!(entries[0]["event"], "notified");
    assert_eq!(entries[0]["attempts"], 2);
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_recorded_after_the_last_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    let rx = Receiver::start(
        Reply {
            body: "upstream down",
            ..Reply::status(500)
        },
        &[],
    )
    .await;
    let notifier = Notifier::new(
        &with_slack(config(), rx.url("/slack")),
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();

    let req = request(5);
    notifier.requested(&req.view());
    let entries = wait_for_entries(&audit, 1).await;
    // The entry is written after the last attempt, so no attempt can still be coming.
    assert_eq!(rx.count(), 3);
    let e = &entries[0];
    assert_eq!(e["event"], "notify_failed");
    assert_eq!(e["approval_id"], req.id.as_str());
    assert_eq!(e["channel"], "slack");
    assert_eq!(e["attempts"], 3);
    assert_eq!(e["status"], 500);
    assert_eq!(e["error"], "HTTP 500: upstream down");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    let rx = Receiver::start(
        Reply {
            body: "invalid_blocks",
            ..Reply::status(400)
        },
        &[],
    )
    .await;
    let notifier = Notifier::new(
        &with_slack(config(), rx.url("/slack")),
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();

    notifier.requested(&request(6).view());
    let entries = wait_for_entries(&audit, 1).await;
    assert_eq!(rx.count(), 1);
    assert_eq!(entries[0]["event"], "notify_failed");
    assert_eq!(entries[0]["attempts"], 1);
    assert_eq!(entries[0]["status"], 400);
    assert_eq!(entries[0]["error"], "HTTP 400: invalid_blocks");
}

#[tokio::test]
async fn unreachable_and_slow_receivers_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    // Nothing listens on this port once the listener is dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let notifier = Notifier::new(
        &with_slack(
            config(),
            format!("http://127.0.0.1:{port}/services/unreachable-token"),
        ),
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();
    notifier.requested(&request(7).view());
    let entries = wait_for_entries(&audit, 1).await;
    let e = &entries[0];
    assert_eq!(e["event"], "notify_failed");
    assert_eq!(e["attempts"], 3);
    assert!(e.get("status").is_none(), "{e}");
    let error = e["error"].as_str().unwrap();
    assert!(!error.is_empty());
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert!(
        !error.contains("unreachable-token") && !error.contains(&port.to_string()),
        "the URL stays out of the log: {error}"
    );

    // An attempt that outlives timeout_ms is abandoned and tried again. The first answer
    // comes far later than the limit, the second at once: far inside it even on a loaded
    // machine, so the count of attempts cannot depend on scheduling.
    let slow = Reply {
        delay: Duration::from_secs(60),
        ..Reply::ok()
    };
    let rx = Receiver::start(Reply::ok(), &[slow]).await;
    let mut cfg = with_slack(config(), rx.url("/slack"));
    cfg.timeout_ms = 2_000;
    let notifier = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();
    notifier.requested(&request(8).view());
    let entries = wait_for_entries(&audit, 2).await;
    assert_eq!(entries[1]["event"], "notified");
    assert_eq!(entries[1]["attempts"], 2);
    assert_eq!(rx.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_returns_before_the_receiver_answers() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    // The receiver answers nothing until the test releases it.
    let held = Reply {
        hold: true,
        ..Reply::ok()
    };
    let rx = Receiver::start(held, &[]).await;
    let secret = WebhookSecret::generate();
    let mut cfg = with_webhook(
        with_slack(config(), rx.url("/slack")),
        rx.url("/hooks"),
        &secret,
    );
    cfg.timeout_ms = 20_000;
    let notifier = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();
    assert_eq!(notifier.channels(), ["slack", "webhook"]);

    let req = request(9);
    notifier.requested(&req.view());
    // Returned while no answer can exist yet.
    assert_eq!(rx.answered(), 0);
    // Both deliveries are really in flight, and still unanswered.
    rx.wait_for_requests(2).await;
    assert_eq!(rx.answered(), 0);
    assert!(approval_entries(&audit).is_empty());

    rx.release();
    let entries = wait_for_entries(&audit, 2).await;
    let mut channels: Vec<&str> = entries
        .iter()
        .map(|e| e["channel"].as_str().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, ["slack", "webhook"]);
    assert!(entries.iter().all(|e| e["event"] == "notified"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_approvals_opens_a_bounded_number_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;
    let held = Reply {
        hold: true,
        ..Reply::ok()
    };
    let rx = Receiver::start(held, &[]).await;
    let secret = WebhookSecret::generate();
    let mut cfg = with_webhook(config(), rx.url("/hooks"), &secret);
    cfg.timeout_ms = 20_000;
    // One message per approval (no batching), so that 100 deliveries compete for connections.
    cfg.batch_after = 1_000;
    let notifier = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();

    for n in 0..100 {
        notifier.requested(&request(100 + n).view());
    }
    assert_eq!(rx.answered(), 0);
    rx.wait_for_requests(64).await;
    // The rest queue in the background instead of opening more connections.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 64);
    assert_eq!(rx.shared.max_in_flight.load(Ordering::SeqCst), 64);

    rx.release();
    let entries = wait_for_entries(&audit, 100).await;
    assert!(entries.iter().all(|e| e["event"] == "notified"));
    assert_eq!(rx.count(), 100);
    assert!(rx.shared.max_in_flight.load(Ordering::SeqCst) <= 64);
}

#[tokio::test]
async fn configuration_mistakes_are_refused_without_echoing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let audit = open_audit(dir.path()).await;

    let mut cfg = config();
    cfg.webhook.url = Some("https://example.com/hooks".into());
    let err = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap_err();
    assert!(matches!(err, NotifyError::MissingWebhookSecret));
    assert!(err.to_string().contains("notify.webhook.secret"), "{err}");

    cfg.webhook.secret = Some("not-a-secret".into());
    let err = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap_err();
    assert!(matches!(err, NotifyError::WebhookSecret(_)), "{err}");

    let cfg = with_slack(config(), "hooks.slack.com/services/T0/B0/xoxsecret".into());
    let err = Notifier::new(
        &cfg,
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("notify.slack.webhook_url"),
        "{err}"
    );
    assert!(!err.to_string().contains("xoxsecret"), "{err}");

    // Nothing configured: nothing sent, nothing recorded.
    let notifier = Notifier::new(
        &config(),
        audit.clone(),
        Default::default(),
        CALLBACK_BASE.into(),
    )
    .unwrap();
    assert!(notifier.channels().is_empty());
    notifier.requested(&request(10).view());
    notifier.resolved(&request(10).view(), &[]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(approval_entries(&audit).is_empty());
}
