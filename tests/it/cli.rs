//! The real `clawgate` binary: serve on defaults, SIGHUP reload, config check, policy test
//! and policy eval.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, TOY_POLICY, write_bundle};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `clawgate serve` in `dir` without a config file, up once its admin listener answers the
/// token it wrote there (so an instance of someone else's is never mistaken for it). The
/// default ports are fixed: while another run on this machine holds them, serve exits with
/// "cannot listen on" and this waits its turn.
async fn serve_on_defaults(dir: &std::path::Path) -> (Killed, serde_json::Value) {
    let token_file = dir.join("clawgate-data/admin.token");
    let log = dir.join("serve.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut child = Command::new(BIN)
            .arg("serve")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let up_by = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            let token = std::fs::read_to_string(&token_file).unwrap_or_default();
            let status = reqwest::Client::new()
                .get("http://127.0.0.1:9482/v1/status")
                .bearer_auth(token.trim())
                .send()
                .await;
            if let Ok(resp) = status
                && resp.status() == 200
            {
                return (Killed(child), resp.json().await.unwrap());
            }
            assert!(Instant::now() < up_by, "serve never answered its own token");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            err.contains("cannot listen on") && Instant::now() < deadline,
            "serve on the defaults exited: {err}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn serve_runs_on_embedded_defaults_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, status) = serve_on_defaults(dir.path()).await;
    assert!(dir.path().join("clawgate-data").is_dir());
    assert_eq!(status["policy"]["source"], "embedded");
    assert_eq!(status["mode"], "enforce");
    let resp: serde_json::Value = crate::common::post_json(
        &reqwest::Client::new(),
        "http://127.0.0.1:9480/v1/check",
        &crate::common::check_body("read", serde_json::json!({"path": "README.md"})),
    )
    .await;
    assert_eq!(resp["decision"], "allow", "{resp}");
}

#[tokio::test]
async fn sighup_reloads_the_policy_directory() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_bundle(&dir.path().join("policy"), &[("main.rego", TOY_POLICY)]);
    let mut sc = crate::common::BinarySidecar::configure(&format!(
        "[policy]\ndir = \"{}\"\nwatch = false\n",
        policy.display()
    ));
    sc.start().await;
    let revision = |v: serde_json::Value| v["policy"]["revision"].as_str().unwrap().to_string();
    let first = revision(sc.get_admin("/v1/status").await);

    std::fs::write(
        policy.join("main.rego"),
        TOY_POLICY.replace("read is safe", "reads are fine"),
    )
    .unwrap();
    // watch = false: nothing changes until the signal.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(revision(sc.get_admin("/v1/status").await), first);

    sc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = revision(sc.get_admin("/v1/status").await);
        if now != first {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp: serde_json::Value = crate::common::post_json(
        &reqwest::Client::new(),
        &sc.agent_url("/v1/check"),
        &crate::common::check_body("read", serde_json::json!({})),
    )
    .await;
    assert_eq!(resp["reasons"], serde_json::json!(["reads are fine"]));
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_reports_every_problem_with_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "mode = \"loud\"\nenviroment = \"prod\"\n[policy]\neval_timeout_ms = 0\n[listeners.agent]\naddr = \"nope\"\n",
    )
    .unwrap();
    let (code, out, _) = run(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for key in [
        "mode:",
        "enviroment:",
        "policy.eval_timeout_ms:",
        "listeners.agent.addr:",
    ] {
        assert!(out.contains(key), "missing {key} in:\n{out}");
    }
    assert!(out.contains("fix:"), "{out}");
    assert!(
        out.contains("environment"),
        "suggests the right key:\n{out}"
    );

    let (code, defaults, _) = run(&["config", "default"]);
    assert_eq!(code, 0);
    let good = dir.path().join("good.toml");
    std::fs::write(&good, defaults).unwrap();
    let (code, out, _) = run(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok"));

    // serve refuses a bad config instead of starting on half of it.
    let (code, _, err) = run(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("enviroment"), "{err}");
}

#[test]
fn policy_test_runs_the_embedded_bundle_and_passes() {
    let (code, out, err) = run(&["policy", "test"]);
    assert_eq!(code, 0, "{out}{err}");
    let summary = out.lines().last().unwrap();
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    let written = bundle_test_rules();
    assert!(!written.is_empty(), "policies/ has no test_* rules");
    assert_eq!(
        passed,
        written.len(),
        "every test_* rule in policies/ runs and passes: {summary}"
    );
}

/// The (package, rule) pairs of every `test_*` rule written in `policies/` (the embedded
/// bundle), read from the files themselves.
fn bundle_test_rules() -> std::collections::BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut rules = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rego") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut package = String::new();
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("package ") {
                package = p.trim().to_string();
            } else if line.starts_with("test_") {
                let name: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rules.insert((package.clone(), name));
            }
        }
    }
    rules
}

#[test]
fn policy_test_fails_on_a_failing_test_and_shows_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_bundle(
        dir.path(),
        &[
            ("main.rego", TOY_POLICY),
            (
                "main_test.rego",
                "package clawgate.main_test\nimport data.clawgate\n\
                 test_read_allowed if clawgate.decision.effect == \"allow\" with input as {\"action\": {\"tool\": \"read\"}}\n\
                 test_wrong if clawgate.decision.effect == \"allow\" with input as {\"action\": {\"tool\": \"exec\"}}\n",
            ),
        ],
    );
    let (code, out, _) = run(&["policy", "test", bundle.to_str().unwrap(), "--coverage"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("PASS data.clawgate.main_test.test_read_allowed"),
        "{out}"
    );
    assert!(
        out.contains("FAIL data.clawgate.main_test.test_wrong"),
        "{out}"
    );
    assert!(out.contains("not covered main.rego:"), "{out}");
    assert_eq!(out.lines().last().unwrap(), "1 passed, 1 failed");
}

