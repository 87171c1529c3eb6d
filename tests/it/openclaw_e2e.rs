//! The real OpenClaw (2026.9.6) with the clawgate plugin (`examples/openclaw-plugin`) in front
//! of a real clawgate: each test runs whole `openclaw agent --local` turns against a scripted
//! model (`common::model`) and asserts on what actually happened — files, directories, what the
//! model was told, the audit log, `clawgate audit timeline` and `clawgate audit verify`.
//!
//! Each OpenClaw turn takes 15–30 s; the tests run in parallel.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::openclaw::{Turn, agent_turn};
use crate::common::receiver::{Receiver, Reply};
use crate::common::{BIN, Sidecar, audit_entries, start_with, write_bundle};
use clawgate::approvers::slack::slack_signature;
use serde_json::{Value, json};

const SLACK_SECRET: &str = "e2e-slack-signing-secret";
/// How long the plugin holds a call for approval, and the hook timeout above it.
const WAIT_SECONDS: u64 = 25;
const HOOK_TIMEOUT_MS: u64 = 35_000;
const TURN_LIMIT: Duration = Duration::from_secs(180);

/// Recursive deletes and egress to loopback addresses are denied; writes to `needs-approval*` wait for group:sre (60 s),
/// writes to `expires-soon*` expire after 2 s; everything else is allowed.
const POLICY: &str = r#"package clawgate

default decision := {"effect": "allow", "risk": "low", "reasons": ["allowed by the e2e policy"]}

decision := {"effect": "deny", "risk": "critical", "reasons": ["recursive delete is forbidden by the e2e policy"]} if {
  input.action.tool == "exec"
  contains(input.action.params.command, "rm -rf")
}

decision := {"effect": "deny", "risk": "high", "reasons": [sprintf("egress to %s reaches the loopback address %s", [input.action.dest.host, ips[0]])]} if {
  input.action.kind in {"http", "connect"}
  ips := [ip | some ip in input.action.dest.ips; net.cidr_contains("127.0.0.0/8", ip)]
  count(ips) > 0
}

decision := {"effect": "require_approval", "risk": "medium", "reasons": ["writing this file needs an SRE"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 60}} if {
  input.action.tool == "write"
  contains(input.action.params.path, "needs-approval")
}

decision := {"effect": "deny", "risk": "high", "reasons": ["this MCP call is forbidden by the e2e policy"]} if {
  input.action.kind == "mcp"
  contains(input.action.params.text, "forbidden")
}

decision := {"effect": "require_approval", "risk": "medium", "reasons": ["writing this file needs an SRE, quickly"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 2}} if {
  input.action.tool == "write"
  contains(input.action.params.path, "expires-soon")
}
"#;

struct Env {
    s: Sidecar,
    rx: Receiver,
}

async fn env() -> Env {
    env_with(|_| {}).await
}

