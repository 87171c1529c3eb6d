//! The clawgate commands, one file per command: its arguments and how it runs. `main.rs` only
//! parses the command line and dispatches here. This is the CLI edge: errors are `anyhow`.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod certs;
pub mod config;
pub mod mcp_stdio;
pub mod mode;
pub mod net;
pub mod openclaw_config;
pub mod policy;
pub mod serve;

use clap::ValueEnum;
use clawgate::gate::Mode;

/// The mode as the command line spells it (`serve --mode`, `mode set`).
#[derive(Clone, Copy, ValueEnum)]
pub enum CliMode {
    Enforce,
    Shadow,
}

impl From<CliMode> for Mode {
    fn from(mode: CliMode) -> Mode {
        match mode {
            CliMode::Enforce => Mode::Enforce,
            CliMode::Shadow => Mode::Shadow,
        }
    }
}
