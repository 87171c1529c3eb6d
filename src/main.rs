//! The clawgate command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod cli_admin;
mod cli_approvals;
mod cli_audit;
mod cli_openclaw;

use clawgate::config::{Config, Mode};

// Request handling allocates many small JSON values; mimalloc serves them faster than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clawgate::gate::policy::testing::{self, TestOutcome};
use clawgate::gate::policy::{Bundle, BundleFiles, PolicyEngine};

#[derive(Parser)]
#[command(
    name = "clawgate",
    version,
    about = "Policy, approval and audit sidecar for OpenClaw agents"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar (embedded defaults unless --config is given).
    Serve(ServeArgs),
    /// Inspect and validate configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Test and evaluate policy bundles.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Verify, export and read the audit log.
    #[command(subcommand)]
    Audit(cli_audit::AuditCommand),
    /// Switch a running sidecar between enforce and shadow (admin token; audited).
    #[command(subcommand)]
    Mode(ModeCommand),
    /// List, show, approve and deny approvals on a running sidecar (admin token).
    Approvals(cli_approvals::ApprovalsArgs),
    /// Create TLS certificates for the listeners and agent identities.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Run a stdio MCP server behind clawgate: launch this as the server's command in OpenClaw.
    McpStdio(McpStdioArgs),
    /// Print the OpenClaw config fragment (plugin entry, MCP servers, egress proxy, agent
    /// credential) for this configuration.
    OpenclawConfig {
        /// clawgate config file (the embedded defaults when omitted).
        #[arg(long, env = "CLAWGATE_CONFIG")]
        config: Option<PathBuf>,
        /// The clawgate OpenClaw plugin folder (holds openclaw.plugin.json).
        #[arg(long, default_value = "examples/openclaw-plugin")]
        plugin_path: PathBuf,
        /// The agent id MCP calls are attributed to.
        #[arg(long, default_value = "main")]
        agent: String,
        /// The identity ([identities.NAME]) the agent authenticates as; required when
        /// identities are configured unless --token-env names one by its token.
        #[arg(long, value_name = "NAME")]
        identity: Option<String>,
        /// Write the token from this environment variable into the fragment (checked against
        /// the identity's token_sha256). Without it, the fragment says ${CLAWGATE_AGENT_TOKEN},
        /// which OpenClaw fills in from its own environment.
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
    },
}

