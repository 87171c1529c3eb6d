//! POST /v1/check over real loopback HTTP: decisions, fail-closed evaluation, shadow mode
//! and bad input.

use crate::common::{TOY_POLICY, check_body, start_with, write_bundle};
use clawgate::gate::Mode;
use serde_json::json;

async fn toy(mode: Mode) -> crate::common::Sidecar {
    start_with(|c, dir| {
        c.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", TOY_POLICY)],
        ));
        c.mode = mode;
    })
    .await
}

#[tokio::test]
async fn allow_deny_and_approval_verdicts_are_answered() {
    let s = toy(Mode::Enforce).await;
    let revision = s.status().await["policy"]["revision"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(revision.len(), 64);

    let (code, allow) = s.check("read", json!({"path": "README.md"})).await;
    assert_eq!(code, 200);
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["risk"], "low");
    assert_eq!(allow["reasons"], json!(["read is safe"]));
    assert_eq!(allow["policy_revision"], revision.as_str());
    assert_eq!(allow["action_hash"].as_str().unwrap().len(), 64);

    let (_, deny) = s.check("exec", json!({"command": "rm -rf /"})).await;
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["reasons"], json!(["unknown tool"]));

    // require_approval is held: pending, with the approval to wait for.
    let (_, held) = s.check("write", json!({"path": "a"})).await;
    assert_eq!(held["decision"], "pending");
    assert_eq!(held["effect"], "require_approval");
    assert_eq!(held["risk"], "medium");
    let reasons = held["reasons"].as_array().unwrap();
    assert_eq!(reasons[0], "writes need a person");
    let approval_id = held["approval_id"].as_str().unwrap();
    assert!(reasons[1].as_str().unwrap().contains(approval_id));
    assert_eq!(
        held["wait_url"],
        format!("/v1/approvals/{approval_id}/wait").as_str()
    );
    assert_eq!(held["approval"]["approvers"], json!(["group:sre"]));

    // Decision ids are unique.
    let (_, again) = s.check("read", json!({"path": "README.md"})).await;
    assert_ne!(again["id"], allow["id"]);
    assert_eq!(again["action_hash"], allow["action_hash"]);
}

#[tokio::test]
async fn shadow_mode_lets_everything_through_and_says_what_would_have_happened() {
    let s = toy(Mode::Shadow).await;
    let (_, deny) = s.check("exec", json!({"command": "rm -rf /"})).await;
    assert_eq!(deny["decision"], "allow");
    assert_eq!(deny["shadow"], "would_deny");
    assert_eq!(deny["effect"], "deny");
    assert_eq!(deny["mode"], "shadow");
    let (_, held) = s.check("write", json!({})).await;
    assert_eq!(held["decision"], "allow");
    assert_eq!(held["shadow"], "would_require_approval");
    let (_, allow) = s.check("read", json!({})).await;
    assert_eq!(allow["decision"], "allow");
    assert!(allow.get("shadow").is_none());
}

async fn deny_reason_for(policy: &str, budget_ms: u64) -> serde_json::Value {
    let policy = policy.to_string();
    let s = start_with(move |c, dir| {
        c.policy.dir = Some(write_bundle(&dir.join("policy"), &[("main.rego", &policy)]));
        c.policy.eval_timeout_ms = budget_ms;
    })
    .await;
    let (code, body) = s.check("read", json!({"n": 4000})).await;
    assert_eq!(code, 200);
    assert_eq!(body["decision"], "deny", "{body}");
    body
}

#[tokio::test]
async fn undefined_decision_denies() {
    let body = deny_reason_for(
        "package clawgate\ndecision := {\"effect\": \"allow\", \"risk\": \"low\"} if input.never\n",
        50,
    )
    .await;
    assert!(
        body["reasons"][0].as_str().unwrap().contains("undefined"),
        "{body}"
    );
}

#[tokio::test]
async fn malformed_decision_denies() {
    let body = deny_reason_for(
        "package clawgate\ndecision := {\"effect\": \"maybe\", \"risk\": \"low\"}\n",
        50,
    )
    .await;
    assert!(
        body["reasons"][0].as_str().unwrap().contains("malformed"),
        "{body}"
    );
}

