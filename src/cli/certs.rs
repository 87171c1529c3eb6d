//! `clawgate certs init`: a CA, a server certificate and agent client certificates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use clawgate::tls::init::{CA_CERT, InitOptions, init};

#[derive(Subcommand)]
pub enum CertsCommand {
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

pub fn run(cmd: CertsCommand) -> Result<ExitCode> {
    let CertsCommand::Init {
        dir,
        hosts,
        agents,
        days,
        force,
    } = cmd;
    let opts = InitOptions {
        dir,
        hosts,
        agents,
        days,
        force,
    };
    let written = init(&opts)?;
    for file in &written {
        if file.private_key {
            println!("wrote {} (private key, mode 0600)", file.path.display());
        } else {
            println!("wrote {}", file.path.display());
        }
    }
    let ca = opts.dir.join(CA_CERT);
    let ca = std::path::absolute(&ca).unwrap_or(ca);
    println!(
        "\nTrust the CA in OpenClaw (Node.js) before starting it:\n  export NODE_EXTRA_CA_CERTS={}",
        ca.display()
    );
    println!("Keep the .key files private; never commit them.");
    Ok(ExitCode::SUCCESS)
}
