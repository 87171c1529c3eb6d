//! `clawgate approvals ...`: operators list, inspect and answer approvals through the admin
//! API of a running sidecar, authenticated with the admin token.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use clawgate::gate::approval::model::action_subject;

use crate::cli::admin::{AdminApi, AdminConnection};
use serde_json::{Value, json};

#[derive(Args)]
pub struct ApprovalsArgs {
    #[command(flatten)]
    admin: AdminConnection,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List pending approvals (or those with --status).
    List {
        /// pending, approved, denied or expired; all when omitted with --all.
        #[arg(long, default_value = "pending")]
        status: String,
        /// Every approval kept in memory (pending and resolved in the last day).
        #[arg(long, conflicts_with = "status")]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one approval: the whole action (redacted, never cut), which values were redacted,
    /// the programs a shell command runs, who may approve, the answers so far.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve an approval (as the local operator, or as the approver named with --as).
    Approve {
        id: String,
        /// The approver id the answer is from (default: $CLAWGATE_APPROVER, else whom the
        /// token proves). It must be whom the token proves: the admin token answers only as
        /// the local operator (`approval.local_operator`), an approver's own token
        /// (`[approvers.NAME]`) only as NAME; naming anyone else is refused.
        #[arg(long = "as", env = "CLAWGATE_APPROVER")]
        approver: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny an approval (as the local operator, or --as); the reason is shown to the agent.
    Deny {
        id: String,
        /// As for approve: must be whom the token proves.
        #[arg(long = "as", env = "CLAWGATE_APPROVER")]
        approver: Option<String>,
        #[arg(long)]
        reason: String,
    },
}

pub fn run(args: ApprovalsArgs) -> Result<ExitCode> {
    let api = args.admin.api()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match args.command {
            ApprovalsCommand::List { status, all, json } => {
                let path = if all {
                    "/v1/approvals".to_string()
                } else {
                    format!("/v1/approvals?status={status}")
                };
                let body = api.get(&path).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&body)?);
                } else {
                    print_list(&body);
                }
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::Show { id, json } => {
                let body = api.get(&format!("/v1/approvals/{id}")).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&body)?);
                } else {
                    print_one(&body);
                }
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::Approve {
                id,
                approver,
                reason,
            } => answer(&api, &id, "approve", approver, reason).await,
            ApprovalsCommand::Deny {
                id,
                approver,
                reason,
            } => answer(&api, &id, "deny", approver, Some(reason)).await,
        }
    })
}

async fn answer(
    api: &AdminApi,
    id: &str,
    decision: &str,
    approver: Option<String>,
    reason: Option<String>,
) -> Result<ExitCode> {
    if approver.as_deref().is_some_and(|a| a.trim().is_empty()) {
        anyhow::bail!(
            "--as needs an approver id (or leave it out to answer as the local operator)"
        );
    }
    let mut body = json!({"decision": decision, "reason": reason});
    if let Some(approver) = approver {
        // Without a name the sidecar records the answer as its local operator.
        body["approver"] = json!(approver);
    }
    let view = api
        .post(&format!("/v1/approvals/{id}/decision"), &body)
        .await?;
    let a = &view["approval"];
    let by = a["answers"]
        .as_array()
        .and_then(|answers| answers.last())
        .and_then(|last| last["approver"].as_str())
        .unwrap_or("?");
    println!(
        "{} {} as {by}: now {} ({} of {} approvals)",
        decision,
        id,
        a["status"].as_str().unwrap_or("?"),
        approvals_so_far(a),
        a["quorum"]
    );
    Ok(ExitCode::SUCCESS)
}

fn approvals_so_far(a: &Value) -> usize {
    a["answers"]
        .as_array()
        .map(|v| v.iter().filter(|x| x["vote"] == "approve").count())
        .unwrap_or(0)
}

fn print_list(body: &Value) {
    let empty = Vec::new();
    let list = body["approvals"].as_array().unwrap_or(&empty);
    if list.is_empty() {
        println!("no approvals");
        return;
    }
    println!(
        "{:<36}  {:<9} {:<8} {:<10} {:<24} SUBJECT",
        "ID", "STATUS", "RISK", "AGENT", "EXPIRES"
    );
    for a in list {
        println!(
            "{:<36}  {:<9} {:<8} {:<10} {:<24} {}",
            a["id"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            a["risk"].as_str().unwrap_or(""),
            a["agent_id"].as_str().unwrap_or(""),
            a["expires_at"].as_str().unwrap_or(""),
            action_subject(&a["action"]),
        );
    }
}

fn print_one(a: &Value) {
    let line = |k: &str, v: String| println!("{k:<16}{v}");
    line("id", a["id"].as_str().unwrap_or("").into());
    line("status", a["status"].as_str().unwrap_or("").into());
    line("subject", action_subject(&a["action"]));
    line("risk", a["risk"].as_str().unwrap_or("").into());
    line("agent", a["agent_id"].as_str().unwrap_or("").into());
    if let Some(r) = a["requester"].as_object() {
        line("requester", Value::Object(r.clone()).to_string());
    }
    line("approvers", a["approvers"].to_string());
    line("quorum", a["quorum"].to_string());
    line("created", a["created_at"].as_str().unwrap_or("").into());
    line("expires", a["expires_at"].as_str().unwrap_or("").into());
    line(
        "action hash",
        a["action_hash"].as_str().unwrap_or("").into(),
    );
    line("policy", a["policy_revision"].as_str().unwrap_or("").into());
    if let Some(reasons) = a["reasons"].as_array() {
        for r in reasons {
            line("reason", r.as_str().unwrap_or("").into());
        }
    }
    if let Some(answers) = a["answers"].as_array() {
        for x in answers {
            line(
                "answer",
                format!(
                    "{} {} via {} at {}{}",
                    x["approver"].as_str().unwrap_or(""),
                    x["vote"].as_str().unwrap_or(""),
                    x["channel"].as_str().unwrap_or(""),
                    x["at"].as_str().unwrap_or(""),
                    x["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
    let names = |key: &str| -> Vec<String> {
        let list = a[key].as_array().map(Vec::as_slice).unwrap_or_default();
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let programs = names("programs");
    if !programs.is_empty() {
        let more = if a["programs_incomplete"] == true {
            " (the parse stopped at a limit: it may run more)"
        } else {
            ""
        };
        line("runs", format!("{}{more}", programs.join(", ")));
    }
    let redacted = names("redacted");
    if !redacted.is_empty() {
        line("redacted", redacted.join(", "));
    }
    // All of it, never cut: this is where approvers read what a message had to shorten.
    println!(
        "action (redacted, in full):\n{}",
        serde_json::to_string_pretty(&a["action"]).unwrap_or_default()
    );
}
