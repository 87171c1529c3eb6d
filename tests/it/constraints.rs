//! Constraints from policy verdicts, enforced over real loopback HTTP under concurrent load:
//! rate limits, concurrent actions per agent and time windows. Each breach is a deny naming
//! the limit, recorded in the audit log.

use crate::common::{Sidecar, audit_entries, check_body, start_with, write_bundle};
use chrono::Datelike;
use futures_util::future::join_all;
use serde_json::{Value, json};

/// A policy allowing `read` under a 10-a-minute bucket, `slow` at most 3 at a time, and
/// `night` only on days other than today and tomorrow (UTC), so that a test running across
/// midnight still checks outside the window.
fn policy() -> String {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let today = chrono::Utc::now().weekday().num_days_from_monday() as usize;
    let other_days: Vec<String> = DAYS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != today && *i != (today + 1) % 7)
        .map(|(_, d)| format!("\"{d}\""))
        .collect();
    format!(
        r#"package clawgate
default decision := {{"effect": "deny", "risk": "high", "reasons": ["unknown tool"]}}
decision := {{"effect": "allow", "risk": "low", "reasons": ["ok"],
  "constraints": {{"rate": {{"key": "agent:main:read", "per_minute": 10}}}}}} if input.action.tool == "read"
decision := {{"effect": "allow", "risk": "low", "reasons": ["ok"],
  "constraints": {{"max_concurrent": 3, "timeout_ms": 60000}}}} if input.action.tool == "slow"
decision := {{"effect": "allow", "risk": "low", "reasons": ["ok"],
  "constraints": {{"time_window": {{"days": [{}], "start": "00:00", "end": "23:59", "tz_offset": "+00:00"}}}}}} if input.action.tool == "night"
"#,
        other_days.join(", ")
    )
}

async fn sidecar() -> Sidecar {
    let policy = policy();
    start_with(move |c, dir| {
        c.policy.dir = Some(write_bundle(&dir.join("policy"), &[("main.rego", &policy)]));
    })
    .await
}

async fn concurrent_checks(s: &Sidecar, tool: &str, n: usize) -> Vec<Value> {
    let calls = (0..n).map(|i| {
        let body = check_body(tool, json!({"n": i}));
        async move { s.check_body(&body).await.1 }
    });
    join_all(calls).await
}

fn count(answers: &[Value], decision: &str) -> usize {
    answers.iter().filter(|a| a["decision"] == decision).count()
}

#[tokio::test]
async fn fifty_concurrent_checks_get_exactly_the_buckets_worth() {
    let s = sidecar().await;
    let answers = concurrent_checks(&s, "read", 50).await;
    assert_eq!(count(&answers, "allow"), 10);
    assert_eq!(count(&answers, "deny"), 40);
    let denied = answers.iter().find(|a| a["decision"] == "deny").unwrap();
    let reason = denied["reasons"].as_array().unwrap().last().unwrap();
    assert!(
        reason
            .as_str()
            .unwrap()
            .contains("rate limit agent:main:read of 10 per minute"),
        "{denied}"
    );
    let recorded = audit_entries(s.running.audit(), "decision");
    assert_eq!(recorded.len(), 50);
    assert_eq!(
        recorded.iter().filter(|e| e["decision"] == "deny").count(),
        40
    );
}

#[tokio::test]
async fn concurrent_actions_are_counted_until_their_results_arrive() {
    let s = sidecar().await;
    let answers = concurrent_checks(&s, "slow", 12).await;
    assert_eq!(count(&answers, "allow"), 3);
    let denied = answers.iter().find(|a| a["decision"] == "deny").unwrap();
    assert!(
        denied["reasons"]
            .to_string()
            .contains("concurrency limit of 3 running actions for agent main"),
        "{denied}"
    );
    // One finishes (its result is reported): one more may start, and only one.
    let finished = answers.iter().find(|a| a["decision"] == "allow").unwrap();
    let resp = s
        .http
        .post(s.agent("/v1/results"))
        .json(&json!({"decision_id": finished["id"], "ok": true, "duration_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let again = concurrent_checks(&s, "slow", 5).await;
    assert_eq!(count(&again, "allow"), 1);
    let deny_entries = audit_entries(s.running.audit(), "decision")
        .into_iter()
        .filter(|e| e["decision"] == "deny")
        .count();
    assert_eq!(deny_entries, 9 + 4);
}

#[tokio::test]
async fn outside_the_time_window_is_denied() {
    let s = sidecar().await;
    let (_, answer) = s.check("night", json!({})).await;
    assert_eq!(answer["decision"], "deny", "{answer}");
    assert!(
        answer["reasons"]
            .to_string()
            .contains("outside the allowed time window"),
        "{answer}"
    );
    assert_eq!(answer["constraints"]["time_window"]["start"], "00:00");
}
