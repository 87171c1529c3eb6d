//! Agent identities over real loopback HTTP: who may ask, what they are scoped to, and that
//! policy and audit see who asked. Also the admin operations (mode, policy reload) through
//! the API and the CLI.

use crate::common::{
    BIN, Sidecar, TOY_POLICY, audit_entries, check_body, start_with, write_bundle,
};
use clawgate::config::Config;
use clawgate::identity::{IdentityConfig, Scopes};
use clawgate::token::TokenHash;
use serde_json::{Value, json};

const CI_TOKEN: &str = "ci-agent-token";
const STAGING_TOKEN: &str = "staging-agent-token";

fn identities(c: &mut Config) {
    c.identities.insert(
        "ci".into(),
        IdentityConfig {
            token_sha256: Some(TokenHash::hex_of(CI_TOKEN)),
            cert_subject: None,
            uid: None,
            scopes: Scopes {
                tool_groups: Some(vec!["fs".into(), "other".into()]),
                mcp_servers: Some(vec!["github".into()]),
                egress_hosts: None,
                environments: Some(vec!["production".into()]),
            },
            home: None,
        },
    );
    c.identities.insert(
        "staging-bot".into(),
        IdentityConfig {
            token_sha256: Some(TokenHash::hex_of(STAGING_TOKEN)),
            scopes: Scopes {
                environments: Some(vec!["staging".into()]),
                ..Scopes::default()
            },
            ..IdentityConfig::default()
        },
    );
}

async fn check_as(s: &Sidecar, token: Option<&str>, body: &Value) -> (u16, Value, Option<String>) {
    let mut req = s.http.post(s.agent("/v1/check")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, resp.json().await.unwrap(), challenge)
}

