//! One full evaluation (decision cache off) of the embedded bundle for a typical exec, read and
//! web_fetch: the facts stage and the policy separately, then both, as p50/p99 in one run.
//!
//! `cargo bench --bench facts` (CLAWGATE_BENCH_ITERS to change the sample count).

use std::time::{Duration, Instant};

use clawgate::action::Action;
use clawgate::facts::FactsContext;
use clawgate::gate::policy::PolicyEngine;
use serde_json::json;

fn percentiles(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

fn main() {
    let iters: usize = std::env::var("CLAWGATE_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let engine = PolicyEngine::load(None, Duration::from_millis(500)).expect("embedded bundle");
    let ctx = FactsContext::default().with_home("/home/dev");
    let cases = [
        (
            "exec",
            Action::tool(
                "exec",
                Some(json!({"command": "git log --oneline -5 | grep fix"})),
            ),
        ),
        (
            "read",
            Action::tool("read", Some(json!({"path": "src/main.rs"}))),
        ),
        (
            "web_fetch",
            Action::tool(
                "web_fetch",
                Some(json!({"url": "https://docs.rs/tokio/latest/tokio/"})),
            ),
        ),
    ];
    println!("{iters} evaluations per case, decision cache off (microseconds)");
    println!(
        "{:<10} {:>10} {:>10} {:>11} {:>11} {:>10} {:>10}",
        "case", "facts p50", "facts p99", "policy p50", "policy p99", "both p50", "both p99"
    );
    for (name, action) in cases.clone() {
        let input = json!({"action": action, "agent": {"id": "main"}, "environment": "production",
                           "now": "2026-12-03T10:00:00Z"});
        let (mut facts_ns, mut policy_ns, mut both_ns) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..iters / 10 {
            let _ = engine.evaluate_action(input.clone(), &action, &ctx, "warm");
        }
        for _ in 0..iters {
            let t = Instant::now();
            let facts = engine.facts(&action, &ctx);
            facts_ns.push(t.elapsed().as_nanos() as u64);
            let mut with_facts = input.clone();
            with_facts["facts"] = serde_json::to_value(&facts).unwrap_or_default();
            let t = Instant::now();
            let (v, _) = engine.evaluate(&with_facts);
            policy_ns.push(t.elapsed().as_nanos() as u64);
            assert!(v.is_ok());
            let t = Instant::now();
            let (v, _) = engine.evaluate_action(input.clone(), &action, &ctx, "nocache");
            both_ns.push(t.elapsed().as_nanos() as u64);
            assert!(v.is_ok());
        }
        let (f50, f99) = percentiles(facts_ns);
        let (p50, p99) = percentiles(policy_ns);
        let (b50, b99) = percentiles(both_ns);
        println!(
            "{name:<10} {f50:>10.1} {f99:>10.1} {p50:>11.1} {p99:>11.1} {b50:>10.1} {b99:>10.1}"
        );
    }
    // The binary parses shell text in a worker process (`clawgate parse-worker`): the same
    // exec's facts again, the parse crossing the pipe to the release binary as it ships.
    clawgate::facts::parser_worker::enable(std::path::PathBuf::from(env!(
        "CARGO_BIN_EXE_clawgate"
    )));
    let (_, exec) = &cases[0];
    let mut worker_ns = Vec::new();
    for i in 0..iters + iters / 10 {
        let t = Instant::now();
        let facts = engine.facts(exec, &ctx);
        if i >= iters / 10 {
            worker_ns.push(t.elapsed().as_nanos() as u64);
        }
        assert!(facts.scripts.iter().all(|s| s.parse_error.is_none()));
    }
    let (w50, w99) = percentiles(worker_ns);
    println!(
        "{:<10} {w50:>10.1} {w99:>10.1}   (shell parse in a worker process)",
        "exec"
    );
}
