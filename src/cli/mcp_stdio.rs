//! `clawgate mcp-stdio`: run a stdio MCP server behind clawgate; OpenClaw launches this as the
//! server's command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use clawgate::intercept::mcp::stdio::{StdioRelay, bearer, run as relay};

#[derive(Args)]
pub struct McpStdioArgs {
    /// The server's name, as policy sees it (input.action.server).
    #[arg(long)]
    server: String,
    /// The running sidecar's agent listener.
    #[arg(long, env = "CLAWGATE_URL", default_value = "http://127.0.0.1:9480")]
    sidecar: String,
    /// The agent id sent with each check.
    #[arg(long, default_value = "main")]
    agent: String,
    /// Seconds a call held for approval waits before it is answered as pending.
    #[arg(long, default_value_t = 20)]
    hold: u64,
    /// Read the agent's token ([identities.NAME]) from this environment variable; sent as
    /// `Authorization: Bearer` to the sidecar. Without --token-env and --token-file,
    /// CLAWGATE_AGENT_TOKEN is used when set. The token never goes on the command line.
    #[arg(long, value_name = "VAR", conflicts_with = "token_file")]
    token_env: Option<String>,
    /// Read the agent's token from this file (surrounding whitespace is ignored).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// The real server: COMMAND [ARGS...], after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run(args: McpStdioArgs) -> Result<ExitCode> {
    let token = match agent_token(args.token_env.as_deref(), args.token_file.as_deref())? {
        Some((token, from)) => Some(bearer(&token).with_context(|| {
            format!("the token from {from} has characters a header cannot carry")
        })?),
        None => None,
    };
    let stdio = StdioRelay {
        server: args.server,
        sidecar: args.sidecar,
        agent_id: args.agent,
        hold: Duration::from_secs(args.hold),
        token,
        command: args.command,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(relay(stdio))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The environment variable `mcp-stdio` reads the agent token from when no option names one.
const AGENT_TOKEN_ENV: &str = "CLAWGATE_AGENT_TOKEN";

/// The agent token for `mcp-stdio` and where it came from: `--token-env VAR` (must be set),
/// `--token-file PATH` (must be readable and non-empty), else `CLAWGATE_AGENT_TOKEN` if set.
fn agent_token(env: Option<&str>, file: Option<&Path>) -> Result<Option<(String, String)>> {
    let from_env = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    if let Some(var) = env {
        let token = from_env(var).with_context(|| {
            format!("--token-env {var}: the environment variable {var} is not set or empty")
        })?;
        return Ok(Some((token, format!("${var}"))));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file: cannot read {}", path.display()))?;
        let token = text.trim();
        anyhow::ensure!(
            !token.is_empty(),
            "--token-file: {} is empty",
            path.display()
        );
        return Ok(Some((token.to_string(), path.display().to_string())));
    }
    Ok(from_env(AGENT_TOKEN_ENV).map(|t| (t, format!("${AGENT_TOKEN_ENV}"))))
}
