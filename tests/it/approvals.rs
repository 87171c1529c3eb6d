//! The approval workflow over real loopback HTTP: a real receiver captures the Slack and
//! generic notifications, and the tests answer them with correctly and incorrectly signed
//! callbacks, as Slack and a webhook consumer would.

use std::time::{Duration, Instant};

use crate::common::receiver::{Receiver, Recorded, Reply};
use crate::common::{Sidecar, audit_entries, check_body, json_of, start_with, write_bundle};
use clawgate::approvers::slack::slack_signature;
use clawgate::approvers::webhook::WebhookSecret;
use serde_json::{Value, json};

const SLACK_SECRET: &str = "test-slack-signing-secret";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ADMIN_TOKEN: &str = "test-admin-token";

/// `write` needs one of group:sre, `deploy` two of them, `quick` expires after a second.
const POLICY: &str = r#"package clawgate

default decision := {"effect": "deny", "risk": "high", "reasons": ["unknown tool"]}

decision := {"effect": "allow", "risk": "low", "reasons": ["read is safe"]} if input.action.tool == "read"

decision := {"effect": "require_approval", "risk": "medium", "reasons": ["writes need a person"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 60}} if input.action.tool == "write"

decision := {"effect": "require_approval", "risk": "critical", "reasons": ["deploys need two people"],
  "approval": {"approvers": ["group:sre", "U_CAROL"], "quorum": 2, "timeout_s": 60}} if input.action.tool == "deploy"

decision := {"effect": "require_approval", "risk": "medium", "reasons": ["limited writes need a person"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 60},
  "constraints": {"rate": {"key": "limited", "per_minute": 2}, "max_concurrent": 1}} if input.action.tool == "limited"

decision := {"effect": "require_approval", "risk": "high", "reasons": ["quick expiry"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 1}} if input.action.tool == "quick"
"#;

struct Env {
    s: Sidecar,
    rx: Receiver,
}