#[tokio::test]
async fn evaluation_error_denies() {
    let body = deny_reason_for(
        "package clawgate\ndecision := {\"effect\": \"allow\", \"risk\": \"low\", \"reasons\": [x]} if { x := to_number(input.action.tool) }\n",
        50,
    )
    .await;
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("evaluation failed") || reason.contains("undefined"),
        "{body}"
    );
}

#[tokio::test]
async fn evaluation_over_budget_denies() {
    let body = deny_reason_for(
        "package clawgate\nn := count([1 | some a in numbers.range(1, input.action.params.n); some b in numbers.range(1, input.action.params.n)])\n\
         decision := {\"effect\": \"allow\", \"risk\": \"low\", \"reasons\": [sprintf(\"%d\", [n])]}\n",
        10,
    )
    .await;
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("time budget of 10 ms"),
        "{body}"
    );
}

/// Evaluations run on the policy threads, so evaluations that take their whole budget do not
/// hold the async workers: the admin listener answers while every one of them still runs.
/// (Two workers, like the reference machine; evaluated on them, the slow checks would take
/// both and nothing else would be answered until one ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_evaluations_do_not_stall_other_requests() {
    let policy = "package clawgate\nn := count([1 | some a in numbers.range(1, input.action.params.n); some b in numbers.range(1, input.action.params.n)])\n\
         decision := {\"effect\": \"allow\", \"risk\": \"low\", \"reasons\": [sprintf(\"%d\", [n])]}\n";
    let s = start_with(move |c, dir| {
        c.policy.dir = Some(write_bundle(&dir.join("policy"), &[("main.rego", policy)]));
        c.policy.eval_timeout_ms = 1500;
        c.policy.decision_cache_entries = 0;
    })
    .await;
    let s = std::sync::Arc::new(s);
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..4 {
        let s = s.clone();
        slow.spawn(async move {
            let (_, body) = s.check("read", json!({"n": 100_000 + i})).await;
            (std::time::Instant::now(), body)
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let health = s.http.get(s.admin("/healthz")).send().await.unwrap();
    let answered = std::time::Instant::now();
    assert_eq!(health.status(), 200);
    let mut first_slow_end = None;
    while let Some(done) = slow.join_next().await {
        let (ended, body) = done.unwrap();
        assert_eq!(body["decision"], "deny", "{body}");
        assert!(
            body["reasons"][0].as_str().unwrap().contains("time budget"),
            "{body}"
        );
        first_slow_end = Some(first_slow_end.map_or(ended, |e: std::time::Instant| e.min(ended)));
    }
    assert!(
        answered < first_slow_end.unwrap(),
        "the admin listener waited for a slow evaluation to end"
    );
}

#[tokio::test]
async fn bad_input_gets_a_json_error_with_a_stable_code() {
    let s = toy(Mode::Enforce).await;
    let url = s.agent("/v1/check");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            s.http
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"tool\": "),
            400,
            "malformed_json",
        ),
        (
            s.http
                .post(&url)
                .header("content-type", "application/json")
                .body("{} trailing"),
            400,
            "malformed_json",
        ),
        (
            s.http.post(&url).json(&json!({"params": {}})),
            400,
            "invalid_request",
        ),
        (
            s.http
                .post(&url)
                .json(&json!({"tool": "read", "agent": {}})),
            400,
            "invalid_request",
        ),
        (
            s.http
                .post(&url)
                .json(&json!({"tool": 5, "agent": {"id": "main"}})),
            400,
            "invalid_request",
        ),
        (
            s.http
                .post(&url)
                .json(&json!({"tool": "read", "agent": {"id": "m"}, "extra": 1})),
            400,
            "invalid_request",
        ),
        (
            s.http
                .post(&url)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (s.http.post(&url).body("{}"), 415, "unsupported_media_type"),
        (
            s.http
                .post(&url)
                .header("content-type", "application/json")
                .body(format!("{{\"tool\": \"{}\"}}", "a".repeat(2 * 1024 * 1024))),
            413,
            "body_too_large",
        ),
        (s.http.get(&url), 405, "method_not_allowed"),
        (s.http.post(s.agent("/v1/nope")), 404, "not_found"),
        (s.http.get(s.admin("/v1/check")), 404, "not_found"),
    ];
    for (req, status, code) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "expected {code}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/json"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // The sidecar is unharmed and still decides.
    let (code, body) = s.check("read", json!({})).await;
    assert_eq!((code, body["decision"].as_str()), (200, Some("allow")));
}

