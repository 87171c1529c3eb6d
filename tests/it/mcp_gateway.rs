//! The MCP gateway against real peers: an upstream built with the official MCP Python SDK
//! (`MCPServer` over streamable HTTP), reached by the SDK's own `Client` through
//! `/mcp/{server}` in both protocol revisions, and a stdio server behind `clawgate mcp-stdio`.

use std::time::{Duration, Instant};

use crate::common::mcp::{Upstream, client, client_with_env, http_args, python, ran, script};
use crate::common::{Sidecar, audit_entries, start_with, write_bundle};
use serde_json::{Value, json};

const APPROVER_TOKEN: &str = "mcp-test-alice-token";
const ADMIN_TOKEN: &str = "mcp-test-admin";

/// drop_database is denied outright, deploy needs one of group:sre, everything else runs.
const POLICY: &str = r#"package clawgate

default decision := {"effect": "deny", "risk": "high", "reasons": ["not an MCP call"]}

decision := {"effect": "allow", "risk": "low", "reasons": ["ordinary MCP tool"]} if {
	input.action.kind == "mcp"
	not input.action.tool in {"drop_database", "deploy", "big", "slow"}
}

decision := {"effect": "deny", "risk": "critical", "reasons": ["dropping databases is never allowed"]} if {
	input.action.kind == "mcp"
	input.action.tool == "drop_database"
}

decision := {"effect": "require_approval", "risk": "high", "reasons": ["deploys need a person"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 120}} if {
	input.action.kind == "mcp"
	input.action.tool == "deploy"
}

decision := {"effect": "allow", "risk": "low", "reasons": ["quick"],
  "constraints": {"timeout_ms": 300}} if {
	input.action.kind == "mcp"
	input.action.tool == "slow"
}

decision := {"effect": "allow", "risk": "low", "reasons": ["small"],
  "constraints": {"max_response_bytes": 4096}} if {
	input.action.kind == "mcp"
	input.action.tool == "big"
}
"#;

async fn gateway(
    upstream: &Upstream,
    hold_s: u64,
    extra: impl FnOnce(&mut clawgate::config::Config),
) -> Sidecar {
    let url = upstream.url.clone();
    start_with(move |c, dir| {
        c.policy.dir = Some(write_bundle(&dir.join("policy"), &[("main.rego", POLICY)]));
        c.mcp.servers.insert(
            "demo".into(),
            clawgate::config::McpServerConfig {
                url,
                headers: Default::default(),
                bearer_token_env: None,
                timeout_ms: 10_000,
            },
        );
        c.approval.hold_s = hold_s;
        c.approval
            .groups
            .insert("sre".into(), vec!["U_ALICE".into()]);
        c.admin.token_sha256 = Some(clawgate::admin::auth::AdminToken::hash_hex(ADMIN_TOKEN));
        // The approver answers with a token of their own (the admin token answers only as
        // the local operator).
        let token_sha256 = clawgate::admin::auth::AdminToken::hash_hex(APPROVER_TOKEN);
        c.approvers.insert(
            "U_ALICE".into(),
            clawgate::admin::ApproverCredential {
                token_sha256,
                webhook_secret: None,
            },
        );
        extra(c);
    })
    .await
}