#[derive(Args)]
struct McpStdioArgs {
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

#[derive(Args)]
struct ServeArgs {
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

#[derive(Clone, Copy, ValueEnum)]
enum CliMode {
    Enforce,
    Shadow,
}

#[derive(Subcommand)]
enum ModeCommand {
    /// Set the mode of a running sidecar.
    Set {
        #[arg(value_enum)]
        mode: CliMode,
        #[command(flatten)]
        admin: cli_admin::AdminConnection,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a CA (ca.pem, ca.key), a server certificate (server.pem, server.key) and one
    /// client certificate per agent (agent-NAME.pem, agent-NAME.key) into a directory.
    Init {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// DNS name or IP address the server certificate is valid for (repeatable).
        #[arg(long = "host", default_values = ["localhost", "127.0.0.1", "::1"])]
        hosts: Vec<String>,
        /// Agent identity to issue a client certificate for; its subject CN (repeatable).
        #[arg(long = "agent", default_values = ["main"])]
        agents: Vec<String>,
        /// Validity of every certificate, in days.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file; print each problem with its key and a fix.
    Check { file: PathBuf },
    /// Print the embedded defaults as TOML.
    Default,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run every `test_*` rule of a bundle (the embedded one when DIR is omitted).
    Test {
        dir: Option<PathBuf>,
        /// Show policy lines that no test evaluated.
        #[arg(long)]
        coverage: bool,
    },
    /// Print the decision for one policy input document.
    Eval {
        /// JSON file holding the policy input (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Bundle directory (the embedded one when omitted).
        dir: Option<PathBuf>,
    },
    /// Make a running sidecar re-read its policy bundle now (admin token; audited).
    Reload {
        #[command(flatten)]
        admin: cli_admin::AdminConnection,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Config(ConfigCommand::Check { file }) => config_check(&file),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", Config::default_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::Test { dir, coverage }) => policy_test(dir, coverage),
        Command::Policy(PolicyCommand::Eval { input, dir }) => policy_eval(&input, dir),
        Command::Policy(PolicyCommand::Reload { admin }) => cli_admin::reload_policy(&admin),
        Command::Mode(ModeCommand::Set { mode, admin }) => {
            let mode = match mode {
                CliMode::Enforce => Mode::Enforce,
                CliMode::Shadow => Mode::Shadow,
            };
            cli_admin::set_mode(&admin, mode.as_str())
        }
        Command::Audit(cmd) => cli_audit::run(cmd),
        Command::Approvals(args) => cli_approvals::run(args),
        Command::Certs(CertsCommand::Init {
            dir,
            hosts,
            agents,
            days,
            force,
        }) => certs_init(clawgate::tls::init::InitOptions {
            dir,
            hosts,
            agents,
            days,
            force,
        }),
        Command::McpStdio(args) => mcp_stdio(args),
        Command::OpenclawConfig {
            config,
            plugin_path,
            agent,
            identity,
            token_env,
        } => cli_openclaw::run(cli_openclaw::Options {
            config,
            plugin_path,
            agent,
            identity,
            token_env,
        })
        .map(|()| ExitCode::SUCCESS),
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    }
    .with_secrets_from_env();
    if let Some(dir) = args.policy_dir {
        config.policy.dir = Some(dir);
    }
    if let Some(mode) = args.mode {
        config.mode = match mode {
            CliMode::Enforce => Mode::Enforce,
            CliMode::Shadow => Mode::Shadow,
        };
    }
    let problems = config.validate();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  - {p}");
        }
        anyhow::bail!("configuration has {} problem(s)", problems.len());
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(clawgate::server::run(config))?;
    Ok(ExitCode::SUCCESS)
}

fn certs_init(opts: clawgate::tls::init::InitOptions) -> Result<ExitCode> {
    let written = clawgate::tls::init::init(&opts)?;
    for file in &written {
        if file.private_key {
            println!("wrote {} (private key, mode 0600)", file.path.display());
        } else {
            println!("wrote {}", file.path.display());
        }
    }
    let ca = opts.dir.join(clawgate::tls::init::CA_CERT);
    let ca = std::path::absolute(&ca).unwrap_or(ca);
    println!(
        "\nTrust the CA in OpenClaw (Node.js) before starting it:\n  export NODE_EXTRA_CA_CERTS={}",
        ca.display()
    );
    println!("Keep the .key files private; never commit them.");
    Ok(ExitCode::SUCCESS)
}

fn mcp_stdio(args: McpStdioArgs) -> Result<ExitCode> {
    use clawgate::intercept::mcp::stdio::{StdioRelay, bearer, run};
    let token = match agent_token(args.token_env.as_deref(), args.token_file.as_deref())? {
        Some((token, from)) => Some(bearer(&token).with_context(|| {
            format!("the token from {from} has characters a header cannot carry")
        })?),
        None => None,
    };
    let relay = StdioRelay {
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
    let code = runtime.block_on(run(relay))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The environment variable `mcp-stdio` reads the agent token from when no option names one.
const AGENT_TOKEN_ENV: &str = "CLAWGATE_AGENT_TOKEN";

/// The agent token for `mcp-stdio` and where it came from: `--token-env VAR` (must be set),
/// `--token-file PATH` (must be readable and non-empty), else `CLAWGATE_AGENT_TOKEN` if set.
fn agent_token(
    env: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<(String, String)>> {
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

fn config_check(file: &std::path::Path) -> Result<ExitCode> {
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

fn policy_test(dir: Option<PathBuf>, coverage: bool) -> Result<ExitCode> {
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

fn policy_eval(input: &std::path::Path, dir: Option<PathBuf>) -> Result<ExitCode> {
    let text = if input.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("cannot read {}", input.display()))?
    };
    let input: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", input.display()))?;
    let engine = PolicyEngine::load(dir.as_deref(), Duration::from_millis(1000))?;
    let (verdict, revision) = engine.evaluate(&input);
    let (out, code) = match verdict {
        Ok(v) => (
            serde_json::json!({"policy_revision": revision, "decision": v}),
            0,
        ),
        Err(e) => (
            serde_json::json!({"policy_revision": revision, "error": e.to_string(),
                "decision": {"effect": "deny", "risk": "high", "reasons": [e.to_string()]}}),
            2,
        ),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::from(code))
}
