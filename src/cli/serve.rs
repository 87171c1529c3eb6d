//! `clawgate serve`: run the sidecar.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use clawgate::config::Config;

use super::CliMode;

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config file; every key is optional (see `clawgate config default`).
    #[arg(long, env = "CLAWGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of .rego files and data.json replacing the embedded bundle.
    #[arg(long)]
    policy_dir: Option<PathBuf>,
    /// Override the configured mode.
    #[arg(long, value_enum)]
    mode: Option<CliMode>,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    }
    .with_secrets_from_env();
    if let Some(dir) = args.policy_dir {
        config.policy.dir = Some(dir);
    }
    if let Some(mode) = args.mode {
        config.mode = mode.into();
    }
    let problems = config.validate();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  - {p}");
        }
        anyhow::bail!("configuration has {} problem(s)", problems.len());
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(clawgate::app::run(config))?;
    Ok(ExitCode::SUCCESS)
}