#[tokio::test]
async fn unauthenticated_and_wrong_tokens_are_refused_before_anything_is_decided() {
    let s = start_with(|c, _| identities(c)).await;
    let body = check_body("read", json!({"path": "README.md"}));
    let (code, answer, challenge) = check_as(&s, None, &body).await;
    assert_eq!(code, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "unauthorized");
    assert!(challenge.unwrap().starts_with("Bearer"));
    let (code, _, _) = check_as(&s, Some("not-a-token"), &body).await;
    assert_eq!(code, 401);
    // Every agent route is behind the same door.
    for path in ["/v1/results", "/v1/mcp/visible-tools", "/mcp/github"] {
        let resp = s
            .http
            .post(s.agent(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
    let resp = s
        .http
        .get(s.agent("/v1/approvals/x/wait"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(audit_entries(s.running.audit(), "decision").is_empty());
}

#[tokio::test]
async fn a_valid_token_is_the_authenticated_identity_in_the_audit_log() {
    let s = start_with(|c, _| identities(c)).await;
    let mut body = check_body("read", json!({"path": "README.md"}));
    let (code, answer, _) = check_as(&s, Some(CI_TOKEN), &body).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["decision"], "allow", "{answer}");
    let decisions = audit_entries(s.running.audit(), "decision");
    assert_eq!(decisions.len(), 1);
    assert_eq!(
        decisions[0]["agent"]["authenticated_as"], "ci",
        "{}",
        decisions[0]
    );

    // The body cannot claim an identity.
    body["agent"]["authenticated_as"] = json!("staging-bot");
    let (code, _, _) = check_as(&s, Some(CI_TOKEN), &body).await;
    assert_eq!(code, 400);

    // Results are attributed too.
    let resp = s
        .http
        .post(s.agent("/v1/results"))
        .bearer_auth(CI_TOKEN)
        .json(&json!({"decision_id": answer["id"], "ok": true, "duration_ms": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let results = audit_entries(s.running.audit(), "result");
    assert_eq!(results[0]["authenticated_as"], "ci");
}

#[tokio::test]
async fn out_of_scope_actions_are_denied_naming_the_scope_and_audited() {
    let s = start_with(|c, _| identities(c)).await;
    // exec is in tool group "runtime"; ci may only use "fs".
    let (_, exec, _) = check_as(
        &s,
        Some(CI_TOKEN),
        &check_body("exec", json!({"command": "ls"})),
    )
    .await;
    assert_eq!(exec["decision"], "deny", "{exec}");
    let reason = exec["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("tool group \"runtime\"") && reason.contains("ci"),
        "{reason}"
    );

    // A tool outside the catalog is in group "unknown".
    let (_, unknown, _) = check_as(&s, Some(CI_TOKEN), &check_body("frobnicate", json!({}))).await;
    assert!(
        unknown["reasons"][0]
            .as_str()
            .unwrap()
            .contains("\"unknown\""),
        "{unknown}"
    );

    // A dispatcher needs the scope of the tool it runs: tool_call is in "other", exec is
    // not in ci's groups, read is.
    let (_, dispatched, _) = check_as(
        &s,
        Some(CI_TOKEN),
        &check_body(
            "tool_call",
            json!({"name": "exec", "arguments": {"command": "ls"}}),
        ),
    )
    .await;
    assert_eq!(dispatched["decision"], "deny", "{dispatched}");
    assert!(
        dispatched["reasons"][0]
            .as_str()
            .unwrap()
            .contains("tool group \"runtime\" (tool \"exec\""),
        "{dispatched}"
    );
    let (_, read, _) = check_as(
        &s,
        Some(CI_TOKEN),
        &check_body(
            "tool_call",
            json!({"name": "read", "arguments": {"path": "README.md"}}),
        ),
    )
    .await;
    assert_eq!(read["decision"], "allow", "{read}");

    let mut mcp = check_body("create_issue", json!({"title": "x"}));
    mcp["kind"] = json!("mcp");
    mcp["server"] = json!("jira");
    let (_, mcp, _) = check_as(&s, Some(CI_TOKEN), &mcp).await;
    assert_eq!(mcp["decision"], "deny");
    assert!(
        mcp["reasons"][0]
            .as_str()
            .unwrap()
            .contains("MCP server \"jira\""),
        "{mcp}"
    );

    let (_, env, _) = check_as(
        &s,
        Some(STAGING_TOKEN),
        &check_body("read", json!({"path": "README.md"})),
    )
    .await;
    assert_eq!(env["decision"], "deny");
    assert!(
        env["reasons"][0]
            .as_str()
            .unwrap()
            .contains("environment \"production\""),
        "{env}"
    );

    let denied: Vec<Value> = audit_entries(s.running.audit(), "decision")
        .into_iter()
        .filter(|e| e["decision"] == "deny")
        .collect();
    assert_eq!(denied.len(), 5);
    assert_eq!(denied[4]["agent"]["authenticated_as"], "staging-bot");
}

#[tokio::test]
async fn policy_sees_the_identity_and_its_scopes() {
    let policy = r#"package clawgate
decision := {"effect": "allow", "risk": "low",
  "reasons": [sprintf("%s may use %v", [input.agent.authenticated_as, input.agent.scopes.tool_groups])]}
"#;
    let s = start_with(|c, dir| {
        identities(c);
        let data = r#"{"clawgate": {"tools": {"read": {"group": "fs"}}}}"#;
        c.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", policy), ("data.json", data)],
        ));
    })
    .await;
    let (_, answer, _) = check_as(
        &s,
        Some(CI_TOKEN),
        &check_body("read", json!({"path": "a"})),
    )
    .await;
    assert_eq!(
        answer["reasons"][0], "ci may use [\"fs\", \"other\"]",
        "{answer}"
    );
}

#[tokio::test]
async fn without_identities_loopback_is_served() {
    let s = start_with(|_, _| {}).await;
    let (code, answer, _) = check_as(&s, None, &check_body("read", json!({"path": "a"}))).await;
    assert_eq!(code, 200, "{answer}");
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token() {
    let s = start_with(|_, _| {}).await;
    for path in ["/v1/status", "/v1/audit/export"] {
        let resp = s.http.get(s.admin(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        let resp = s
            .http
            .get(s.admin(path))
            .bearer_auth(s.admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    for path in ["/healthz", "/readyz", "/v1/audit/pubkey"] {
        let resp = s.http.get(s.admin(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    for path in ["/v1/mode", "/v1/policy/reload"] {
        let resp = s
            .http
            .post(s.admin(path))
            .json(&json!({"mode": "shadow"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
}

async fn cli(args: &[&str]) -> (i32, String) {
    crate::common::output_text(tokio::process::Command::new(BIN).args(args)).await
}

#[tokio::test]
async fn mode_and_policy_reload_through_the_api_and_the_cli_are_audited() {
    let s = start_with(|c, dir| {
        c.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", TOY_POLICY)],
        ));
        c.policy.watch = false;
    })
    .await;
    let token = s.admin_token();
    let (_, denied) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(denied["decision"], "deny");

    // API: shadow lets the denied call through, marked would_deny.
    let resp = s
        .http
        .post(s.admin("/v1/mode"))
        .bearer_auth(&token)
        .json(&json!({"mode": "shadow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, shadowed) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(shadowed["decision"], "allow");
    assert_eq!(shadowed["shadow"], "would_deny");

    // CLI: back to enforce.
    let url = s.admin("");
    let token_file = s.running.config.admin_token_path();
    let token_file = token_file.to_str().unwrap();
    let (code, out) = cli(&[
        "mode",
        "set",
        "enforce",
        "--url",
        &url,
        "--token-file",
        token_file,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("mode: enforce (was shadow"), "{out}");
    let (_, denied) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(denied["decision"], "deny");
    let (code, out) = cli(&["mode", "set", "shadow", "--url", &url, "--token", "wrong"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("401"), "{out}");

    // Reload: the toy policy now allows exec.
    let policy_dir = s.dir.path().join("policy");
    std::fs::write(
        policy_dir.join("main.rego"),
        format!("{TOY_POLICY}\ndecision := {{\"effect\": \"allow\", \"risk\": \"low\", \"reasons\": [\"exec ok\"]}} if input.action.tool == \"exec\"\n"),
    )
    .unwrap();
    let (code, out) = cli(&[
        "policy",
        "reload",
        "--url",
        &url,
        "--token-file",
        token_file,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("policy reloaded"), "{out}");
    let (_, allowed) = s.check("exec", json!({"command": "ls"})).await;
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    // Through the API: nothing changed since.
    let answer: Value = s
        .http
        .post(s.admin("/v1/policy/reload"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["outcome"], "unchanged", "{answer}");
    // A broken bundle is refused and the serving one stays.
    std::fs::write(
        policy_dir.join("main.rego"),
        "package clawgate\ndecision := {",
    )
    .unwrap();
    let resp = s
        .http
        .post(s.admin("/v1/policy/reload"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);

    let audit = s.running.audit();
    let modes: Vec<(Value, Value)> = audit_entries(audit, "mode")
        .iter()
        .map(|e| (e["from"].clone(), e["to"].clone()))
        .collect();
    assert_eq!(
        modes,
        vec![
            (json!("enforce"), json!("shadow")),
            (json!("shadow"), json!("enforce"))
        ]
    );
    let reloads: Vec<Value> = audit_entries(audit, "policy")
        .iter()
        .filter(|e| e["trigger"] == "admin")
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(
        reloads,
        vec![json!("reloaded"), json!("unchanged"), json!("rejected")]
    );
}

const OPS_TOKEN: &str = "ops-agent-token";

#[tokio::test]
async fn only_the_identity_an_approval_is_bound_to_may_wait_on_it() {
    let s = start_with(|c, dir| {
        identities(c);
        // Unscoped: the toy bundle has no tool groups for scopes to name.
        c.identities.insert(
            "ops".into(),
            IdentityConfig {
                token_sha256: Some(TokenHash::hex_of(OPS_TOKEN)),
                ..IdentityConfig::default()
            },
        );
        c.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", TOY_POLICY)],
        ));
    })
    .await;
    let body = check_body("write", json!({"path": "a"}));
    let (code, held, _) = check_as(&s, Some(OPS_TOKEN), &body).await;
    assert_eq!(
        (code, held["decision"].as_str()),
        (200, Some("pending")),
        "{held}"
    );
    let wait = s.agent(&format!("{}?timeout=0", held["wait_url"].as_str().unwrap()));
    let wait_as = |token: &'static str| {
        let req = s.http.get(&wait).bearer_auth(token);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    // Another identity learns nothing, not even that the approval exists.
    let (code, answer) = wait_as(STAGING_TOKEN).await;
    assert_eq!(code, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "approval_not_found");
    // The identity it is bound to reads its state.
    let (code, answer) = wait_as(OPS_TOKEN).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "pending", "{answer}");
}