async fn env_with(edit: impl FnOnce(&mut clawgate::config::Config)) -> Env {
    let rx = Receiver::start(Reply::ok(), &[]).await;
    let (slack, hook) = (rx.url("/slack"), rx.url("/hook"));
    let s = start_with(|c, dir| {
        c.policy.dir = Some(write_bundle(&dir.join("policy"), &[("main.rego", POLICY)]));
        // U1 is the requester in check_body: a member, so self-approval is tested for real.
        c.approval.groups.insert(
            "sre".into(),
            vec!["U_ALICE".into(), "U_BOB".into(), "U1".into()],
        );
        c.notify.slack.webhook_url = Some(slack);
        c.notify.slack.signing_secret = Some(SLACK_SECRET.into());
        c.notify.webhook.url = Some(hook);
        c.notify.webhook.secret = Some(WEBHOOK_SECRET.into());
        c.notify.initial_backoff_ms = 10;
        c.admin.token_sha256 = Some(clawgate::admin::auth::AdminToken::hash_hex(ADMIN_TOKEN));
        for name in ["U_ALICE", "U_BOB", "U_CAROL", "U1", "main"] {
            add_approver(c, name);
        }
        edit(c);
    })
    .await;
    Env { s, rx }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Env {
    async fn check(&self, tool: &str, params: Value) -> Value {
        let (code, body) = self.s.check(tool, params).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    async fn pending(&self, tool: &str, params: Value) -> String {
        let d = self.check(tool, params).await;
        assert_eq!(d["decision"], "pending", "{d}");
        d["approval_id"].as_str().unwrap().to_string()
    }

    /// The Slack messages the receiver got, by path.
    async fn slack_messages(&self, n: usize) -> Vec<Recorded> {
        self.requests_to("/slack", n).await
    }

    async fn requests_to(&self, path: &str, n: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Recorded> = self
                .rx
                .requests()
                .into_iter()
                .filter(|r| r.path == path)
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests to {path}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A Slack button click, signed with `secret` at `ts`.
    async fn slack_click_signed(
        &self,
        id: &str,
        user: &str,
        action: &str,
        secret: &str,
        ts: i64,
    ) -> (u16, Value, String) {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase()},
            "actions": [{"action_id": action, "block_id": "clawgate_approval", "value": id, "type": "button"}],
            "response_url": self.rx.url("/response"),
        });
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let ts = ts.to_string();
        let sig = slack_signature(secret, &ts, body.as_bytes());
        let (code, v) = self.post_slack(&body, &ts, &sig).await;
        (code, v, body)
    }

    async fn post_slack(&self, body: &str, ts: &str, sig: &str) -> (u16, Value) {
        let resp = self
            .s
            .http
            .post(self.s.admin("/v1/slack/interactions"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn slack_click(&self, id: &str, user: &str, action: &str) -> (u16, Value) {
        let (code, v, _) = self
            .slack_click_signed(id, user, action, SLACK_SECRET, now())
            .await;
        (code, v)
    }

    /// A generic callback signed the Standard Webhooks way.
    async fn webhook(
        &self,
        id: &str,
        msg_id: &str,
        body: &Value,
        secret: &str,
        ts: i64,
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let sig = WebhookSecret::parse(secret)
            .unwrap()
            .sign(msg_id, ts, &bytes);
        let resp = self
            .s
            .http
            .post(self.s.admin(&format!("/v1/approvals/{id}/decision")))
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(bytes)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// An approval of `id` by `name` with their own token (`[approvers.NAME]`).
    async fn approve_with_own_token(&self, id: &str, name: &str) -> (u16, Value) {
        self.operator(id, name, "approve", &approver_token(name))
            .await
    }

    /// A signed webhook approval of `id` in `approver`'s name.
    async fn webhook_approve(&self, id: &str, msg_id: &str, approver: &str) -> (u16, Value) {
        let body = json!({"approval_id": id, "decision": "approve", "approver": approver});
        self.webhook(id, msg_id, &body, WEBHOOK_SECRET, now()).await
    }

    /// An answer with a bearer token: the admin token, or an approver's own.
    async fn operator(
        &self,
        id: &str,
        approver: &str,
        decision: &str,
        token: &str,
    ) -> (u16, Value) {
        let answer = json!({"decision": decision, "approver": approver, "reason": "checked"});
        self.s.answer_approval(token, id, &answer).await
    }

    async fn wait(&self, id: &str, timeout: &str) -> Value {
        let resp = self
            .s
            .http
            .get(
                self.s
                    .agent(&format!("/v1/approvals/{id}/wait?timeout={timeout}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// The Prometheus scrape of the admin listener.
    async fn metrics(&self) -> String {
        let resp = self.s.http.get(self.s.admin("/metrics")).send().await;
        resp.unwrap().text().await.unwrap()
    }

    fn approval_events(&self) -> Vec<Value> {
        audit_entries(self.s.running.audit(), "approval")
    }

    fn events(&self, event: &str) -> Vec<Value> {
        self.approval_events()
            .into_iter()
            .filter(|e| e["event"] == event)
            .collect()
    }
}

#[tokio::test]
async fn slack_approval_releases_the_held_check_and_updates_the_message() {
    let e = env().await;
    let params =
        json!({"path": "/etc/app.conf", "content": "x", "token": "xoxb-123456789012-abcdefghijkl"});
    // The agent holds its check for up to 10 s.
    let held = {
        let http = e.s.http.clone();
        let url = e.s.agent("/v1/check?wait=10");
        let body = check_body("write", params.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let v: Value = http
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v, t0.elapsed())
        })
    };
    let msg = e.slack_messages(1).await.remove(0).json();
    let text = msg.to_string();
    assert!(
        !text.contains("xoxb-123456789012"),
        "the Slack message leaks a token: {text}"
    );
    let actions = msg["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap();
    let id = actions["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(actions["elements"][1]["value"], id.as_str());

    let (code, ack) = e.slack_click(&id, "U_ALICE", "approve").await;
    assert_eq!(code, 200, "{ack}");
    let (decision, _) = held.await.unwrap();
    assert_eq!(decision["decision"], "allow", "{decision}");
    assert_eq!(decision["approval_id"], id.as_str());
    assert!(
        decision["reasons"]
            .to_string()
            .contains("approved by U_ALICE")
    );

    // The original message is replaced through response_url and names the approver.
    let update = e.requests_to("/response", 1).await.remove(0).json();
    assert_eq!(update["replace_original"], true);
    assert!(update.to_string().contains("U_ALICE"), "{update}");

    // Every step is in the audit log: requested, notified, answer, resolved, consumed.
    // Delivery outcomes are recorded after the receiver answered: wait for them, not a time.
    let _ = e.requests_to("/hook", 2).await;
    let steps = ["requested", "notified", "answer", "resolved", "consumed"];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<String> = e
            .approval_events()
            .iter()
            .filter(|x| x["approval_id"] == id.as_str())
            .map(|x| x["event"].as_str().unwrap().to_string())
            .collect();
        let missing: Vec<&str> = (steps.iter().copied())
            .filter(|step| !events.iter().any(|x| x == step))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing:?} missing from {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = &e.events("answer")[0];
    assert_eq!(answer["approver"], "U_ALICE");
    assert_eq!(answer["channel"], "slack");
    let decisions = audit_entries(e.s.running.audit(), "decision");
    let last = decisions.last().unwrap();
    assert_eq!(last["decision"], "allow");
    assert_eq!(last["approval_id"], id.as_str());
}

#[tokio::test]
async fn forged_stale_and_replayed_slack_callbacks_are_rejected_and_audited() {
    let e = env().await;
    let id = e.pending("write", json!({"path": "a"})).await;

    let (code, _, _) = e
        .slack_click_signed(&id, "U_ALICE", "approve", "wrong-secret", now())
        .await;
    assert_eq!(code, 401);
    let (code, _, _) = e
        .slack_click_signed(&id, "U_ALICE", "approve", SLACK_SECRET, now() - 301)
        .await;
    assert_eq!(code, 401);
    let (code, _) = e
        .post_slack("payload=%7B%7D", &now().to_string(), "v0=00")
        .await;
    assert_eq!(code, 401);

    // A correctly signed click counts once; sending the same request again is a replay.
    let (code, _, body) = e
        .slack_click_signed(&id, "U_BOB", "deny", SLACK_SECRET, now())
        .await;
    assert_eq!(code, 200);
    let ts = (now() - 1).to_string();
    let sig = slack_signature(SLACK_SECRET, &ts, body.as_bytes());
    let (again, v) = e.post_slack(&body, &ts, &sig).await;
    assert_eq!(again, 200, "a new signature is a new request: {v}");
    assert!(
        v["text"].as_str().unwrap().contains("already denied"),
        "{v}"
    );
    let (replayed, v) = e.post_slack(&body, &ts, &sig).await;
    assert_eq!(replayed, 409, "{v}");
    assert_eq!(v["error"]["code"], "replayed_callback");

    // None of them proved who sent it: counted (one audit entry per window), not recorded.
    let rejected = e.events("callback_rejected");
    assert!(rejected.is_empty(), "{rejected:#?}");
    let metrics = e.metrics().await;
    for (reason, n) in [("bad_signature", 2), ("stale", 1), ("replayed", 1)] {
        let line = format!(
            r#"clawgate_anonymous_refusals_total{{endpoint="slack_interactions",reason="{reason}"}} {n}"#
        );
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
    // Nothing forged changed the approval: it was denied by U_BOB only.
    let d = e.check("write", json!({"path": "a"})).await;
    assert_eq!(d["decision"], "deny");
    assert!(d["reasons"].to_string().contains("denied by U_BOB"), "{d}");
}

#[tokio::test]
async fn only_allowed_approvers_count_and_never_the_requester() {
    let e = env().await;
    let id = e.pending("write", json!({"path": "b"})).await;
    let (_, ack) = e.slack_click(&id, "U_MALLORY", "approve").await;
    assert!(
        ack["text"]
            .as_str()
            .unwrap()
            .contains("not an allowed approver"),
        "{ack}"
    );
    // U1 is in group:sre, but asked for the action.
    let (code, v) = e
        .operator(&id, "U1", "approve", &approver_token("U1"))
        .await;
    assert_eq!(code, 403);
    assert_eq!(v["error"]["code"], "self_approval");
    // The agent itself cannot approve either.
    let (code, v) = e
        .operator(&id, "main", "approve", &approver_token("main"))
        .await;
    assert_eq!(code, 403, "{v}");
    let wait = e.wait(&id, "0").await;
    assert_eq!(wait["decision"], "pending");
    let codes: Vec<String> = e
        .events("answer_rejected")
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        codes,
        ["approver_not_allowed", "self_approval", "self_approval"]
    );
    // A wrong admin token is refused and counted.
    let (code, _) = e.operator(&id, "U_ALICE", "approve", "guess").await;
    assert_eq!(code, 401);
    assert!(e.metrics().await.contains(
        r#"clawgate_anonymous_refusals_total{endpoint="approval_decision",reason="admin_token"} 1"#
    ));
}

#[tokio::test]
async fn quorum_needs_distinct_approvers_and_one_deny_denies() {
    let e = env().await;
    let id = e
        .pending("deploy", json!({"service": "api", "version": "1.2.3"}))
        .await;
    let (code, v) = e
        .operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["approval"]["status"], "pending");
    let (code, v) = e
        .operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("already_answered"))
    );
    assert_eq!(
        e.check("deploy", json!({"service": "api", "version": "1.2.3"}))
            .await["decision"],
        "pending"
    );
    // U_CAROL is allowed directly, not through the group.
    let (code, v) = e
        .operator(&id, "U_CAROL", "approve", &approver_token("U_CAROL"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["approval"]["status"], "approved");
    assert_eq!(v["approval"]["decided_by"], json!(["U_ALICE", "U_CAROL"]));
    assert_eq!(
        e.check("deploy", json!({"service": "api", "version": "1.2.3"}))
            .await["decision"],
        "allow"
    );

    let id = e.pending("deploy", json!({"service": "db"})).await;
    e.operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    let (_, v) = e
        .operator(&id, "U_BOB", "deny", &approver_token("U_BOB"))
        .await;
    assert_eq!(v["approval"]["status"], "denied");
    let (code, _) = e
        .operator(&id, "U_CAROL", "approve", &approver_token("U_CAROL"))
        .await;
    assert_eq!(code, 409);
    let wait = e.wait(&id, "1").await;
    assert_eq!(wait["decision"], "deny");
    assert!(
        wait["reasons"][0]
            .as_str()
            .unwrap()
            .contains("denied by U_BOB: checked")
    );
}

#[tokio::test]
async fn an_approval_does_not_move_to_another_action_agent_requester_or_policy() {
    let e = env().await;
    let id = e
        .pending("write", json!({"path": "c", "content": "1"}))
        .await;
    e.operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    // Changed arguments: a new approval, not this one.
    let other = e.check("write", json!({"path": "c", "content": "2"})).await;
    assert_eq!(other["decision"], "pending");
    assert_ne!(other["approval_id"], id.as_str());
    // Another agent asking for the same action.
    let mut body = check_body("write", json!({"path": "c", "content": "1"}));
    body["agent"]["id"] = json!("other-agent");
    let (_, v) = e.s.check_body(&body).await;
    assert_eq!(v["decision"], "pending");
    assert_ne!(v["approval_id"], id.as_str());
    // Another requester asking for the same action.
    let mut body = check_body("write", json!({"path": "c", "content": "1"}));
    body["requester"]["sender_id"] = json!("U_DAVE");
    let (_, v) = e.s.check_body(&body).await;
    assert_eq!(v["decision"], "pending");
    assert_ne!(v["approval_id"], id.as_str());
    // A callback naming another action hash is refused.
    let pending = other["approval_id"].as_str().unwrap();
    let (code, v) = e
        .webhook(
            pending,
            "msg_binding",
            &json!({"approval_id": pending, "decision": "approve", "approver": "U_ALICE", "action_hash": "00".repeat(32)}),
            WEBHOOK_SECRET,
            now(),
        )
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("binding_mismatch"))
    );
    // A policy change (new revision) needs a new approval even for the identical action.
    let dir = e.s.dir.path().join("policy");
    std::fs::write(dir.join("main.rego"), format!("{POLICY}\n# revision 2\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = e.check("write", json!({"path": "c", "content": "1"})).await;
        if d["approval_id"] != id.as_str() {
            assert_eq!(d["decision"], "pending");
            break;
        }
        assert!(Instant::now() < deadline, "the reload never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn approved_actions_go_through_once_with_a_short_reuse_window() {
    let e = env_with(|c| c.approval.reuse_window_s = 1).await;
    let params = json!({"path": "d"});
    let id = e.pending("write", params.clone()).await;
    // Asking again before anyone answers reuses the approval and notifies nobody twice.
    assert_eq!(e.pending("write", params.clone()).await, id);
    e.operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    assert_eq!(e.wait(&id, "1").await["decision"], "allow");
    // A reconnecting client within the window is not punished.
    assert_eq!(e.check("write", params.clone()).await["decision"], "allow");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // After the window the approval is spent: the wait says so, a check asks anew.
    let spent = e.wait(&id, "0").await;
    assert_eq!(spent["decision"], "deny");
    assert!(
        spent["reasons"][0]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    let fresh = e.pending("write", params).await;
    assert_ne!(fresh, id);
    let requested = e.events("requested");
    assert_eq!(requested.len(), 2, "{requested:#?}");
    assert_eq!(e.slack_messages(2).await.len(), 2);
}

#[tokio::test]
async fn expiry_denies_and_late_answers_are_refused() {
    let e = env().await;
    let id = e.pending("quick", json!({})).await;
    let t0 = Instant::now();
    let wait = e.wait(&id, "5").await;
    assert_eq!(wait["decision"], "deny", "{wait}");
    assert_eq!(wait["status"], "expired");
    assert!(t0.elapsed() < Duration::from_secs(4));
    let (code, v) = e.slack_click(&id, "U_ALICE", "approve").await;
    assert_eq!(code, 200);
    assert!(v["text"].as_str().unwrap().contains("expired"), "{v}");
    assert_eq!(e.check("quick", json!({})).await["decision"], "deny");
    assert_eq!(e.events("expired").len(), 1);
}

#[tokio::test]
async fn generic_callbacks_are_signed_and_idempotent_by_webhook_id() {
    let e = env().await;
    let id = e.pending("deploy", json!({"service": "web"})).await;
    // The generic notification carries the decision URL and a valid signature.
    let hook = e.requests_to("/hook", 1).await.remove(0);
    let event = hook.json();
    assert_eq!(event["type"], "approval.requested");
    assert!(
        event["data"]["decision_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/approvals/{id}/decision"))
    );
    WebhookSecret::parse(WEBHOOK_SECRET)
        .unwrap()
        .verify(
            hook.header("webhook-id"),
            hook.header("webhook-timestamp"),
            &hook.body,
            hook.header("webhook-signature"),
            now(),
        )
        .unwrap();

    let body = json!({"approval_id": id, "decision": "approve", "approver": "U_ALICE"});
    let other = WebhookSecret::generate();
    let (code, _) = e.webhook(&id, "msg_1", &body, &other, now()).await;
    assert_eq!(code, 401);
    let (code, _) = e
        .webhook(&id, "msg_1", &body, WEBHOOK_SECRET, now() - 600)
        .await;
    assert_eq!(code, 401);
    let (code, v) = e.webhook(&id, "msg_1", &body, WEBHOOK_SECRET, now()).await;
    assert_eq!(code, 200, "{v}");
    // The sender retries the same message: same answer, counted once.
    let (code, v) = e.webhook(&id, "msg_1", &body, WEBHOOK_SECRET, now()).await;
    assert_eq!(code, 200);
    assert_eq!(v["replayed"], true);
    assert_eq!(v["approval"]["status"], "pending");
    // Reusing the id for a different answer is refused.
    let bob = json!({"approval_id": id, "decision": "approve", "approver": "U_BOB"});
    let (code, _) = e.webhook(&id, "msg_1", &bob, WEBHOOK_SECRET, now()).await;
    assert_eq!(code, 409);
    // One webhook receiver fills one place of the quorum, whoever it names (finding 2).
    let (code, v) = e.webhook(&id, "msg_2", &bob, WEBHOOK_SECRET, now()).await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["error"]["code"], "credential_already_counted");
    let (code, v) = e
        .operator(&id, "U_BOB", "approve", &approver_token("U_BOB"))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved");
    let answers = e.events("answer");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["channel"], "webhook");
    // Malformed bodies are refused with a clear error and change nothing.
    let resp =
        e.s.http
            .post(e.s.admin(&format!("/v1/approvals/{id}/decision")))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{\"decision\": \"maybe\"")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn operators_list_show_and_answer_with_the_admin_token() {
    let e = env().await;
    let id = e
        .pending("write", json!({"path": "e", "password": "hunter2"}))
        .await;
    let list =
        e.s.http
            .get(e.s.admin("/v1/approvals?status=pending"))
            .send()
            .await
            .unwrap();
    assert_eq!(list.status(), 401);
    let list: Value =
        e.s.http
            .get(e.s.admin("/v1/approvals?status=pending"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(list["approvals"][0]["id"], id.as_str());
    assert_eq!(
        list["approvals"][0]["action"]["params"]["password"],
        "[REDACTED]"
    );

    // The real CLI against the running sidecar.
    let url = e.s.admin("");
    // Async, so the sidecar in this test's runtime keeps serving while the CLI runs.
    let cli = async |args: &[&str]| {
        tokio::process::Command::new(crate::common::BIN)
            .args(["approvals", "--url", &url, "--token", ADMIN_TOKEN])
            .args(args)
            .output()
            .await
            .unwrap()
    };
    let out = cli(&["list"]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let out = cli(&["show", &id]).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("group:sre") && !shown.contains("hunter2"),
        "{shown}"
    );
    // The admin token answers only as the local operator, not as whom `--as` names.
    let out = cli(&["approve", &id, "--as", "U_MALLORY"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answers only as local-operator"), "{err}");
    // An approver answers with their own token.
    let bob = approver_token("U_BOB");
    let out = tokio::process::Command::new(crate::common::BIN)
        .args(["approvals", "--url", &url, "--token", &bob])
        .args(["deny", &id, "--reason", "not during the freeze"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = e
        .check("write", json!({"path": "e", "password": "hunter2"}))
        .await;
    assert_eq!(d["decision"], "deny");
    assert!(d["reasons"].to_string().contains("not during the freeze"));
    let answer = &e.events("answer")[0];
    assert_eq!(answer["channel"], "cli");
}

#[tokio::test]
async fn bad_wait_requests_get_clear_errors() {
    let e = env().await;
    let resp =
        e.s.http
            .get(e.s.agent("/v1/approvals/nope/wait"))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 404);
    let id = e.pending("write", json!({"path": "f"})).await;
    let resp =
        e.s.http
            .get(e.s.agent(&format!("/v1/approvals/{id}/wait?timeout=soon")))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    let resp =
        e.s.http
            .post(e.s.agent("/v1/check?wait=-1"))
            .json(&check_body("write", json!({})))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    // Approvals are not answerable from the agent listener.
    let resp =
        e.s.http
            .post(e.s.agent(&format!("/v1/approvals/{id}/decision")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"decision": "approve", "approver": "U_ALICE"}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn pending_approvals_survive_a_restart_and_expiry_still_applies() {
    let e = env().await;
    let id = e.pending("write", json!({"path": "g"})).await;
    let quick = e.pending("quick", json!({"n": 1})).await;
    let data = e.s.running.config.data_dir.clone();
    let policy = e.s.running.config.policy.dir.clone();
    let crate::common::Sidecar { running, dir, .. } = e.s;
    running.shutdown(Duration::from_secs(5)).await;
    // Down for longer than `quick` lives.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let rx = e.rx;
    let s = start_with(|c, _| {
        c.data_dir = data.clone();
        c.policy.dir = policy.clone();
        c.approval
            .groups
            .insert("sre".into(), vec!["U_ALICE".into()]);
        c.admin.token_sha256 = Some(clawgate::admin::auth::AdminToken::hash_hex(ADMIN_TOKEN));
        add_approver(c, "U_ALICE");
    })
    .await;
    let e = Env { s, rx };
    let expired = e.events("expired");
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert_eq!(expired[0]["approval_id"], quick.as_str());
    assert_eq!(e.wait(&quick, "0").await["status"], "expired");
    // The pending one is still pending and still bound to the same action.
    assert_eq!(e.pending("write", json!({"path": "g"})).await, id);
    let (code, v) = e
        .operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        e.check("write", json!({"path": "g"})).await["decision"],
        "allow"
    );
    drop(dir);
}

#[tokio::test]
async fn a_release_through_the_wait_path_is_admitted_and_recorded_like_a_check() {
    // Issue 15, finding 8: an approved action released by GET /v1/approvals/{id}/wait ran
    // without its verdict's constraints and left no decision entry.
    let e = env().await;
    let params = json!({"path": "limited.txt"});
    let id = e.pending("limited", params.clone()).await;
    let (code, _) = e
        .operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    assert_eq!(code, 200);
    let report = |decision_id: String| {
        let (http, url) = (e.s.http.clone(), e.s.agent("/v1/results"));
        async move {
            let body = json!({"decision_id": decision_id, "ok": true, "duration_ms": 3});
            let resp = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    };

    // The first release is allowed under a decision of its own; the call now runs.
    let first = e.wait(&id, "1").await;
    assert_eq!(first["decision"], "allow", "{first}");
    let first_id = first["decision_id"].as_str().unwrap().to_string();
    // While it runs, another release breaks max_concurrent = 1.
    let second = e.wait(&id, "0").await;
    assert_eq!(second["decision"], "deny", "{second}");
    assert!(
        second["reasons"].to_string().contains("concurrency limit"),
        "{second}"
    );
    // Its result frees the slot; the next release is the second of two per minute.
    report(first_id.clone()).await;
    let third = e.wait(&id, "0").await;
    assert_eq!(third["decision"], "allow", "{third}");
    report(third["decision_id"].as_str().unwrap().to_string()).await;
    let fourth = e.wait(&id, "0").await;
    assert_eq!(fourth["decision"], "deny", "{fourth}");
    assert!(
        fourth["reasons"].to_string().contains("rate limit limited"),
        "{fourth}"
    );
    // A check of the same action shares the limit.
    let check = e.check("limited", params).await;
    assert_eq!(check["decision"], "deny", "{check}");
    assert!(
        check["reasons"].to_string().contains("rate limit limited"),
        "{check}"
    );

    // Every release left a decision entry bound to the approval, like a check does.
    let entries: Vec<Value> = audit_entries(e.s.running.audit(), "decision")
        .into_iter()
        .filter(|d| d["approval_id"] == id.as_str())
        .collect();
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["pending", "allow", "deny", "allow", "deny", "deny"],
        "{entries:#?}"
    );
    let released = &entries[1];
    assert_eq!(released["decision_id"], first_id.as_str());
    assert_eq!(released["action"]["tool"], "limited");
    assert_eq!(released["action_hash"], entries[0]["action_hash"]);
    assert_eq!(released["agent"]["id"], "main");
    assert_eq!(released["constraints"]["max_concurrent"], 1);
    assert!(
        released["reasons"]
            .to_string()
            .contains("approved by U_ALICE"),
        "{released}"
    );
}

#[tokio::test]
async fn signed_answers_are_bound_to_their_approval_and_count_once_when_delivered_concurrently() {
    // Issue 15, finding 3: a signed answer did not name its approval, so an answer for one
    // could be posted to another's decision_url; and concurrent copies of one delivery all
    // passed the replay check before any was remembered.
    let e = env().await;
    let a = e.pending("deploy", json!({"service": "a"})).await;
    let b = e.pending("deploy", json!({"service": "b"})).await;
    let for_a = json!({"approval_id": a, "decision": "approve", "approver": "U_ALICE"});

    // A signed answer that names no approval is refused.
    let unnamed = json!({"decision": "approve", "approver": "U_ALICE"});
    let (code, v) = e
        .webhook(&a, "msg_unnamed", &unnamed, WEBHOOK_SECRET, now())
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("approval_id"),
        "{v}"
    );
    // A valid answer for A posted to B's decision_url is refused; B is untouched.
    let (code, v) = e.webhook(&b, "msg_a", &for_a, WEBHOOK_SECRET, now()).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("approval_mismatch")),
        "{v}"
    );
    let (code, _) = e
        .operator(&b, "U_BOB", "approve", &approver_token("U_BOB"))
        .await;
    assert_eq!(code, 200);
    // So is an operator answer naming another approval than its URL's.
    let answer = json!({"approval_id": a, "decision": "deny", "approver": "U_BOB"});
    let (code, v) = e.s.answer_approval(ADMIN_TOKEN, &b, &answer).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("approval_mismatch")),
        "{v}"
    );

    // The same delivery, copied eight times and posted at once where it belongs: applied once.
    let copies = (0..8).map(|_| e.webhook(&a, "msg_a", &for_a, WEBHOOK_SECRET, now()));
    let answers = futures_util::future::join_all(copies).await;
    let applied: Vec<&Value> = answers
        .iter()
        .filter(|(code, v)| *code == 200 && v["replayed"] != true)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(applied.len(), 1, "{answers:#?}");
    for (code, v) in &answers {
        let replayed = (*code == 200 && v["replayed"] == true)
            || (*code == 409 && v["error"]["code"] == "replayed_callback");
        assert!(replayed || std::ptr::eq(v, applied[0]), "{code} {v}");
    }
    let counted: Vec<Value> = e
        .approval_events()
        .into_iter()
        .filter(|ev| ev["approval_id"] == a.as_str())
        .filter(|ev| ev["event"] == "answer" || ev["event"] == "answer_rejected")
        .collect();
    assert_eq!(counted.len(), 1, "{counted:#?}");
    assert_eq!(counted[0]["event"], "answer");
    assert_eq!(counted[0]["approver"], "U_ALICE");
    let shown =
        e.s.http
            .get(e.s.admin(&format!("/v1/approvals/{b}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
    let b_answers = shown["answers"].as_array().unwrap().clone();
    assert_eq!(b_answers.len(), 1, "{shown}");
    assert_eq!(b_answers[0]["approver"], "U_BOB");
}

#[tokio::test]
async fn a_release_after_the_policy_changed_is_denied_naming_the_change() {
    // Issue 15, finding 8: a check of the action after a policy reload would not be let through
    // by the old approval (it is bound to the old revision); neither is a release.
    let e = env_with(|c| c.policy.watch = false).await;
    let id = e.pending("write", json!({"path": "reloaded"})).await;
    let (code, _) = e
        .operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    assert_eq!(code, 200);
    let dir = e.s.dir.path().join("policy");
    std::fs::write(dir.join("main.rego"), format!("{POLICY}\n# revision 2\n")).unwrap();
    let reload =
        e.s.http
            .post(e.s.admin("/v1/policy/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
    assert_eq!(reload.status(), 200);
    let released = e.wait(&id, "0").await;
    assert_eq!(released["decision"], "deny", "{released}");
    assert!(
        released["reasons"]
            .to_string()
            .contains("the policy changed since approval"),
        "{released}"
    );
    let recorded: Vec<Value> = audit_entries(e.s.running.audit(), "decision")
        .into_iter()
        .filter(|d| d["decision_id"] == released["decision_id"])
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["decision"], "deny");
    assert_eq!(recorded[0]["approval_id"], id.as_str());
}

#[tokio::test]
async fn a_release_outside_the_callers_scopes_is_denied() {
    // Issue 15, finding 8: approvals survive a restart, scopes come from the config of the
    // running sidecar; a release is checked against the scopes in force, as a check would be.
    const TOKEN: &str = "scoped-agent-token";
    let identity = |tool_groups: Option<Vec<String>>| clawgate::identity::IdentityConfig {
        token_sha256: Some(clawgate::token::TokenHash::hex_of(TOKEN)),
        scopes: clawgate::identity::Scopes {
            tool_groups,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = env_with(|c| {
        c.identities.insert("agent".into(), identity(None));
    })
    .await;
    let (http, body) = (e.s.http.clone(), check_body("write", json!({"path": "s"})));
    let check = http.post(e.s.agent("/v1/check")).bearer_auth(TOKEN);
    let held = json_of(check.json(&body)).await;
    assert_eq!(held["decision"], "pending", "{held}");
    let id = held["approval_id"].as_str().unwrap().to_string();
    let (code, _) = e
        .operator(&id, "U_ALICE", "approve", &approver_token("U_ALICE"))
        .await;
    assert_eq!(code, 200);

    // Restarted with the identity narrowed to a tool group `write` is not in.
    let (data, policy) = (
        e.s.running.config.data_dir.clone(),
        e.s.running.config.policy.dir.clone(),
    );
    let crate::common::Sidecar { running, dir, .. } = e.s;
    running.shutdown(Duration::from_secs(5)).await;
    // The stopped sidecar's last tasks may hold the approvals file for a moment.
    let tmp = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let running = loop {
        let mut c = crate::common::test_config(tmp.path());
        c.data_dir = data.clone();
        c.policy.dir = policy.clone();
        c.identities
            .insert("agent".into(), identity(Some(vec!["sessions".into()])));
        match clawgate::app::start(c).await {
            Ok(running) => break running,
            Err(e) if Instant::now() < deadline && e.to_string().contains("already open") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the sidecar did not restart: {e}"),
        }
    };
    let s = crate::common::Sidecar {
        running,
        dir: tmp,
        http: http.clone(),
    };
    let wait = http.get(s.agent(&format!("/v1/approvals/{id}/wait?timeout=0")));
    let released = json_of(wait.bearer_auth(TOKEN)).await;
    assert_eq!(released["decision"], "deny", "{released}");
    assert!(
        released["reasons"]
            .to_string()
            .contains("identity agent is not scoped for tool group"),
        "{released}"
    );
    let recorded: Vec<Value> = audit_entries(s.running.audit(), "decision")
        .into_iter()
        .filter(|d| d["decision_id"] == released["decision_id"])
        .collect();
    assert_eq!(recorded.len(), 1, "{released}");
    assert_eq!(recorded[0]["agent"]["authenticated_as"], "agent");
    drop(dir);
}

#[tokio::test]
async fn anonymous_refusals_are_counted_per_window_not_recorded_one_by_one() {
    // Issue 15, finding 7: 200 forged Slack callbacks wrote 200 durable audit entries, so
    // whoever reached the admin Ingress could fill the disk. Refusals of requests that proved
    // nothing are counted (a metric, one entry per window); refusals of authenticated requests
    // stay entries of their own.
    let e = env().await;
    let id = e.pending("write", json!({"path": "w"})).await;
    for _ in 0..200 {
        let (code, _, _) = e
            .slack_click_signed(&id, "U_ALICE", "approve", "forged-secret", now())
            .await;
        assert_eq!(code, 401);
    }
    // The admin API without the token, and an unsigned answer: counted the same way.
    let resp =
        e.s.http
            .get(e.s.admin("/v1/audit/export"))
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 401);
    let (code, _) = e.operator(&id, "U_ALICE", "approve", "guess").await;
    assert_eq!(code, 401);
    let rejected = e.events("callback_rejected");
    assert!(
        rejected.is_empty(),
        "anonymous refusals wrote entries: {rejected:#?}"
    );
    let metrics = e.metrics().await;
    for line in [
        r#"clawgate_anonymous_refusals_total{endpoint="slack_interactions",reason="bad_signature"} 200"#,
        r#"clawgate_anonymous_refusals_total{endpoint="audit_export",reason="admin_token"} 1"#,
        r#"clawgate_anonymous_refusals_total{endpoint="approval_decision",reason="admin_token"} 1"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }

    // A signed answer posted to the wrong approval is authenticated: its own entry.
    let other = json!({"approval_id": "other", "decision": "approve", "approver": "U_ALICE"});
    let (code, v) = e.webhook(&id, "msg_w", &other, WEBHOOK_SECRET, now()).await;
    assert_eq!(code, 409, "{v}");
    let rejected = e.events("callback_rejected");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(
        rejected[0]["why"].as_str().unwrap().contains("other"),
        "{rejected:#?}"
    );

    // The window's count is written when the sidecar stops.
    let path = e.s.running.config.audit_path();
    let crate::common::Sidecar { running, dir, .. } = e.s;
    running.shutdown(Duration::from_secs(5)).await;
    let reader = clawgate::audit::AuditReader::open(&path).unwrap();
    let mut windows = Vec::new();
    let mut rejected = 0;
    reader
        .for_each_entry(0, None, |_, _, json| {
            let entry: Value = serde_json::from_slice(json).unwrap();
            if entry["kind"] == "access" {
                windows.push(entry);
            } else if entry["event"] == "callback_rejected" {
                rejected += 1;
            }
            Ok(true)
        })
        .unwrap();
    // The one rejected signed answer; nothing for the 202 anonymous refusals but the window.
    assert_eq!(rejected, 1);
    assert!(!windows.is_empty() && windows.len() <= 2, "{windows:#?}");
    let total: u64 = windows.iter().map(|w| w["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 202, "{windows:#?}");
    let by_reason = |reason: &str| -> u64 {
        windows
            .iter()
            .map(|w| w["reasons"][reason].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(by_reason("bad_signature"), 200, "{windows:#?}");
    assert_eq!(by_reason("admin_token"), 2, "{windows:#?}");
    for w in &windows {
        assert_eq!(w["event"], "anonymous_refused", "{w}");
        assert!(
            w["endpoints"]["slack_interactions"].as_u64().is_some(),
            "{w}"
        );
        assert!(w["peers"]["127.0.0.1"].as_u64().is_some(), "{w}");
    }
    drop(dir);
}

#[tokio::test]
async fn a_window_of_anonymous_refusals_is_written_when_it_closes() {
    let e = env_with(|c| c.admin.anonymous_window_s = 1).await;
    for _ in 0..3 {
        let (code, _) = e.post_slack("payload=%7B%7D", "not-a-time", "v0=00").await;
        assert_eq!(code, 401);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let windows = loop {
        let windows = audit_entries(e.s.running.audit(), "access");
        if !windows.is_empty() || Instant::now() > deadline {
            break windows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(windows.len(), 1, "{windows:#?}");
    let w = &windows[0];
    assert_eq!(w["count"], 3, "{w}");
    assert_eq!(w["reasons"]["malformed_signature"], 3, "{w}");
    assert!(
        w["window_start"].as_str().unwrap() < w["window_end"].as_str().unwrap(),
        "{w}"
    );
    // A quiet window writes nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(audit_entries(e.s.running.audit(), "access").len(), 1);
}

/// A check by agent `agent`: its `agent.id` in the body (the loopback agent listener has no
/// identities, so that is the agent's name).
async fn check_as(e: &Env, agent: &str, tool: &str, params: Value) -> Value {
    let mut body = check_body(tool, params);
    body["agent"]["id"] = json!(agent);
    let (code, v) = e.s.check_body(&body).await;
    assert_eq!(code, 200, "{v}");
    v
}

/// A `write` of `path` by `agent` that is held for approval: its approval id.
async fn pending_as(e: &Env, agent: &str, path: &str) -> String {
    let d = check_as(e, agent, "write", json!({ "path": path })).await;
    assert_eq!(d["decision"], "pending", "{d}");
    d["approval_id"].as_str().unwrap().to_string()
}

fn assert_limited(d: &Value, key: &str) {
    assert_eq!(d["decision"], "deny", "{d}");
    let reasons = d["reasons"].to_string();
    assert!(
        reasons.contains("approval_limit") && reasons.contains(key),
        "{key}: {d}"
    );
}

#[tokio::test]
async fn approval_floods_are_bounded_per_agent_and_in_total_and_the_denial_says_which_bound() {
    // Issue 15, finding 6: constraints run only on allowed actions, so an agent could open
    // unlimited pending approvals (each an fsync'd entry, a notification, its arguments in
    // memory).
    let e = env_with(|c| {
        c.approval.max_pending_per_agent = 3;
        c.approval.max_pending = 5;
    })
    .await;
    let mut main = Vec::new();
    for n in 0..3 {
        main.push(pending_as(&e, "main", &format!("m{n}")).await);
    }
    let d = check_as(&e, "main", "write", json!({"path": "m3"})).await;
    assert_limited(&d, "approval.max_pending_per_agent");
    // Asking again for an action already waiting is not a new approval.
    let d = check_as(&e, "main", "write", json!({"path": "m0"})).await;
    assert_eq!(d["approval_id"], main[0].as_str(), "{d}");
    // Another agent has its own bound, but all agents share the total.
    for n in 0..2 {
        pending_as(&e, "other", &format!("o{n}")).await;
    }
    let d = check_as(&e, "other", "write", json!({"path": "o2"})).await;
    assert_limited(&d, "approval.max_pending");
    assert!(
        !d["reasons"].to_string().contains("per_agent"),
        "the total, not the agent's bound: {d}"
    );
    // The denials are decisions like any other: audited.
    let limited: Vec<Value> = audit_entries(e.s.running.audit(), "decision")
        .into_iter()
        .filter(|d| d["reasons"].to_string().contains("approval_limit"))
        .collect();
    assert_eq!(limited.len(), 2, "{limited:#?}");
    assert!(
        limited.iter().all(|d| d["decision"] == "deny"),
        "{limited:#?}"
    );
    // An answered approval frees its place.
    let (code, v) = e
        .operator(&main[0], "U_ALICE", "deny", &approver_token("U_ALICE"))
        .await;
    assert_eq!(code, 200, "{v}");
    let d = check_as(&e, "main", "write", json!({"path": "m3"})).await;
    assert_eq!(d["decision"], "pending", "{d}");
    let pending = e.s.http.get(e.s.admin("/v1/approvals?status=pending"));
    let pending = json_of(pending.bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(
        pending["approvals"].as_array().unwrap().len(),
        5,
        "{pending}"
    );
}

#[tokio::test]
async fn new_approvals_are_rate_limited_per_agent() {
    let e = env_with(|c| c.approval.new_per_agent_per_minute = 2).await;
    let mut ids = Vec::new();
    for n in 0..2 {
        ids.push(pending_as(&e, "main", &format!("r{n}")).await);
    }
    // Answering them does not reset the rate: it counts approvals asked for.
    for id in &ids {
        let (code, v) = e
            .operator(id, "U_ALICE", "deny", &approver_token("U_ALICE"))
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let d = check_as(&e, "main", "write", json!({"path": "r2"})).await;
    assert_limited(&d, "approval.new_per_agent_per_minute");
    // Another agent is not slowed by it.
    let d = check_as(&e, "other", "write", json!({"path": "r2"})).await;
    assert_eq!(d["decision"], "pending", "{d}");
}

#[tokio::test]
async fn many_approvals_at_once_are_announced_in_one_batched_message() {
    // Issue 15, finding 6: past notify.batch_after requests in a window, the rest of the
    // window's are announced together, in Slack and as one webhook event.
    let e = env_with(|c| {
        c.notify.batch_after = 2;
        c.notify.batch_window_s = 1;
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(e.pending("write", json!({"path": format!("b{n}")})).await);
    }
    e.slack_messages(3).await;
    e.requests_to("/hook", 3).await;
    // Let a late fourth message show if there were one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slack: Vec<Value> = e
        .slack_messages(3)
        .await
        .iter()
        .map(Recorded::json)
        .collect();
    let hooks: Vec<Value> = e
        .requests_to("/hook", 3)
        .await
        .iter()
        .map(Recorded::json)
        .collect();
    assert_eq!(slack.len(), 3, "{slack:#?}");
    assert_eq!(hooks.len(), 3, "{hooks:#?}");
    let batch = &slack[2];
    let text = batch.to_string();
    assert!(
        batch["text"].as_str().unwrap().contains("3 approvals"),
        "{batch}"
    );
    for id in &ids[2..] {
        assert!(text.contains(id.as_str()), "{id} not in {batch:#}");
    }
    // Each batched approval keeps its own buttons, which answer it.
    let buttons: Vec<&Value> = batch["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .collect();
    assert_eq!(buttons.len(), 3, "{batch:#}");
    assert_eq!(hooks[0]["type"], "approval.requested");
    assert_eq!(
        hooks[2]["type"], "approval.requested_batch",
        "{:#}",
        hooks[2]
    );
    let batched: Vec<&str> = hooks[2]["data"]["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        batched,
        ids[2..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        hooks[2]["data"]["approvals"][0]["decision_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/approvals/{}/decision", ids[2]))
    );
    // A batched approval is answered like any other.
    let (code, v) = e.slack_click(&ids[3], "U_ALICE", "approve").await;
    assert_eq!(code, 200, "{v}");
    assert!(v["text"].as_str().unwrap().contains("approved"), "{v}");
    let notified: Vec<Value> = e
        .events("notified")
        .into_iter()
        .filter(|n| n["approval_ids"].is_array())
        .collect();
    assert_eq!(
        notified.len(),
        2,
        "one batch entry per channel: {notified:#?}"
    );
}

#[tokio::test]
async fn approval_messages_say_what_was_redacted_or_cut_and_which_programs_run() {
    // Issue 15, finding 9: approvers were shown cut arguments without being told, and not the
    // programs a shell command runs.
    let e = env_with(|c| c.policy.dir = None).await;
    let command = format!(
        "rm -rf target && git status $(hostname) # {}",
        "x".repeat(20_000)
    );
    let params = json!({"command": command, "token": "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"});
    let d = e.check("exec", params).await;
    assert_eq!(d["decision"], "pending", "{d}");
    let id = d["approval_id"].as_str().unwrap().to_string();

    let slack = e.slack_messages(1).await[0].json();
    let text = slack.to_string();
    for program in ["`rm`", "`git`", "`hostname`"] {
        assert!(text.contains(program), "{program} not in {slack:#}");
    }
    assert!(text.contains("*Runs*"), "{slack:#}");
    assert!(text.contains("redacted: `params.token`"), "{slack:#}");
    assert!(
        text.contains(&format!("cut to fit: `clawgate approvals show {id}`")),
        "{slack:#}"
    );
    let hook = e.requests_to("/hook", 1).await[0].json();
    assert_eq!(
        hook["data"]["programs"],
        json!(["rm", "git", "hostname"]),
        "{hook:#}"
    );
    assert_eq!(
        hook["data"]["redacted"],
        json!(["params.token"]),
        "{hook:#}"
    );

    // `clawgate approvals show ID` prints all of it (redacted), and what it runs.
    let out = tokio::process::Command::new(crate::common::BIN)
        .args(["approvals", "--url", &e.s.admin(""), "--token", ADMIN_TOKEN])
        .args(["show", &id])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(&"x".repeat(20_000)),
        "the arguments were cut"
    );
    assert!(!shown.contains("ghp_0123456789"), "{shown}");
    assert!(shown.contains("rm, git, hostname"), "{shown}");
    assert!(shown.contains("params.token"), "{shown}");
}

/// The token `[approvers.NAME]` holds for approver `name` in these tests.
fn approver_token(name: &str) -> String {
    format!("token-of-{name}")
}

/// `[approvers.NAME]` for `name`, with [`approver_token`] as its token.
fn add_approver(c: &mut clawgate::config::Config, name: &str) {
    let token_sha256 = clawgate::admin::auth::AdminToken::hash_hex(&approver_token(name));
    c.approvers.insert(
        name.into(),
        clawgate::admin::ApproverCredential {
            token_sha256,
            webhook_secret: None,
        },
    );
}

#[tokio::test]
async fn approvers_answer_only_as_themselves_and_a_quorum_needs_separate_credentials() {
    // Issue 15, finding 2: the admin token's `--as` and a signed webhook's "approver" named
    // the approver, so one credential could answer as anyone and fill a quorum of two alone.
    let e = env().await;
    let id = e.pending("deploy", json!({"service": "api"})).await;
    // The admin token answers only as the local operator.
    let (code, v) = e.operator(&id, "U_ALICE", "approve", ADMIN_TOKEN).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("approver_not_authenticated")),
        "{v}"
    );
    // An approver's own token answers as that approver, and only as them.
    let alice = approver_token("U_ALICE");
    let (code, v) = e.operator(&id, "U_BOB", "approve", &alice).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("approver_not_authenticated")),
        "{v}"
    );
    let (code, v) =
        e.s.answer_approval(&alice, &id, &json!({"decision": "approve"}))
            .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["approval"]["answers"][0]["approver"], "U_ALICE", "{v}");
    assert_eq!(v["approval"]["status"], "pending", "{v}");
    let refused = e.events("callback_rejected");
    assert_eq!(
        refused.len(),
        2,
        "each refusal is its own entry: {refused:#?}"
    );

    // One webhook receiver (one shared secret) fills one place of a quorum, whoever it names.
    let other = e.pending("deploy", json!({"service": "db"})).await;
    let (code, v) = e.webhook_approve(&other, "msg_q1", "U_ALICE").await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = e.webhook_approve(&other, "msg_q2", "U_BOB").await;
    assert_eq!(v["error"]["code"], "credential_already_counted", "{v}");
    assert_eq!(code, 409);
    // A second, separately authenticated approver completes it.
    let bob = approver_token("U_BOB");
    let (code, v) =
        e.s.answer_approval(&bob, &other, &json!({"decision": "approve"}))
            .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved", "{v}");
    let answers = v["approval"]["answers"].as_array().unwrap();
    let credentials: Vec<&str> = answers
        .iter()
        .map(|a| a["credential"].as_str().unwrap())
        .collect();
    assert_eq!(credentials, ["webhook", "approver:U_BOB"], "{v}");
}

#[tokio::test]
async fn one_person_known_by_several_ids_is_one_approver_and_never_approves_their_own_request() {
    // Issue 15, finding 2: self-approval and quorum must hold across channels, for one person
    // with a Slack id and another id elsewhere.
    let e = env_with(|c| {
        // U1 asks in check_body; "carol-cli" is the same person as U1.
        let person = |ids: &[&str]| clawgate::config::Person {
            ids: ids.iter().map(|i| i.to_string()).collect(),
        };
        c.people
            .insert("carol".into(), person(&["U1", "carol-cli"]));
        c.people.insert("bob".into(), person(&["U_BOB", "bob-cli"]));
        add_approver(c, "carol-cli");
        add_approver(c, "bob-cli");
        let sre = c.approval.groups.get_mut("sre").unwrap();
        sre.extend(["carol-cli".to_string(), "bob-cli".to_string()]);
    })
    .await;
    let id = e.pending("deploy", json!({"service": "people"})).await;
    // The requester, under another id, cannot approve.
    let (code, v) = e.approve_with_own_token(&id, "carol-cli").await;
    assert_eq!(v["error"]["code"], "self_approval", "{v}");
    assert_eq!(code, 403);
    // Bob in Slack, then Bob with his token: one person, one place in the quorum.
    let (code, v) = e.slack_click(&id, "U_BOB", "approve").await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = e.approve_with_own_token(&id, "bob-cli").await;
    assert_eq!(v["error"]["code"], "already_answered", "{v}");
    assert_eq!(code, 409);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("bob, who answered as U_BOB"), "{v}");
    let (code, v) = e.approve_with_own_token(&id, "U_ALICE").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved", "{v}");
}

/// Answers to many approvals arrive at once, three people racing on each approval that needs
/// two: per approval exactly two answers count, the third finds it resolved, and the
/// resolution is recorded once, in the same commit as the answer that caused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_answers_count_once_per_approval_and_resolve_each_exactly_once() {
    let e = std::sync::Arc::new(
        env_with(|c| {
            c.approval.new_per_agent_per_minute = 1000;
            c.approval.max_pending_per_agent = 1000;
        })
        .await,
    );
    let mut ids = Vec::new();
    for v in 0..12 {
        ids.push(
            e.pending("deploy", json!({"service": "api", "version": v}))
                .await,
        );
    }
    let mut answers = tokio::task::JoinSet::new();
    for id in &ids {
        for who in ["U_ALICE", "U_BOB", "U_CAROL"] {
            let (e, id) = (e.clone(), id.clone());
            answers.spawn(async move {
                let (code, v) = e.operator(&id, who, "approve", &approver_token(who)).await;
                (id, code, v)
            });
        }
    }
    let mut accepted: std::collections::HashMap<String, usize> = Default::default();
    while let Some(done) = answers.join_next().await {
        let (id, code, v) = done.unwrap();
        match code {
            200 => *accepted.entry(id).or_default() += 1,
            409 => assert_eq!(v["error"]["code"], "approval_resolved", "{v}"),
            other => panic!("answer got {other}: {v}"),
        }
    }
    for id in &ids {
        assert_eq!(accepted.get(id), Some(&2), "approval {id}: {accepted:?}");
        let wait = e.wait(id, "1").await;
        assert_eq!(wait["decision"], "allow", "{wait}");
    }
    let all = e.approval_events();
    for id in &ids {
        let mine: Vec<&Value> = all
            .iter()
            .filter(|x| x["approval_id"] == id.as_str())
            .collect();
        let answered = mine.iter().filter(|x| x["event"] == "answer").count();
        let resolved: Vec<&&Value> = mine.iter().filter(|x| x["event"] == "resolved").collect();
        assert_eq!((answered, resolved.len()), (2, 1), "{mine:#?}");
        // The resolution sits right after the answer that caused it: one commit.
        let seq = resolved[0]["seq"].as_u64().unwrap();
        let before = all
            .iter()
            .find(|x| x["seq"].as_u64() == Some(seq - 1))
            .unwrap();
        assert_eq!(before["event"], "answer", "{before:#}");
        assert_eq!(before["approval_id"], id.as_str());
        assert_eq!(before["approvals"], 2);
    }
    // Each release is one commit too: the approval's first use, then the decision it led to.
    let reader = e.s.running.audit().reader().unwrap();
    let mut log = Vec::new();
    reader
        .for_each_entry(0, None, |_, _, json| {
            log.push(serde_json::from_slice::<Value>(json).unwrap());
            Ok(true)
        })
        .unwrap();
    for id in &ids {
        let at = log
            .iter()
            .position(|x| x["event"] == "consumed" && x["approval_id"] == id.as_str())
            .expect("the release recorded the approval's use");
        let decision = &log[at + 1];
        assert_eq!(decision["kind"], "decision", "{decision:#}");
        assert_eq!(decision["decision"], "allow", "{decision:#}");
        assert_eq!(decision["approval_id"], id.as_str(), "{decision:#}");
    }
}

/// An approver with a webhook secret of their own: the shared secret no longer answers for
/// them, their own does, and it is their credential, so two such approvers fill a quorum of
/// two over webhooks (the shared secret alone never can).
#[tokio::test]
async fn an_approvers_own_webhook_secret_is_the_only_one_that_answers_as_them() {
    const BOB_SECRET: &str = "whsec_Ym9iJ3Mgb3duIHdlYmhvb2sgc2VjcmV0IDMyIGJ5dGVzIQ==";
    const CAROL_SECRET: &str = "whsec_Y2Fyb2wncyBvd24gd2ViaG9vayBzZWNyZXQgMzIgYnl0ZXM=";
    let e = env_with(|c| {
        for (name, secret) in [("U_BOB", BOB_SECRET), ("U_CAROL", CAROL_SECRET)] {
            if let Some(a) = c.approvers.get_mut(name) {
                a.webhook_secret = Some(secret.into());
            }
        }
    })
    .await;
    let id = e.pending("deploy", json!({"service": "billing"})).await;
    let answer = |who: &str| json!({"approval_id": id, "decision": "approve", "approver": who});

    // The shared secret naming U_BOB: refused before anything is applied.
    let (code, v) = e
        .webhook(&id, "msg_b1", &answer("U_BOB"), WEBHOOK_SECRET, now())
        .await;
    assert_eq!(code, 401, "{v}");
    // U_CAROL's secret naming U_BOB: refused too.
    let (code, _) = e
        .webhook(&id, "msg_b2", &answer("U_BOB"), CAROL_SECRET, now())
        .await;
    assert_eq!(code, 401);
    assert_eq!(e.events("answer").len(), 0, "nothing was applied");

    // Each with their own secret: two credentials, the quorum of two is met.
    let (code, v) = e
        .webhook(&id, "msg_b3", &answer("U_BOB"), BOB_SECRET, now())
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["approval"]["status"], "pending");
    let (code, v) = e
        .webhook(&id, "msg_c1", &answer("U_CAROL"), CAROL_SECRET, now())
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved", "{v}");
    let credentials: Vec<Value> = e
        .events("answer")
        .iter()
        .map(|a| a["credential"].clone())
        .collect();
    assert_eq!(
        credentials,
        vec![json!("webhook:U_BOB"), json!("webhook:U_CAROL")]
    );

    // An approver without a secret of their own is still answered for by the shared one.
    let other = e
        .pending("write", json!({"path": "/srv/x", "content": "y"}))
        .await;
    let (code, v) = e
        .webhook(
            &other,
            "msg_a1",
            &json!({"approval_id": other, "decision": "approve", "approver": "U_ALICE"}),
            WEBHOOK_SECRET,
            now(),
        )
        .await;
    assert_eq!(code, 200, "{v}");
}

/// A check held for approval whose client hangs up ends with its connection: when the
/// approval is answered, only the check still waiting is decided again (and recorded).
#[tokio::test]
async fn a_held_check_whose_client_hangs_up_is_dropped_with_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = env().await;
    let params = json!({"path": "/etc/hangup.conf", "content": "x"});
    let (_, first) = e.s.check("write", params.clone()).await;
    assert_eq!(first["decision"], "pending", "{first}");
    let id = first["approval_id"].as_str().unwrap().to_string();
    let body = serde_json::to_vec(&check_body("write", params)).unwrap();
    let request = [
        format!(
            "POST /v1/check?wait=30 HTTP/1.1\r\nHost: clawgate\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body,
    ]
    .concat();
    let decisions = || audit_entries(e.s.running.audit(), "decision").len();
    let before = decisions();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(e.s.running.agent_addr)
            .await
            .unwrap();
        c.write_all(&request).await.unwrap();
        held.push(c);
    }
    // Each held check records its pending decision before it waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while decisions() < before + 3 {
        assert!(Instant::now() < deadline, "the three checks were not held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stays = held.remove(0);
    drop(held);
    // The hang-ups reach the sidecar at once; give its connections time to see them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, answer) = e.approve_with_own_token(&id, "U_ALICE").await;
    assert_eq!(code, 200, "{answer}");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\"decision\":") {
            let n = stays.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the held check's connection closed without an answer"
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer for the held check that stayed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("\"decision\":\"allow\""), "{text}");
    // Released checks record their decision before answering: the one that stayed, only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(decisions(), before + 4);
}
