//! Operating the sidecar: `/metrics` read by the official Prometheus client's OpenMetrics
//! parser, readiness naming each listener, and SIGTERM under load on the real binary.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{
    BIN, BinarySidecar, TOY_POLICY, check_body, post_json, start_with, write_bundle,
};
use serde_json::{Value, json};

/// Parses OpenMetrics text from stdin with `prometheus_client`'s parser (which rejects
/// malformed exposition) and prints every sample as `[name, labels, value]` JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = [[s.name, s.labels, s.value]
           for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]
print(json.dumps(samples))
"#;

async fn parse_metrics(text: &str) -> Vec<(String, Value, f64)> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(crate::common::mcp::python())
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the metrics parser answers within 120 s")
        .unwrap();
    assert!(
        out.status.success(),
        "parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples
}

/// The value of the one sample with `name` whose labels include `labels`.
fn sample(samples: &[(String, Value, f64)], name: &str, labels: Value) -> f64 {
    let wanted = labels.as_object().unwrap();
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == name && wanted.iter().all(|(k, v)| &l[k] == v))
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels}: {found:?} in {samples:?}");
    found[0]
}

#[tokio::test]
async fn metrics_count_decisions_approvals_and_the_audit_chain() {
    let s = start_with(|c, dir| {
        c.policy.dir = Some(write_bundle(
            &dir.join("policy"),
            &[("main.rego", TOY_POLICY)],
        ));
    })
    .await;
    for tool in ["read", "read", "exec", "write"] {
        let (status, _) = s.check(tool, json!({"path": "/tmp/x"})).await;
        assert_eq!(status, 200);
    }
    let resp = s.http.get(s.admin("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "/metrics needs no credential");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let chain_length = s.status().await["audit"]["entries"].as_f64().unwrap();
    let m = parse_metrics(&text).await;

    let decisions = "clawgate_decisions_total";
    let allowed = json!({"kind": "tool", "decision": "allow", "effect": "allow", "risk": "low"});
    let denied = json!({"kind": "tool", "decision": "deny", "effect": "deny", "risk": "high"});
    let pending = json!({"kind": "tool", "decision": "pending", "effect": "require_approval",
        "risk": "medium"});
    assert_eq!(sample(&m, decisions, allowed), 2.0);
    assert_eq!(sample(&m, decisions, denied), 1.0);
    assert_eq!(sample(&m, decisions, pending), 1.0);
    let latency = "clawgate_decision_duration_seconds_count";
    assert_eq!(sample(&m, latency, json!({"kind": "tool"})), 4.0);
    let slowest = "clawgate_decision_duration_seconds_bucket";
    assert_eq!(
        sample(&m, slowest, json!({"kind": "tool", "le": "+Inf"})),
        4.0
    );
    assert_eq!(sample(&m, "clawgate_approvals_pending", json!({})), 1.0);
    assert_eq!(
        sample(&m, "clawgate_audit_chain_entries", json!({})),
        chain_length
    );
    // Every entry but the first few was appended by a caller that timed it.
    let appends = sample(
        &m,
        "clawgate_audit_append_duration_seconds_count",
        json!({}),
    );
    assert!(appends >= 5.0 && appends <= chain_length, "{appends}");
    let batched = sample(&m, "clawgate_audit_batch_entries_sum", json!({}));
    assert_eq!(
        batched, chain_length,
        "every entry was committed in some batch"
    );
    assert_eq!(
        sample(
            &m,
            "clawgate_policy_loads_total",
            json!({"outcome": "loaded"})
        ),
        1.0
    );
    assert!(
        !m.iter()
            .any(|(n, _, _)| n.starts_with("clawgate_approval_resolution_seconds")),
        "no approval resolved yet, so no resolution series"
    );
    s.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn probes_are_unauthenticated_and_readiness_names_each_listener() {
    let s = start_with(|_, _| {}).await;
    let health = s.http.get(s.admin("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = s.http.get(s.admin("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    for check in [
        "policy_loaded",
        "audit_writable",
        "data_dir_writable",
        "listeners_up",
    ] {
        assert_eq!(body["checks"][check], true, "{check}: {body}");
    }
    assert_eq!(
        body["listeners"],
        json!({"agent": true, "egress": true, "admin": true}),
        "{body}"
    );
    s.running.shutdown(Duration::from_secs(5)).await;
}

/// One worker: checks on one connection until the sidecar stops answering; the decision ids
/// it was answered.
async fn check_until_refused(url: String, worker: usize) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    for i in 0.. {
        let tool = if (worker + i).is_multiple_of(3) {
            "exec"
        } else {
            "read"
        };
        let body = check_body(tool, json!({"n": i, "worker": worker}));
        let Ok(resp) = http.post(&url).json(&body).send().await else {
            break;
        };
        if resp.status() != 200 {
            break;
        }
        let Ok(decision) = resp.json::<Value>().await else {
            break;
        };
        acknowledged.push(decision["id"].as_str().unwrap().to_string());
    }
    acknowledged
}

#[tokio::test]
async fn sigterm_under_load_keeps_every_acknowledged_decision_and_ends_with_a_checkpoint() {
    let mut sidecar = BinarySidecar::configure("");
    let policy = write_bundle(
        &sidecar.dir.path().join("policy"),
        &[("main.rego", TOY_POLICY)],
    );
    let config = std::fs::read_to_string(&sidecar.config).unwrap();
    std::fs::write(
        &sidecar.config,
        format!(
            "{config}[policy]\ndir = \"{}\"\n[limits]\nshutdown_grace_s = 5\n",
            policy.display()
        ),
    )
    .unwrap();
    sidecar.start().await;

    let workers: Vec<_> = (0..16)
        .map(|w| tokio::spawn(check_until_refused(sidecar.agent_url("/v1/check"), w)))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = libc::pid_t::try_from(sidecar.pid()).unwrap();
    // SAFETY: kill(2) on the child this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut acknowledged = HashSet::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    let status = sidecar.exited(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    assert!(
        acknowledged.len() > 16,
        "the load ran before SIGTERM: {}",
        acknowledged.len()
    );

    let db = sidecar.data.join("audit.redb");
    let verify = tokio::process::Command::new(BIN)
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .await
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let export = tokio::process::Command::new(BIN)
        .args(["audit", "export", "--db"])
        .arg(&db)
        .output()
        .await
        .unwrap();
    assert!(export.status.success());
    let lines: Vec<Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let entries: Vec<&Value> = lines.iter().filter_map(|l| l.get("entry")).collect();
    let recorded: HashSet<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "decision")
        .filter_map(|e| e["decision_id"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !recorded.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    let last_entry = entries.last().unwrap();
    assert_eq!(last_entry["kind"], "lifecycle");
    assert_eq!(last_entry["event"], "shutdown");
    let last_line = lines.last().unwrap();
    assert!(
        last_line.get("checkpoint").is_some(),
        "the export ends with a checkpoint: {last_line}"
    );
    assert_eq!(
        last_line["size"],
        json!(entries.len()),
        "it covers every entry"
    );
}

/// Every string-valued `key` anywhere in a JSON log line (its fields and its spans).
fn values_of<'a>(line: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match line {
        Value::Object(m) => {
            for (k, v) in m {
                match v.as_str() {
                    Some(s) if k == key => out.push(s),
                    _ => values_of(v, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| values_of(v, key, out)),
        _ => {}
    }
}

#[tokio::test]
async fn json_logs_carry_the_action_run_and_decision() {
    let mut sc = BinarySidecar::configure("");
    let log = sc.dir.path().join("stderr.jsonl");
    sc.start_logging_json(&log).await;
    let body = check_body("exec", json!({"command": "rm -rf /"}));
    let answer = post_json(&reqwest::Client::new(), &sc.agent_url("/v1/check"), &body).await;
    let (id, decision) = (
        answer["id"].as_str().unwrap(),
        answer["decision"].as_str().unwrap(),
    );
    assert_ne!(decision, "allow", "{answer}");
    // A line about this action carries its id, the run and the decision (in its fields or
    // the spans it was logged in).
    let about_it = |line: &Value| {
        let seen = |key| {
            let mut out = Vec::new();
            values_of(line, key, &mut out);
            out.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        seen("action_id").iter().any(|v| v == id)
            && seen("run_id").iter().any(|v| v == "run-1")
            && seen("decision").iter().any(|v| v == decision)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines.iter().any(about_it) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line carries action {id}, run-1 and {decision}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
