//! `clawgate policy test|eval|reload`: test and evaluate bundles offline, reload a running
//! sidecar's bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use clawgate::gate::policy::testing::{self, TestOutcome};
use clawgate::gate::policy::{Bundle, BundleFiles, PolicyEngine};
use serde_json::json;

use super::admin::{AdminConnection, block_on};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run every `test_*` rule of a bundle (the embedded one when DIR is omitted).
    Test {
        dir: Option<PathBuf>,
        /// Show policy lines that no test evaluated.
        #[arg(long)]
        coverage: bool,
    },
    /// Print the decision for one policy input document. Unless the input carries its own
    /// `facts`, they are stated from `input.action` as the sidecar states them.
    Eval {
        /// JSON file holding the policy input (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Bundle directory (the embedded one when omitted).
        dir: Option<PathBuf>,
        /// Print the facts of the input (what the policy sees in `input.facts`) instead of
        /// the decision.
        #[arg(long)]
        facts: bool,
        /// The agent's home directory for `~` and `$HOME` (default: `HOME`).
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
    },
    /// Make a running sidecar re-read its policy bundle now (admin token; audited).
    Reload {
        #[command(flatten)]
        admin: AdminConnection,
    },
}

pub fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Test { dir, coverage } => test(dir, coverage),
        PolicyCommand::Eval {
            input,
            dir,
            facts,
            home,
        } => eval(&input, dir, facts, home.as_deref()),
        PolicyCommand::Reload { admin } => reload(&admin),
    }
}

fn test(dir: Option<PathBuf>, coverage: bool) -> Result<ExitCode> {
    let files = BundleFiles::from_option(dir.as_deref())?;
    // A bundle that would be rejected at load is a failure here too.
    Bundle::compile(&files, Duration::from_secs(1))?;
    let report = testing::run(&files, coverage)?;
    for r in &report.results {
        let ms = r.duration.as_secs_f64() * 1000.0;
        match &r.outcome {
            TestOutcome::Pass => println!("PASS {} ({ms:.2} ms)", r.name),
            TestOutcome::Fail(got) => println!("FAIL {} ({}): got {got}", r.name, r.file),
            TestOutcome::Error(e) => println!("ERROR {} ({}): {e}", r.name, r.file),
        }
    }
    if let Some(files) = &report.coverage {
        println!("\ncoverage (policy files, test files excluded):");
        for f in files {
            let total = f.covered + f.uncovered.len();
            let pct = if total == 0 {
                100.0
            } else {
                100.0 * f.covered as f64 / total as f64
            };
            println!("  {} {pct:.1}% ({} of {total} lines)", f.path, f.covered);
            for (line, text) in &f.uncovered {
                println!("    not covered {}:{line}: {}", f.path, text.trim());
            }
        }
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    if report.results.is_empty() {
        eprintln!("error: the bundle has no test_* rules");
        return Ok(ExitCode::from(1));
    }
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn eval(
    input: &Path,
    dir: Option<PathBuf>,
    show_facts: bool,
    home: Option<&str>,
) -> Result<ExitCode> {
    let text = if input.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("cannot read {}", input.display()))?
    };
    let mut input: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", input.display()))?;
    let engine = PolicyEngine::load(dir.as_deref(), Duration::from_millis(1000))?;
    let ctx = clawgate::facts::FactsConfig {
        home: home.map(String::from),
        ..Default::default()
    }
    .context(Vec::new(), Vec::new());
    if input.get("facts").is_none() {
        let action: clawgate::action::Action =
            serde_json::from_value(input.get("action").cloned().unwrap_or_default())
                .context("input.action is not a valid action (kind tool, mcp, http or connect)")?;
        let facts = serde_json::to_value(engine.facts(&action, &ctx))?;
        if let Some(map) = input.as_object_mut() {
            map.insert("facts".into(), facts);
        }
    }
    if show_facts {
        println!("{}", serde_json::to_string_pretty(&input["facts"])?);
        return Ok(ExitCode::SUCCESS);
    }
    let (verdict, revision) = engine.evaluate(&input);
    let (out, code) = match verdict {
        Ok(v) => (json!({"policy_revision": revision, "decision": v}), 0),
        Err(e) => (
            json!({"policy_revision": revision, "error": e.to_string(),
                "decision": {"effect": "deny", "risk": "high", "reasons": [e.to_string()]}}),
            2,
        ),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::from(code))
}

/// Asks the running sidecar to re-read its bundle; the sidecar records the reload.
fn reload(admin: &AdminConnection) -> Result<ExitCode> {
    let api = admin.api()?;
    let answer = block_on(api.post("/v1/policy/reload", &json!({})))?;
    println!(
        "policy {}: revision {} (audit seq {})",
        answer["outcome"].as_str().unwrap_or("?"),
        answer["revision"].as_str().unwrap_or("?"),
        answer["audit_seq"]
    );
    Ok(ExitCode::SUCCESS)
}