#[tokio::test]
async fn missing_field_errors_name_the_field() {
    let s = toy(Mode::Enforce).await;
    let (code, body) = s.check_body(&json!({"tool": "read", "agent": {}})).await;
    assert_eq!(code, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent.id"),
        "{body}"
    );
    let (_, body) = s.check_body(&json!({"agent": {"id": "main"}})).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`tool`"),
        "{body}"
    );
}

#[tokio::test]
async fn many_concurrent_checks_share_one_compiled_bundle() {
    let s = toy(Mode::Enforce).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let http = s.http.clone();
        let url = s.agent("/v1/check");
        let tool = if i % 2 == 0 { "read" } else { "exec" };
        tasks.spawn(async move {
            let body: serde_json::Value =
                crate::common::post_json(&http, &url, &check_body(tool, json!({"i": i}))).await;
            (tool, body["decision"].as_str().unwrap().to_string())
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (tool, decision) = r.unwrap();
        assert_eq!(decision, if tool == "read" { "allow" } else { "deny" });
    }
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_admin_listener() {
    let s = toy(Mode::Enforce).await;
    let health = s.http.get(s.admin("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = s
        .http
        .get(s.admin("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    // The agent listener does not expose admin endpoints.
    let resp = s.http.get(s.agent("/v1/status")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn cached_verdicts_still_depend_on_every_input_field_the_policy_reads() {
    // The policy reads agent.run_id: two calls that differ only there must not share a verdict.
    let policy = "package clawgate\n\
        decision := {\"effect\": \"allow\", \"risk\": \"low\", \"reasons\": [input.agent.run_id]}\n";
    let s = start_with(move |c, dir| {
        c.policy.dir = Some(write_bundle(&dir.join("policy"), &[("main.rego", policy)]));
    })
    .await;
    for _ in 0..3 {
        for run in ["run-a", "run-b"] {
            let mut body = check_body("read", json!({"path": "x"}));
            body["agent"]["run_id"] = json!(run);
            let (_, d) = s.check_body(&body).await;
            assert_eq!(d["reasons"], json!([run]));
        }
    }
}

/// brush allocates without bound on some here-documents (libFuzzer found 84 bytes taking
/// 2.9 GB, and lexical guards leave shapes like `<<<<<-x$(( )`). The binary parses in
/// memory-capped worker processes: such text is held as unparsed, the sidecar's own memory
/// stays small, the workers stay few, and ordinary commands keep parsing.
#[tokio::test]
async fn shell_text_that_exhausts_the_parser_is_held_and_the_sidecar_keeps_answering() {
    let mut sc = crate::common::BinarySidecar::configure(
        // A deadline far past what filling the memory cap takes, even in a debug build on a
        // busy machine, so that the memory cap is the bound this test sees.
        "[facts]\nparse_memory_mib = 192\nparse_timeout_ms = 30000\n",
    );
    sc.start().await;
    let http = reqwest::Client::new();
    let url = sc.agent_url("/v1/check");
    for text in [
        "<<<<<-x$(( )",
        "echo hi && sh -c '<<<<<-x$(( )'",
        "git status; bash -c \"$(printf x) <<<<<-y\\$(( )\"",
    ] {
        let answer =
            crate::common::post_json(&http, &url, &check_body("exec", json!({"command": text})))
                .await;
        assert_ne!(answer["decision"], "allow", "{text}: {answer}");
        assert!(
            answer["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().contains("192 MiB memory budget")),
            "{text}: {answer}"
        );
    }
    let pid = sc.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss_kib < 150 * 1024, "the sidecar holds {rss_kib} KiB");
    // One worker per parsing thread at most (the failed ones were reaped, not kept).
    let mut children = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let list =
            std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
        children += list.split_whitespace().count();
    }
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(
        children <= cores,
        "{children} parser workers for {cores} cores"
    );
    let answer = crate::common::post_json(
        &http,
        &url,
        &check_body("exec", json!({"command": "ls -la && git status"})),
    )
    .await;
    assert_eq!(answer["decision"], "allow", "{answer}");
}