/// Approve the first pending approval as soon as it appears.
async fn approve_when_pending(s: &Sidecar) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Value = s
            .http
            .get(s.admin("/v1/approvals?status=pending"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = list["approvals"][0]["id"].as_str() {
            let answer = json!({"decision": "approve", "approver": "U_ALICE"});
            let (status, _) = s.answer_approval(APPROVER_TOKEN, id, &answer).await;
            assert_eq!(status, 200);
            return id.to_string();
        }
        assert!(Instant::now() < deadline, "no approval appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(mode: &str) {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 15, |_| {}).await;
    let url = s.agent("/mcp/demo");
    let call = |name: &str, args: Value| http_args(&url, mode, &["call", name, &args.to_string()]);

    // tools/list hides what policy denies outright.
    let listed = client(&http_args(&url, mode, &["list"])).await.unwrap();
    let tools: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"deploy"),
        "{tools:?}"
    );
    assert!(!tools.contains(&"drop_database"), "{tools:?}");

    // An allowed call runs and its result is recorded.
    let echo = client(&call("echo", json!({"text": format!("hello {mode}")})))
        .await
        .unwrap();
    assert_eq!(echo["isError"], false, "{echo}");
    assert_eq!(echo["text"], format!("hello {mode}"));

    // A denied call never reaches the upstream; the model reads the policy's reason.
    let denied = client(&call("drop_database", json!({"name": "prod"})))
        .await
        .unwrap();
    assert_eq!(denied["isError"], true, "{denied}");
    assert!(
        denied["text"]
            .as_str()
            .unwrap()
            .contains("dropping databases is never allowed")
    );
    if mode == "2026-07-28" {
        assert_eq!(denied["raw"]["resultType"], "complete", "{denied}");
    }

    // A held call is approved while it waits, then runs.
    let held = tokio::spawn(client(call("deploy", json!({"service": "api"}))));
    let approval = approve_when_pending(&s).await;
    let deployed = held.await.unwrap().unwrap();
    assert_eq!(deployed["isError"], false, "{deployed}");

    assert_eq!(upstream.ran(), ["echo", "deploy"]);
    let audit = s.running.audit();
    let decisions = audit_entries(audit, "decision");
    let kinds: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| {
            (
                d["action"]["tool"].as_str().unwrap(),
                d["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(kinds.contains(&("drop_database", "deny")), "{kinds:?}");
    assert!(kinds.contains(&("deploy", "allow")), "{kinds:?}");
    assert!(
        decisions
            .iter()
            .all(|d| d["action"]["kind"] == "mcp" && d["action"]["server"] == "demo")
    );
    let deploy_allow = decisions
        .iter()
        .find(|d| d["action"]["tool"] == "deploy" && d["decision"] == "allow")
        .unwrap();
    assert_eq!(deploy_allow["approval_id"], approval.as_str());
    // Result pointers for the calls that ran: status, size and hash of the forwarded body.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let results = audit_entries(audit, "result");
        if results.len() >= 2 {
            for r in &results {
                assert_eq!(r["status"], 200, "{r}");
                assert_eq!(r["ok"], true, "{r}");
                assert_eq!(r["result_sha256"].as_str().unwrap().len(), 64);
                assert!(r["size"].as_u64().unwrap() > 0);
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "results not recorded: {results:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sdk_client_through_the_gateway_session_revision() {
    scenario("legacy").await;
}

#[tokio::test]
async fn sdk_client_through_the_gateway_stateless_revision() {
    scenario("2026-07-28").await;
}

#[tokio::test]
async fn a_held_call_answers_with_the_approval_id_and_the_identical_retry_passes() {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 0, |_| {}).await;
    let url = s.agent("/mcp/demo");
    for mode in ["legacy", "2026-07-28"] {
        let args = http_args(
            &url,
            mode,
            &["call", "deploy", &json!({"service": mode}).to_string()],
        );
        let first = client(&args).await.unwrap();
        assert_eq!(first["isError"], true, "{first}");
        let text = first["text"].as_str().unwrap();
        assert!(
            text.contains("holding this call for approval") && text.contains("retry"),
            "{text}"
        );
        let id = approve_when_pending(&s).await;
        assert!(text.contains(&id), "{text} names {id}");
        let retry = client(&args).await.unwrap();
        assert_eq!(retry["isError"], false, "{retry}");
    }
    assert_eq!(upstream.ran(), ["deploy", "deploy"]);
}

#[tokio::test]
async fn upstream_credentials_come_from_clawgate_not_the_agent() {
    let upstream = Upstream::start(&["--require-bearer", "upstream-secret"]);
    let s = gateway(&upstream, 0, |c| {
        let server = c.mcp.servers.get_mut("demo").unwrap();
        server
            .headers
            .insert("Authorization".into(), "Bearer upstream-secret".into());
    })
    .await;
    let url = s.agent("/mcp/demo");
    // The agent sends its own (wrong) credential; clawgate replaces it.
    let mut args = http_args(
        &url,
        "legacy",
        &[
            "--header",
            "Authorization=Bearer agent-token",
            "call",
            "echo",
        ],
    );
    args.push(json!({"text": "with creds"}).to_string());
    let echo = client(&args).await.unwrap();
    assert_eq!(echo["text"], "with creds", "{echo}");
    // Straight to the upstream without clawgate's credential fails.
    assert!(
        client(&http_args(&upstream.url, "legacy", &["list"]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn verdict_size_limits_cut_off_large_results() {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 0, |_| {}).await;
    let url = s.agent("/mcp/demo");
    let small = client(&http_args(
        &url,
        "2026-07-28",
        &["call", "big", r#"{"kb": 1}"#],
    ))
    .await
    .unwrap();
    assert_eq!(small["isError"], false);
    let large = client(&http_args(
        &url,
        "2026-07-28",
        &["call", "big", r#"{"kb": 64}"#],
    ))
    .await;
    assert!(
        large.is_err() || large.as_ref().unwrap()["isError"] == true,
        "{large:?}"
    );
    let cut = failed_result(&s).await;
    assert!(
        cut["error"]
            .as_str()
            .unwrap()
            .contains("size limit of 4096"),
        "{cut}"
    );
}

#[tokio::test]
async fn verdict_time_limits_cut_off_slow_upstreams() {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 0, |_| {}).await;
    let url = s.agent("/mcp/demo");
    let quick = client(&http_args(
        &url,
        "2026-07-28",
        &["call", "slow", r#"{"ms": 10}"#],
    ))
    .await
    .unwrap();
    assert_eq!(quick["isError"], false, "{quick}");
    let slow = client(&http_args(
        &url,
        "2026-07-28",
        &["call", "slow", r#"{"ms": 3000}"#],
    ))
    .await;
    assert!(
        slow.is_err() || slow.as_ref().unwrap()["isError"] == true,
        "{slow:?}"
    );
    let cut = failed_result(&s).await;
    assert!(
        cut["error"]
            .as_str()
            .unwrap()
            .contains("time limit of 300 ms"),
        "{cut}"
    );
    // Measured by the sidecar (no client start-up in it): cut well before the 3 s call ends.
    let took = cut["duration_ms"]
        .as_u64()
        .expect("a result carries its duration");
    assert!(took < 2500, "the limit did not cut the call off: {cut}");
}

/// The first result pointer recorded as failed, waiting up to 5 s for it.
async fn failed_result(s: &Sidecar) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let results = audit_entries(s.running.audit(), "result");
        if let Some(cut) = results.into_iter().find(|r| r["ok"] == false) {
            return cut;
        }
        assert!(Instant::now() < deadline, "no failed result recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn raw_post(
    s: &Sidecar,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = s
        .http
        .post(s.agent(path))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn bad_input_gets_json_rpc_errors_and_reaches_no_upstream() {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 0, |c| c.limits.max_body_bytes = 4096).await;
    let (code, v) = raw_post(&s, "/mcp/demo", &[], "{\"jsonrpc\": \"2.0\", ").await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (400, Some(-32700)),
        "{v}"
    );
    let (code, v) = raw_post(
        &s,
        "/mcp/demo",
        &[],
        "[{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\"}]",
    )
    .await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{v}"
    );
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"{}\"}}}}}}",
        "x".repeat(8192)
    );
    let (code, _) = raw_post(&s, "/mcp/demo", &[], big).await;
    assert_eq!(code, 413);
    // The header says echo, the body says drop_database: refused before policy or upstream.
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "drop_database", "arguments": {"name": "prod"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    let (code, v) = raw_post(&s, "/mcp/demo", &headers, body.to_string()).await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "{v}"
    );
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let (code, v) = raw_post(&s, "/mcp/demo", &headers, body.to_string()).await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "{v}"
    );
    // Unknown server: a JSON-RPC error naming the configured ones.
    let (code, v) = raw_post(
        &s,
        "/mcp/nope",
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
    )
    .await;
    assert_eq!(code, 404);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("configured: demo"),
        "{v}"
    );
    assert!(upstream.ran().is_empty());
    assert!(audit_entries(s.running.audit(), "decision").is_empty());
}

#[tokio::test]
async fn stdio_server_behind_mcp_stdio() {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 5, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ran.log");
    let stdio = |sidecar: &str| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--stdio".into(),
            "--".into(),
            crate::common::BIN.into(),
            "mcp-stdio".into(),
            "--server".into(),
            "local".into(),
            "--sidecar".into(),
            sidecar.into(),
            "--hold".into(),
            "5".into(),
            "--".into(),
        ];
        v.push(python().display().to_string());
        v.push(script("stdio_server.py").display().to_string());
        v.push("--ran-log".into());
        v.push(log.display().to_string());
        v
    };
    let sidecar = s.agent("");
    let with = |base: Vec<String>, rest: &[&str]| {
        let mut v = base;
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let listed = client(&with(stdio(&sidecar), &["list"])).await.unwrap();
    let tools = listed["tools"].to_string();
    assert!(
        tools.contains("echo") && !tools.contains("drop_database"),
        "{tools}"
    );
    let echo = client(&with(
        stdio(&sidecar),
        &["call", "echo", r#"{"text": "over stdio"}"#],
    ))
    .await
    .unwrap();
    assert_eq!(echo["text"], "over stdio", "{echo}");
    let denied = client(&with(
        stdio(&sidecar),
        &["call", "drop_database", r#"{"name": "prod"}"#],
    ))
    .await
    .unwrap();
    assert_eq!(denied["isError"], true);
    assert!(denied["text"].as_str().unwrap().contains("never allowed"));
    let held = tokio::spawn(client(with(
        stdio(&sidecar),
        &["call", "deploy", r#"{"service": "web"}"#],
    )));
    approve_when_pending(&s).await;
    assert_eq!(held.await.unwrap().unwrap()["isError"], false);
    let decisions = audit_entries(s.running.audit(), "decision");
    assert!(
        decisions
            .iter()
            .any(|d| d["action"]["server"] == "local" && d["action"]["tool"] == "drop_database")
    );
    // The sidecar is gone: nothing runs unchecked.
    let dead = format!("http://127.0.0.1:{}", crate::common::free_port());
    let refused = client(&with(
        stdio(&dead),
        &["call", "echo", r#"{"text": "unchecked"}"#],
    ))
    .await
    .unwrap();
    assert_eq!(refused["isError"], true);
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("could not check"),
        "{refused}"
    );
    assert_eq!(ran(&log), ["echo", "deploy"]);
}

#[tokio::test]
async fn openclaw_mcp_probe_reaches_the_server_through_the_gateway() {
    let oc = crate::common::openclaw::openclaw();
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("openclaw.json");
    let oc_config = json!({"mcp": {"servers": {"demo": {
        "url": s.agent("/mcp/demo"), "transport": "streamable-http",
        "headers": {"X-Clawgate-Agent": "main"}}}}});
    std::fs::write(&config, oc_config.to_string()).unwrap();
    let (code, out, err) = oc
        .run(&config, dir.path(), &["mcp", "probe", "demo", "--json"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let start = out.find('{').expect("JSON on stdout");
    let report: Value =
        serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"));
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"demo__echo") && tools.contains(&"demo__deploy"),
        "{tools:?}"
    );
    // OpenClaw's own client sees the filtered list: policy denies drop_database outright.
    assert!(!tools.contains(&"demo__drop_database"), "{tools:?}");
}

const AGENT_TOKEN: &str = "9d1c7e0b52a84f36a1e2c3d4b5a69788";

fn identity(c: &mut clawgate::config::Config) {
    c.identities.insert(
        "openclaw-main".into(),
        clawgate::identity::IdentityConfig {
            token_sha256: Some(clawgate::token::TokenHash::hex_of(AGENT_TOKEN)),
            ..Default::default()
        },
    );
}

#[tokio::test]
async fn mcp_stdio_authenticates_with_a_token_from_a_file_or_the_environment() {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 0, identity).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ran.log");
    let token_file = dir.path().join("agent.token");
    std::fs::write(&token_file, format!("{AGENT_TOKEN}\n")).unwrap();
    let sidecar = s.agent("");
    let stdio = |credential: &[&str], rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--stdio",
            "--",
            crate::common::BIN,
            "mcp-stdio",
            "--server",
            "local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(["--sidecar".into(), sidecar.clone()]);
        v.extend(credential.iter().map(|s| s.to_string()));
        v.push("--".into());
        v.push(python().display().to_string());
        v.push(script("stdio_server.py").display().to_string());
        v.push("--ran-log".into());
        v.push(log.display().to_string());
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    let call = ["call", "echo", r#"{"text": "authenticated"}"#];
    let file = ["--token-file", token_file.to_str().unwrap()];

    // --token-file: tools/list (visible-tools) and tools/call (/v1/check) both authenticate.
    let listed = client(&stdio(&file, &["list"])).await.unwrap();
    assert!(listed["tools"].to_string().contains("echo"), "{listed}");
    let echo = client(&stdio(&file, &call)).await.unwrap();
    assert_eq!(echo["text"], "authenticated", "{echo}");
    // --token-env VAR, and CLAWGATE_AGENT_TOKEN when no option names the token.
    let by_env = client_with_env(
        &stdio(&["--token-env", "MY_AGENT_TOKEN"], &call),
        &[("MY_AGENT_TOKEN", AGENT_TOKEN)],
    )
    .await
    .unwrap();
    assert_eq!(by_env["text"], "authenticated", "{by_env}");
    let by_default = client_with_env(&stdio(&[], &call), &[("CLAWGATE_AGENT_TOKEN", AGENT_TOKEN)])
        .await
        .unwrap();
    assert_eq!(by_default["text"], "authenticated", "{by_default}");

    // No token: the sidecar answers 401 and the relay refuses the call, saying why.
    let refused = client(&stdio(&[], &call)).await.unwrap();
    assert_eq!(refused["isError"], true, "{refused}");
    let text = refused["text"].as_str().unwrap();
    assert!(
        text.contains("could not check") && text.contains("401") && text.contains("Authorization"),
        "{text}"
    );
    // A wrong token, the same.
    let wrong = client_with_env(&stdio(&[], &call), &[("CLAWGATE_AGENT_TOKEN", "nope")])
        .await
        .unwrap();
    assert_eq!(wrong["isError"], true, "{wrong}");
    // --token-env naming an unset variable stops the relay before it starts the server.
    assert!(
        client(&stdio(&["--token-env", "UNSET_AGENT_TOKEN_VAR"], &call))
            .await
            .is_err()
    );
    assert_eq!(ran(&log), ["echo", "echo", "echo"]);
    let decisions = audit_entries(s.running.audit(), "decision");
    assert_eq!(decisions.len(), 3, "{decisions:#?}");
    assert!(
        decisions
            .iter()
            .all(|d| d["agent"]["authenticated_as"] == "openclaw-main"
                && d["action"]["server"] == "local"),
        "{decisions:#?}"
    );
}

#[tokio::test]
async fn openclaw_reaches_the_gateway_as_an_identity_and_the_token_stays_with_clawgate() {
    let oc = crate::common::openclaw::openclaw();
    let dir = tempfile::tempdir().unwrap();
    let request_log = dir.path().join("requests.jsonl");
    let upstream = Upstream::start(&["--request-log", request_log.to_str().unwrap()]);
    let s = gateway(&upstream, 0, identity).await;

    // The MCP part of `clawgate openclaw-config` for this configuration, with the
    // ${CLAWGATE_AGENT_TOKEN} placeholder that OpenClaw fills in from its environment.
    let toml = dir.path().join("clawgate.toml");
    std::fs::write(
        &toml,
        format!(
            "[listeners.agent]\naddr = \"{}\"\n[mcp.servers.demo]\nurl = \"{}\"\n\
             [identities.openclaw-main]\ntoken_sha256 = \"{}\"\n",
            s.running.agent_addr,
            upstream.url,
            clawgate::token::TokenHash::hex_of(AGENT_TOKEN)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::common::BIN)
        .args(["openclaw-config", "--identity", "openclaw-main", "--config"])
        .arg(&toml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fragment: Value = serde_json::from_slice(&out.stdout).unwrap();
    let demo = &fragment["mcp"]["servers"]["demo"];
    assert_eq!(
        demo["headers"]["Authorization"],
        "Bearer ${CLAWGATE_AGENT_TOKEN}"
    );
    let config = dir.path().join("openclaw.json");
    std::fs::write(&config, json!({"mcp": fragment["mcp"]}).to_string()).unwrap();

    let probe = ["mcp", "probe", "demo", "--json"];
    let home = dir.path().join("home");
    let (code, out, err) = oc
        .run_with_env(
            &config,
            &home,
            &probe,
            &[("CLAWGATE_AGENT_TOKEN", AGENT_TOKEN)],
        )
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("demo__echo"), "{out}\n{err}");
    // Without the token in OpenClaw's environment, clawgate refuses the connection.
    let home2 = dir.path().join("home2");
    let (code, out, err) = oc.run(&config, &home2, &probe).await;
    assert!(
        code != 0 || !out.contains("demo__echo"),
        "listed without a token\n{out}\n{err}"
    );

    // The upstream saw clawgate's requests, never the agent's token.
    let log = std::fs::read_to_string(&request_log).unwrap();
    assert!(!log.is_empty());
    assert!(!log.contains(AGENT_TOKEN), "{log}");
    assert!(
        !log.to_ascii_lowercase().contains("\"authorization\""),
        "{log}"
    );
    // Listing tools decides nothing: the identity shows in which probe was served (the one
    // with the token) and which was refused (the one without), above.
    let decisions = audit_entries(s.running.audit(), "decision");
    assert!(decisions.is_empty(), "{decisions:#?}");
}

#[tokio::test]
async fn bearer_token_env_is_the_upstream_credential_and_must_be_set() {
    const VAR: &str = "CLAWGATE_TEST_DEMO_MCP_TOKEN";
    let upstream = Upstream::start(&["--require-bearer", "upstream-secret"]);
    let mut sc = crate::common::BinarySidecar::configure(&format!(
        "[mcp.servers.demo]\nurl = \"{}\"\nbearer_token_env = \"{VAR}\"\n",
        upstream.url
    ));
    // Unset, the sidecar refuses to start and names the variable.
    let out = std::process::Command::new(crate::common::BIN)
        .args(["serve", "--config"])
        .arg(&sc.config)
        .env_remove(VAR)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bearer_token_env") && err.contains(VAR),
        "{err}"
    );
    // Set, clawgate authenticates to the upstream with it (which refuses anyone else).
    sc.start_with_env(&[(VAR, "upstream-secret")]).await;
    let listed = client(&http_args(&sc.agent_url("/mcp/demo"), "legacy", &["list"])).await;
    assert!(listed.is_ok(), "{listed:?}");
    // With another token in the variable the upstream refuses clawgate too: the credential is
    // what the variable holds.
    let mut wrong = crate::common::BinarySidecar::configure(&format!(
        "[mcp.servers.demo]\nurl = \"{}\"\nbearer_token_env = \"{VAR}\"\n",
        upstream.url
    ));
    wrong.start_with_env(&[(VAR, "not-the-secret")]).await;
    let refused = client(&http_args(
        &wrong.agent_url("/mcp/demo"),
        "legacy",
        &["list"],
    ))
    .await;
    assert!(refused.is_err(), "{refused:?}");
}

/// Headers and `_meta` of a 2026-07-28 (stateless) `tools/call` of `tool`, so one raw POST
/// is a whole exchange with the SDK upstream.
fn stateless_call(tool: &str) -> ([(&'static str, String); 3], Value) {
    let headers = [
        ("mcp-protocol-version", "2026-07-28".to_string()),
        ("mcp-method", "tools/call".to_string()),
        ("mcp-name", tool.to_string()),
    ];
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    (headers, meta)
}

#[tokio::test]
async fn every_tools_call_is_gated_and_forwarded_as_judged() {
    // Issue 15, finding 4: a tools/call without an id (a notification) was forwarded without a
    // decision, and the upstream got the bytes the agent sent rather than the message judged.
    let dir = tempfile::tempdir().unwrap();
    let request_log = dir.path().join("requests.jsonl");
    let upstream = Upstream::start(&["--request-log", request_log.to_str().unwrap()]);
    let s = gateway(&upstream, 0, |_| {}).await;
    let requests = || {
        std::fs::read_to_string(&request_log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let post = |tool: &str, body: String| {
        let (headers, _) = stateless_call(tool);
        let s = &s;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw_post(s, "/mcp/demo", &headers, body).await
        }
    };
    let (_, meta) = stateless_call("drop_database");

    // A tools/call notification: refused, never sent, whatever the tool.
    let notification = json!({"jsonrpc": "2.0", "method": "tools/call",
        "params": {"name": "drop_database", "arguments": {"name": "prod"}, "_meta": meta}});
    let (code, v) = post("drop_database", notification.to_string()).await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without an id"),
        "{v}"
    );

    // Repeated keys, even spelt with escapes, could be read as two different calls: refused.
    let twice = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"drop_database","arguments":{{"name":"prod"}},"_meta":{meta},"na\u006de":"echo"}}}}"#
    );
    let (code, v) = post("echo", twice).await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("\"name\""),
        "{v}"
    );
    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"a","text":"b"}},"_meta":{meta}}}}}"#
    );
    let (code, v) = post("echo", nested).await;
    assert_eq!(
        (code, v["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{v}"
    );
    assert_eq!(requests(), 0, "nothing refused reached the upstream");
    assert!(upstream.ran().is_empty());
    assert!(audit_entries(s.running.audit(), "decision").is_empty());

    // The same call written plainly goes through, decided once, as the bytes clawgate wrote.
    let (_, meta) = stateless_call("echo");
    let plain = format!(
        "{{ \"jsonrpc\" : \"2.0\", \"id\" : 9, \"method\" : \"tools/call\",\n \"params\" : {{\"name\" : \"ec\\u0068o\", \"arguments\" : {{\"text\" : \"judged\"}}, \"_meta\" : {meta}}} }}"
    );
    let (code, v) = post("echo", plain).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(upstream.ran(), ["echo"]);
    assert_eq!(requests(), 1);
    let decisions = audit_entries(s.running.audit(), "decision");
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0]["action"]["tool"], "echo");
}

