//! `clawgate mode set enforce|shadow`: switch a running sidecar's mode (admin token; audited).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use clawgate::gate::Mode;
use serde_json::json;

use super::CliMode;
use super::admin::{AdminConnection, block_on};

#[derive(Subcommand)]
pub enum ModeCommand {
    /// Set the mode of a running sidecar.
    Set {
        #[arg(value_enum)]
        mode: CliMode,
        #[command(flatten)]
        admin: AdminConnection,
    },
}

pub fn run(cmd: ModeCommand) -> Result<ExitCode> {
    let ModeCommand::Set { mode, admin } = cmd;
    let api = admin.api()?;
    let mode = Mode::from(mode);
    let answer = block_on(api.post("/v1/mode", &json!({"mode": mode.as_str()})))?;
    println!(
        "mode: {} (was {}; audit seq {})",
        answer["mode"].as_str().unwrap_or("?"),
        answer["previous"].as_str().unwrap_or("?"),
        answer["audit_seq"]
    );
    Ok(ExitCode::SUCCESS)
}