async fn env_with(edit: impl FnOnce(&mut clawgate::config::Config)) -> Env {
    let rx = Receiver::start(Reply::ok(), &[]).await;
    let slack = rx.url("/slack");
    let s = start_with(|c, dir| {
        c.policy.dir = Some(write_bundle(&dir.join("policy"), &[("main.rego", POLICY)]));
        c.approval
            .groups
            .insert("sre".into(), vec!["U_ALICE".into(), "U_BOB".into()]);
        c.notify.slack.webhook_url = Some(slack);
        c.notify.slack.signing_secret = Some(SLACK_SECRET.into());
        c.notify.initial_backoff_ms = 10;
        edit(c);
    })
    .await;
    Env { s, rx }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Env {
    fn plugin_config(&self) -> Value {
        json!({
            "sidecarUrl": format!("http://{}", self.s.running.agent_addr),
            "waitSeconds": WAIT_SECONDS,
            "requestTimeoutMs": 5000,
        })
    }

    /// Run one agent turn with the model's `scenario`, in the background.
    fn turn(&self, scenario: Value) -> tokio::task::JoinHandle<Turn> {
        tokio::spawn(agent_turn(
            scenario,
            self.plugin_config(),
            HOOK_TIMEOUT_MS,
            TURN_LIMIT,
        ))
    }

    /// The approval id from the first Slack notification (the Approve button's value).
    async fn slack_approval_id(&self, turn: &tokio::task::JoinHandle<Turn>) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(msg) = self.rx.requests().into_iter().find(|r| r.path == "/slack") {
                let msg = msg.json();
                let actions = msg["blocks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["type"] == "actions")
                    .cloned()
                    .unwrap_or_else(|| panic!("no buttons in {msg}"));
                return actions["elements"][0]["value"]
                    .as_str()
                    .unwrap()
                    .to_string();
            }
            assert!(
                !turn.is_finished(),
                "the turn ended before clawgate notified Slack"
            );
            assert!(Instant::now() < deadline, "no Slack notification");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A correctly signed Slack button click on the admin listener.
    async fn slack_click(&self, approval_id: &str, user: &str, action: &str) {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase()},
            "actions": [{"action_id": action, "block_id": "clawgate_approval",
                         "value": approval_id, "type": "button"}],
            "response_url": self.rx.url("/response"),
        });
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let ts = now().to_string();
        let sig = slack_signature(SLACK_SECRET, &ts, body.as_bytes());
        let resp = self
            .s
            .http
            .post(self.s.admin("/v1/slack/interactions"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", &sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 200, "Slack click refused: {text}");
    }

    fn audit(&self, kind: &str) -> Vec<Value> {
        audit_entries(self.s.running.audit(), kind)
    }

    /// The decision entries for `tool`.
    fn decisions(&self, tool: &str) -> Vec<Value> {
        self.audit("decision")
            .into_iter()
            .filter(|d| d["action"]["tool"] == tool)
            .collect()
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.s.dir.path().join("data")
    }

    /// `--url ADMIN --token-file ...`: how the CLI reads the running sidecar's log (the sidecar
    /// holds the file itself exclusively). The CLI blocks this thread while the sidecar
    /// answers it on another: every test here runs on a multi-threaded runtime.
    fn admin_source(&self) -> Vec<String> {
        vec![
            "--url".into(),
            self.s.admin(""),
            "--token-file".into(),
            self.data_dir().join("admin.token").display().to_string(),
        ]
    }

    /// `clawgate audit verify --url ... --pubkey ...` with the key printed by `audit pubkey`.
    fn verify_audit(&self) {
        let data = self.data_dir();
        let pubkey = std::process::Command::new(BIN)
            .args(["audit", "pubkey", "--key"])
            .arg(data.join("audit-signing.key"))
            .output()
            .unwrap();
        assert!(pubkey.status.success(), "{pubkey:?}");
        let pubkey = String::from_utf8(pubkey.stdout).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify"])
            .args(self.admin_source())
            .args(["--pubkey", pubkey.trim()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("ok:"),
            "audit verify failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `clawgate audit timeline RUN_ID --json` from the real binary, while the sidecar runs.
    fn timeline(&self, run_id: &str) -> Vec<Value> {
        let out = std::process::Command::new(BIN)
            .args(["audit", "timeline", run_id, "--json"])
            .args(self.admin_source())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "audit timeline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn assert_turn_ok(turn: &Turn) {
    assert_eq!(turn.status, 0, "{}", turn.describe());
    assert!(
        turn.model_requests.len() >= 2,
        "the model never saw a tool result\n{}",
        turn.describe()
    );
}

fn write_step(path: &Path, content: &str) -> Value {
    json!({"tool": "write", "arguments": {"path": path.display().to_string(), "content": content}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_exec_is_denied_and_the_model_is_told_why() {
    let e = env().await;
    let work = tempfile::tempdir().unwrap();
    let victim = work.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("precious.txt"), "keep me").unwrap();
    let ran = work.path().join("ran");

    let turn = e
        .turn(json!([
            {"tool": "exec", "arguments": {"command": format!("touch {}", ran.display())}},
            {"tool": "exec", "arguments": {"command": format!("rm -rf {}", victim.display())}},
            {"text": "done"},
        ]))
        .await
        .unwrap();
    assert_turn_ok(&turn);

    // The allowed call ran; the destructive one did not.
    assert!(
        ran.exists(),
        "the allowed exec did not run\n{}",
        turn.describe()
    );
    assert!(
        victim.join("precious.txt").exists(),
        "the victim directory was deleted\n{}",
        turn.describe()
    );
    // The model got the policy's reason as the tool result.
    let results = turn.tool_results();
    assert_eq!(results.len(), 2, "{}", turn.describe());
    assert!(
        results[1].contains("recursive delete is forbidden by the e2e policy"),
        "the model was not told the policy's reason: {results:?}"
    );

    // The audit log has both decisions, with OpenClaw's run and tool-call ids.
    let decisions = e.decisions("exec");
    assert_eq!(decisions.len(), 2, "{decisions:#?}");
    assert_eq!(decisions[0]["decision"], "allow", "{:#}", decisions[0]);
    assert_eq!(decisions[1]["decision"], "deny", "{:#}", decisions[1]);
    assert!(
        decisions[1]["action"]["params"]["command"]
            .as_str()
            .unwrap()
            .contains("rm -rf"),
        "{:#}",
        decisions[1]
    );
    // The plugin reported the allowed call's result (fire-and-forget, so allow a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    let results = loop {
        let results = e.audit("result");
        if !results.is_empty() || Instant::now() > deadline {
            break results;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(
        results[0]["decision_id"], decisions[0]["decision_id"],
        "{results:#?}"
    );
    assert_eq!(results[0]["ok"], true);
    assert_eq!(results[0]["result_sha256"].as_str().map(str::len), Some(64));
    e.verify_audit();
}

/// A write the policy sends for approval, with the model's turn waiting on it.
struct HeldWrite {
    e: Env,
    _work: tempfile::TempDir,
    target: std::path::PathBuf,
    approval_id: String,
    turn: tokio::task::JoinHandle<Turn>,
}

async fn held_write(file_name: &str) -> HeldWrite {
    let e = env().await;
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join(file_name);
    let turn = e.turn(json!([write_step(&target, "written after approval"), {"text": "done"}]));
    let approval_id = e.slack_approval_id(&turn).await;
    // The tool call is held: nothing written yet, the turn still running.
    assert!(!target.exists());
    assert!(!turn.is_finished());
    HeldWrite {
        e,
        _work: work,
        target,
        approval_id,
        turn,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_held_for_approval_runs_once_approved_in_slack() {
    let h = held_write("needs-approval.txt").await;
    h.e.slack_click(&h.approval_id, "U_ALICE", "approve").await;
    let turn = h.turn.await.unwrap();
    assert_turn_ok(&turn);
    assert_eq!(
        std::fs::read_to_string(&h.target).ok().as_deref(),
        Some("written after approval"),
        "the approved write did not happen\n{}",
        turn.describe()
    );
    let results = turn.tool_results();
    assert!(
        results.iter().all(|r| !r.contains("clawgate")),
        "{results:?}"
    );

    // The held check is audited twice: pending when it was held, allow when released.
    let decisions = h.e.decisions("write");
    assert_eq!(decisions.len(), 2, "{decisions:#?}");
    assert_eq!(decisions[0]["decision"], "pending", "{:#}", decisions[0]);
    assert_eq!(decisions[1]["decision"], "allow", "{:#}", decisions[1]);
    assert_eq!(decisions[1]["approval_id"], h.approval_id.as_str());
    let run_id = decisions[0]["agent"]["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {:#}", decisions[0]))
        .to_string();

    // `clawgate audit timeline RUN_ID` shows the decision, the approval, then the result.
    let deadline = Instant::now() + Duration::from_secs(10);
    let timeline = loop {
        let timeline = h.e.timeline(&run_id);
        if timeline.iter().any(|t| t["kind"] == "result") || Instant::now() > deadline {
            break timeline;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let steps: Vec<String> = timeline
        .iter()
        .map(|t| match t["kind"].as_str().unwrap() {
            "decision" => format!("decision:{}", t["decision"].as_str().unwrap()),
            "approval" => format!("approval:{}", t["event"].as_str().unwrap()),
            other => other.to_string(),
        })
        .collect();
    let pos = |step: &str| {
        steps
            .iter()
            .position(|s| s == step)
            .unwrap_or_else(|| panic!("no {step} in the timeline {steps:?}"))
    };
    for (before, after) in [
        ("decision:pending", "approval:answer"),
        ("approval:requested", "approval:answer"),
        ("approval:answer", "approval:resolved"),
        ("approval:resolved", "decision:allow"),
        ("decision:allow", "result"),
    ] {
        assert!(
            pos(before) < pos(after),
            "{before} not before {after}: {steps:?}"
        );
    }
    let result = &timeline[pos("result")];
    assert_eq!(result["ok"], true, "{result:#}");
    assert_eq!(result["decision_id"], decisions[1]["decision_id"]);
    assert_eq!(result["result_sha256"].as_str().map(str::len), Some(64));
    let resolved = &timeline[pos("approval:resolved")];
    assert_eq!(resolved["approval_id"], h.approval_id.as_str());
    assert_eq!(resolved["status"], "approved", "{resolved:#}");
    assert_eq!(resolved["decided_by"], json!(["U_ALICE"]), "{resolved:#}");
    // The table form names the same run.
    let table = std::process::Command::new(BIN)
        .args(["audit", "timeline", &run_id])
        .args(h.e.admin_source())
        .output()
        .unwrap();
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("write") && table.contains("U_ALICE"),
        "{table}"
    );
    h.e.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_denied_by_an_approver_is_not_run() {
    let h = held_write("needs-approval-denied.txt").await;
    h.e.slack_click(&h.approval_id, "U_BOB", "deny").await;
    let turn = h.turn.await.unwrap();
    assert_turn_ok(&turn);
    assert!(
        !h.target.exists(),
        "a denied write happened\n{}",
        turn.describe()
    );
    let results = turn.tool_results();
    assert!(
        results.iter().any(|r| r.contains("clawgate denied")),
        "the model was not told: {results:?}"
    );
    let resolved: Vec<Value> =
        h.e.audit("approval")
            .into_iter()
            .filter(|a| a["event"] == "resolved")
            .collect();
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert_eq!(resolved[0]["status"], "denied", "{:#}", resolved[0]);
    assert!(h.e.audit("result").is_empty());
    h.e.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_left_to_expire_is_not_run() {
    let h = held_write("expires-soon.txt").await;
    let turn = h.turn.await.unwrap();
    assert_turn_ok(&turn);
    assert!(
        !h.target.exists(),
        "an expired write happened\n{}",
        turn.describe()
    );
    let results = turn.tool_results();
    assert!(
        results.iter().any(|r| r.contains("clawgate denied")),
        "the model was not told: {results:?}"
    );
    let expired: Vec<Value> =
        h.e.audit("approval")
            .into_iter()
            .filter(|a| a["event"] == "expired")
            .collect();
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert_eq!(expired[0]["approval_id"], h.approval_id.as_str());
    assert!(h.e.audit("result").is_empty());
    h.e.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_sidecar_blocks_every_call() {
    let work = tempfile::tempdir().unwrap();
    let ran = work.path().join("ran");
    // Nothing listens on this port: the plugin must fail closed.
    let dead = format!("http://127.0.0.1:{}", crate::common::free_port());
    let turn = agent_turn(
        json!([
            {"tool": "exec", "arguments": {"command": format!("touch {}", ran.display())}},
            {"text": "done"},
        ]),
        json!({"sidecarUrl": dead, "waitSeconds": 5, "requestTimeoutMs": 2000}),
        HOOK_TIMEOUT_MS,
        TURN_LIMIT,
    )
    .await;
    assert_turn_ok(&turn);
    assert!(
        !ran.exists(),
        "the call ran without clawgate\n{}",
        turn.describe()
    );
    let results = turn.tool_results();
    assert!(
        results
            .iter()
            .any(|r| r.contains("is unreachable") && r.contains("fail closed")),
        "the model was not told: {results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_through_the_gateway_one_allowed_one_denied() {
    let upstream = crate::common::mcp::Upstream::start(&[]);
    let url = upstream.url.clone();
    let e = env_with(move |c| {
        c.mcp.servers.insert(
            "demo".into(),
            clawgate::config::McpServerConfig {
                url,
                headers: Default::default(),
                bearer_token_env: None,
                timeout_ms: 10_000,
            },
        );
    })
    .await;
    let mcp = json!({"mcp": {"servers": {"demo": {
        "url": e.s.agent("/mcp/demo"), "transport": "streamable-http",
        "headers": {"X-Clawgate-Agent": "main"}}}}});
    // OpenClaw defers MCP tools behind its tool catalog: the model reaches them with
    // tool_call {id, args} (tools.toolSearch "tools" mode, the default).
    let scenario = json!([
        {"tool": "tool_call", "arguments": {"id": "demo__echo", "args": {"text": "allowed words"}}},
        {"tool": "tool_call", "arguments": {"id": "demo__echo", "args": {"text": "forbidden words"}}},
        {"text": "done"}
    ]);
    let turn = crate::common::openclaw::agent_turn_with(
        scenario,
        e.plugin_config(),
        HOOK_TIMEOUT_MS,
        TURN_LIMIT,
        mcp,
        &[],
    )
    .await;
    assert_eq!(turn.status, 0, "{}", turn.describe());
    // Only the allowed call reached the MCP server.
    let ran = std::fs::read_to_string(&upstream.ran_log).unwrap_or_default();
    assert!(ran.contains("allowed words"), "{ran}\n{}", turn.describe());
    assert!(!ran.contains("forbidden words"), "{ran}");
    // The model read the gateway's reason as the second tool result.
    let results = turn.tool_results();
    assert!(
        results
            .iter()
            .any(|r| r.contains("forbidden by the e2e policy")),
        "{results:?}\n{}",
        turn.describe()
    );
    let decisions = audit_entries(e.s.running.audit(), "decision");
    let mcp_decisions: Vec<(&str, &str)> = decisions
        .iter()
        .filter(|d| d["action"]["kind"] == "mcp")
        .map(|d| {
            (
                d["action"]["params"]["text"].as_str().unwrap_or(""),
                d["decision"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        mcp_decisions.contains(&("allowed words", "allow")),
        "{mcp_decisions:?}"
    );
    assert!(
        mcp_decisions.contains(&("forbidden words", "deny")),
        "{mcp_decisions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_fetch_to_a_blocked_destination_through_the_egress_proxy_is_refused() {
    // The page the model wants sits on 127.0.0.1 behind a harmless-looking name that only
    // clawgate resolves (egress.resolve); OpenClaw lets the proxy resolve names
    // (tools.web.fetch.useTrustedEnvProxy), so only the proxy's connect-time check stands
    // between the agent and the page.
    let canary = Receiver::start(Reply::ok(), &[]).await;
    let e = env_with(|c| {
        c.egress.resolve.insert(
            "harmless.example.com".into(),
            vec!["127.0.0.1".parse().unwrap()],
        );
    })
    .await;
    let proxy = format!("http://{}", e.s.running.egress_addr);
    let url = format!(
        "http://harmless.example.com:{}/internal-report",
        canary.addr.port()
    );
    let extra = json!({
        "proxy": {"proxyUrl": proxy},
        "tools": {"web": {"fetch": {"useTrustedEnvProxy": true}}},
    });
    let env = [
        ("HTTP_PROXY", proxy.as_str()),
        ("HTTPS_PROXY", proxy.as_str()),
    ];
    let turn = crate::common::openclaw::agent_turn_with(
        json!([
            // Deferred behind OpenClaw's tool catalog, like MCP tools.
            {"tool": "tool_call", "arguments": {"id": "web_fetch", "args": {"url": url}}},
            {"text": "done"}
        ]),
        e.plugin_config(),
        HOOK_TIMEOUT_MS,
        TURN_LIMIT,
        extra,
        &env,
    )
    .await;
    assert_turn_ok(&turn);
    assert_eq!(
        canary.count(),
        0,
        "the page was fetched\n{}",
        turn.describe()
    );
    // The plugin let web_fetch run (the URL looks harmless); the proxy refused the request.
    let decisions = audit_entries(e.s.running.audit(), "decision");
    assert!(
        decisions
            .iter()
            .any(|d| d["action"]["tool"] == "web_fetch" && d["decision"] == "allow"),
        "{decisions:#?}\n{}",
        turn.describe()
    );
    let refused: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["action"]["kind"] == "http" || d["action"]["kind"] == "connect")
        .collect();
    assert!(
        refused.iter().any(|d| d["decision"] == "deny"
            && d["action"]["dest"]["host"] == "harmless.example.com"
            && d["action"]["dest"]["ips"] == json!(["127.0.0.1"])),
        "{refused:#?}\n{}",
        turn.describe()
    );
    let results = turn.tool_results();
    assert_eq!(results.len(), 1, "{}", turn.describe());
    // OpenClaw's fetch tunnels even http:// through CONNECT; the model reads the refusal.
    assert!(results[0].contains("Proxy response (403)"), "{results:?}");
    e.verify_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_authenticates_every_request_with_its_token() {
    const TOKEN: &str = "4f70656e436c61772d6532652d746f6b656e";
    // max_wait_s = 1: the check answers "pending" almost at once, so the approval is
    // released through /v1/approvals/{id}/wait, which only answers the bound identity.
    let e = env_with(|c| {
        c.approval.max_wait_s = 1;
        c.identities.insert(
            "openclaw-main".into(),
            clawgate::identity::IdentityConfig {
                token_sha256: Some(clawgate::token::TokenHash::hex_of(TOKEN)),
                ..Default::default()
            },
        );
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let ran = work.path().join("ran");
    let target = work.path().join("needs-approval-auth.txt");
    // The token as `clawgate openclaw-config --identity` writes it: OpenClaw substitutes
    // ${CLAWGATE_AGENT_TOKEN} from its environment when it loads the config.
    let mut plugin = e.plugin_config();
    plugin["token"] = json!("${CLAWGATE_AGENT_TOKEN}");
    let scenario = json!([
        {"tool": "exec", "arguments": {"command": format!("touch {}", ran.display())}},
        write_step(&target, "written by an authenticated agent"),
        {"text": "done"},
    ]);
    let with_token = tokio::spawn(crate::common::openclaw::agent_turn_with(
        scenario.clone(),
        plugin.clone(),
        HOOK_TIMEOUT_MS,
        TURN_LIMIT,
        json!({}),
        &[("CLAWGATE_AGENT_TOKEN", TOKEN)],
    ));
    let approval_id = e.slack_approval_id(&with_token).await;
    e.slack_click(&approval_id, "U_ALICE", "approve").await;
    let turn = with_token.await.unwrap();
    assert_turn_ok(&turn);
    assert!(ran.exists(), "{}", turn.describe());
    assert_eq!(
        std::fs::read_to_string(&target).ok().as_deref(),
        Some("written by an authenticated agent"),
        "{}",
        turn.describe()
    );
    let decisions = e.audit("decision");
    assert!(
        decisions
            .iter()
            .all(|d| d["agent"]["authenticated_as"] == "openclaw-main"),
        "{decisions:#?}"
    );
    // Both allowed calls' results arrived over the authenticated /v1/results.
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.audit("result").len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results = e.audit("result");
    assert_eq!(results.len(), 2, "{results:#?}");
    assert!(
        results
            .iter()
            .all(|r| r["authenticated_as"] == "openclaw-main"),
        "{results:#?}"
    );

    // Without the token in OpenClaw's environment every call is refused (401) and blocked.
    let before = e.audit("decision").len();
    let ran2 = work.path().join("ran-unauthenticated");
    let turn = crate::common::openclaw::agent_turn_with(
        json!([
            {"tool": "exec", "arguments": {"command": format!("touch {}", ran2.display())}},
            {"text": "done"},
        ]),
        plugin,
        HOOK_TIMEOUT_MS,
        TURN_LIMIT,
        json!({}),
        &[],
    )
    .await;
    assert_turn_ok(&turn);
    assert!(!ran2.exists(), "{}", turn.describe());
    let results = turn.tool_results();
    assert!(
        results.len() == 1 && results[0].contains("401") && results[0].contains("fail closed"),
        "{results:?}"
    );
    assert_eq!(
        e.audit("decision").len(),
        before,
        "nothing is decided for a 401"
    );
    e.verify_audit();
}