/// `clawgate mcp-stdio` around the SDK's stdio server, driven line by line: write a line,
/// read what comes back.
struct StdioRelay {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl StdioRelay {
    fn start(sidecar: &str, ran_log: &std::path::Path) -> StdioRelay {
        let mut child = tokio::process::Command::new(crate::common::BIN)
            .args(["mcp-stdio", "--server", "local", "--sidecar", sidecar, "--"])
            .arg(python())
            .arg(script("stdio_server.py"))
            .arg("--ran-log")
            .arg(ran_log)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().unwrap(),
        ));
        StdioRelay {
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .expect("an answer within 60 s")
            .unwrap()
            .expect("the relay is still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

#[tokio::test]
async fn mcp_stdio_refuses_batches_notifications_and_repeated_keys() {
    let upstream = Upstream::start(&[]);
    let s = gateway(&upstream, 0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ran.log");
    let mut relay = StdioRelay::start(&s.agent(""), &log);
    relay
        .send(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#)
        .await;
    let init = relay.next().await;
    assert_eq!(init["id"], 0, "{init}");
    relay
        .send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;

    let drop = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"drop_database","arguments":{"name":"prod"}}}"#;
    for line in [
        // A batch around a call policy denies.
        format!("[{drop}]"),
        // The same call as a notification.
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"drop_database","arguments":{"name":"prod"}}}"#.to_string(),
        // Two names for one call.
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_database","arguments":{"name":"prod"},"name":"echo"}}"#.to_string(),
        // Not JSON-RPC 2.0.
        r#"{"id":3,"method":"tools/call","params":{"name":"drop_database","arguments":{"name":"prod"}}}"#.to_string(),
    ] {
        relay.send(&line).await;
        let answer = relay.next().await;
        assert_eq!(answer["error"]["code"], -32600, "{line}: {answer}");
    }
    // The relay still works: an allowed call runs, written with escapes and spaces.
    relay
        .send(r#"{ "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "ec\u0068o", "arguments": {"text": "judged"}} }"#)
        .await;
    let echo = relay.next().await;
    assert_eq!(echo["id"], 4, "{echo}");
    assert_eq!(echo["result"]["isError"], false, "{echo}");
    drop_relay(relay).await;
    assert_eq!(ran(&log), ["echo"]);
    let decisions = audit_entries(s.running.audit(), "decision");
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0]["action"]["tool"], "echo");
}

/// Close the relay's stdin and wait for it (and its server) to exit.
async fn drop_relay(relay: StdioRelay) {
    let StdioRelay {
        mut child, stdin, ..
    } = relay;
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}