#[test]
fn policy_eval_prints_the_decision_for_one_input() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = write_bundle(&dir.path().join("p"), &[("main.rego", TOY_POLICY)]);
    let input = dir.path().join("input.json");
    std::fs::write(
        &input,
        r#"{"action": {"kind": "tool", "tool": "write"}, "environment": "production"}"#,
    )
    .unwrap();
    let (code, out, err) = run(&[
        "policy",
        "eval",
        "--input",
        input.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["effect"], "require_approval");
    assert_eq!(v["policy_revision"].as_str().unwrap().len(), 64);

    std::fs::write(&input, "{not json").unwrap();
    let (code, _, err) = run(&["policy", "eval", "--input", input.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn the_readme_configuration_example_is_the_embedded_defaults() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n").expect("README has a toml block") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let parsed =
        clawgate::config::Config::parse(&readme[start..end]).expect("README config parses");
    assert_eq!(parsed, clawgate::config::Config::default());
}

#[tokio::test]
async fn the_admin_token_can_come_from_the_environment() {
    let mut s = crate::common::BinarySidecar::configure("");
    s.start_with_env(&[("CLAWGATE_ADMIN_TOKEN", "token-from-env")])
        .await;
    let http = reqwest::Client::new();
    let status = |token: &'static str| {
        let req = http.get(s.admin_url("/v1/status")).bearer_auth(token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("token-from-env").await, 200);
    assert_eq!(status("something-else").await, 401);
    // No token file is written when the environment provides the token.
    assert!(!s.data.join("admin.token").exists());
}

/// The `clawgate approvals ...` lines of the README's approvals example, comments dropped.
fn readme_approval_commands() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```sh\nclawgate approvals list")
        .expect("README has the approvals example")
        + 6;
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end]
        .lines()
        .map(|l| l.split(" # ").next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Run one README line with `sh` in `dir`, the built binary first on PATH, `ID` replaced.
async fn run_readme_line(dir: &std::path::Path, line: &str, id: &str) -> (i32, String) {
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    crate::common::output_text(
        tokio::process::Command::new("sh")
            .args(["-c", &line.replace("ID", id)])
            .current_dir(dir)
            .env("PATH", path)
            .env_remove("CLAWGATE_APPROVER")
            .env_remove("CLAWGATE_ADMIN_TOKEN"),
    )
    .await
}

#[tokio::test]
async fn on_embedded_defaults_the_local_operator_answers_approvals_as_the_readme_shows() {
    // Issue 15, finding 13: with no [approval.groups] nobody could approve, and the README's
    // `approvals approve ID --as U0123ABCD` answered 403.
    let dir = tempfile::tempdir().unwrap();
    let (_child, _) = serve_on_defaults(dir.path()).await;
    let http = reqwest::Client::new();
    let check = |command: &str| {
        let body = crate::common::check_body("exec", serde_json::json!({"command": command}));
        let http = http.clone();
        async move { crate::common::post_json(&http, "http://127.0.0.1:9480/v1/check", &body).await }
    };
    let held = |d: &serde_json::Value| {
        assert_eq!(d["decision"], "pending", "{d}");
        assert_eq!(d["approval"]["quorum"], 1, "{d}");
        d["approval_id"].as_str().unwrap().to_string()
    };
    let (approve_me, deny_me) = ("kubectl delete ns staging", "kubectl delete ns scratch");
    let (first, second) = (held(&check(approve_me).await), held(&check(deny_me).await));

    // Nobody answers without the admin token, whoever they claim to be.
    for token in [None, Some("not-the-token")] {
        let mut req = http
            .post(format!(
                "http://127.0.0.1:9482/v1/approvals/{first}/decision"
            ))
            .json(&serde_json::json!({"decision": "approve", "approver": "local-operator"}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    assert_eq!(check(approve_me).await["decision"], "pending");

    let lines = readme_approval_commands();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let (code, out) = run_readme_line(dir.path(), &lines[0], &first).await;
    assert_eq!(code, 0, "{}: {out}", lines[0]);
    assert!(out.contains(&first) && out.contains(&second), "{out}");
    let (code, out) = run_readme_line(dir.path(), &lines[1], &first).await;
    assert_eq!(code, 0, "{}: {out}", lines[1]);
    assert!(out.contains("kubectl delete ns staging"), "{out}");
    // approve ID: answered as the local operator, and the identical retry runs.
    let (code, out) = run_readme_line(dir.path(), &lines[2], &first).await;
    assert_eq!(code, 0, "{}: {out}", lines[2]);
    assert!(
        out.contains("as local-operator") && out.contains("now approved"),
        "{out}"
    );
    assert_eq!(check(approve_me).await["decision"], "allow");
    // deny ID --reason ...: the retry is denied with the reason.
    let (code, out) = run_readme_line(dir.path(), &lines[3], &second).await;
    assert_eq!(code, 0, "{}: {out}", lines[3]);
    assert!(out.contains("now denied"), "{out}");
    let denied = check(deny_me).await;
    assert_eq!(denied["decision"], "deny", "{denied}");

    // The admin token answers only as the local operator: naming someone else says how they
    // answer instead (issue 15, finding 2).
    let third = held(&check("kubectl delete ns other").await);
    let (code, out) = run_readme_line(
        dir.path(),
        "clawgate approvals approve ID --as U0123ABCD",
        &third,
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("approver_not_authenticated")
            && out.contains("answers only as local-operator"),
        "{out}"
    );

    // The start-up warning tells the operator how to add real approvers.
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("local operator") && log.contains("[approval.groups]"),
        "{log}"
    );
}
