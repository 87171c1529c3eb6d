//! The clawgate command line: parses arguments and dispatches to one `cli/` module per command.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

mod cli;

use cli::{approvals, audit, certs, config, mcp_stdio, mode, net, openclaw_config, policy, serve};

// Request handling allocates many small JSON values; mimalloc serves them faster than glibc.
// hyper's 8 KiB connection buffers come from a region where an unwritten one costs nothing
// (`clawgate::alloc`).
#[global_allocator]
static GLOBAL: clawgate::alloc::Allocator = clawgate::alloc::Allocator::new();

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
    Serve(serve::ServeArgs),
    /// Inspect and validate configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Test and evaluate policy bundles.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify, export and read the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Switch a running sidecar between enforce and shadow (admin token; audited).
    #[command(subcommand)]
    Mode(mode::ModeCommand),
    /// List, show, approve and deny approvals on a running sidecar (admin token).
    Approvals(approvals::ApprovalsArgs),
    /// Create TLS certificates for the listeners and agent identities.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Run a stdio MCP server behind clawgate: launch this as the server's command in OpenClaw.
    McpStdio(mcp_stdio::McpStdioArgs),
    /// Print the OpenClaw config fragment (plugin entry, MCP servers, egress proxy, agent
    /// credential) for this configuration.
    OpenclawConfig(openclaw_config::OpenclawConfigArgs),
    /// Transparent mode: the iptables/ip6tables rules that redirect every other user's TCP
    /// to the transparent listener and DNS to the DNS forwarder, and drop the rest.
    #[command(subcommand)]
    Net(net::NetCommand),
    /// Internal: answer shell parse requests on stdin under a memory ceiling (the sidecar
    /// starts these itself).
    #[command(name = "parse-worker", hide = true)]
    ParseWorker {
        #[arg(long)]
        memory_mib: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ParseWorker { memory_mib } = cli.command {
        return match clawgate::facts::parser_worker::serve(memory_mib) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    if matches!(cli.command, Command::Serve(_)) {
        no_huge_pages();
    }
    init_logging(cli.log_format);
    // Shell text from agents is parsed in memory-capped worker processes of this executable
    // (by its kernel handle, so replacing the file on disk changes nothing that runs).
    clawgate::facts::parser_worker::enable(std::path::PathBuf::from("/proc/self/exe"));
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Transparent huge pages off for the sidecar (and the parse workers it starts, which inherit
/// it). mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`), so with THP in the usual
/// `madvise` mode every 2 MiB of arena a connection's buffers touch became resident whole:
/// 10,000 held requests took ~100 MiB more (benches/README.md, held memory). mimalloc's own
/// switch (`MIMALLOC_ALLOW_THP=0`) is read when the process loads, before `main`, and so is the
/// first arena reserved with it; the process-wide flag set here applies to every later fault.
fn no_huge_pages() {
    // SAFETY: takes no pointers. Failing (a kernel without it) costs memory, nothing else.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Logs on stderr. Colour codes only for a terminal: a log file or a collector gets plain
/// text (and formatting without them is cheaper on the per-decision path).
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Config(cmd) => config::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Mode(cmd) => mode::run(cmd),
        Command::Approvals(args) => approvals::run(args),
        Command::Certs(cmd) => certs::run(cmd),
        Command::McpStdio(args) => mcp_stdio::run(args),
        Command::OpenclawConfig(args) => openclaw_config::run(args),
        Command::Net(cmd) => net::run(cmd),
        Command::ParseWorker { .. } => Ok(ExitCode::SUCCESS),
    }
}
