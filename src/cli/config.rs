//! `clawgate config check FILE` and `clawgate config default`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use clawgate::config::Config;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file; print each problem with its key and a fix.
    Check { file: PathBuf },
    /// Print the embedded defaults as TOML.
    Default,
}

pub fn run(cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Check { file } => check(&file),
        ConfigCommand::Default => {
            print!("{}", Config::default_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(file: &Path) -> Result<ExitCode> {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}
