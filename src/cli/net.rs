//! `clawgate net rules`: the iptables and ip6tables rules of transparent mode. All outbound
//! TCP of every user but clawgate's own is redirected to the transparent listener, DNS (UDP
//! and TCP port 53) to the DNS forwarder, loopback to clawgate's agent and egress listeners is
//! let through, and everything else those users send is dropped. Printed as a shell script,
//! or applied with `--apply` (needs CAP_NET_ADMIN: an init container, or root).

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum NetCommand {
    /// Print (or, with --apply, apply) the iptables/ip6tables rules that send every other
    /// user's traffic through clawgate: TCP to the transparent listener, DNS to the DNS
    /// forwarder, everything else dropped. clawgate's own user (--uid) is exempt.
    Rules(RulesArgs),
}

#[derive(Args)]
pub struct RulesArgs {
    /// The numeric uid clawgate runs as: its own connections go out directly.
    #[arg(long)]
    uid: u32,
    /// Port of [listeners.transparent] addrs.
    #[arg(long, default_value_t = 15001)]
    transparent_port: u16,
    /// Port of [listeners.transparent] dns_addrs.
    #[arg(long, default_value_t = 15053)]
    dns_port: u16,
    /// Port of the agent listener on loopback (let through, not redirected).
    #[arg(long, default_value_t = 9480)]
    agent_port: u16,
    /// Port of the egress listener on loopback (let through, not redirected).
    #[arg(long, default_value_t = 9481)]
    egress_port: u16,
    /// Apply the rules instead of printing them.
    #[arg(long)]
    apply: bool,
    /// Only IPv4 (for a machine without IPv6; IPv6 traffic is then not governed at all).
    #[arg(long)]
    ipv4_only: bool,
}

/// The chain clawgate owns in the nat and filter tables (flushed and refilled on apply).
const CHAIN: &str = "CLAWGATE_OUTPUT";

/// One command: the program (`iptables`, `ip6tables`) and its arguments; `Create` may fail
/// when the chain exists, `Jump` is added only when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Create(Vec<String>),
    Run(Vec<String>),
    Jump(Vec<String>),
}

fn steps(a: &RulesArgs, v6: bool) -> Vec<Step> {
    let lo = if v6 { "::1" } else { "127.0.0.1" };
    let (uid, tp, dns) = (
        a.uid.to_string(),
        a.transparent_port.to_string(),
        a.dns_port.to_string(),
    );
    let (agent, egress) = (a.agent_port.to_string(), a.egress_port.to_string());
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for table in ["nat", "filter"] {
        out.push(Step::Create(v(&["-t", table, "-N", CHAIN])));
        out.push(Step::Run(v(&["-t", table, "-F", CHAIN])));
        let rule = |rest: &[&str]| {
            let mut r = v(&["-t", table, "-A", CHAIN]);
            r.extend(v(rest));
            Step::Run(r)
        };
        // clawgate's own traffic (its upstream connections, its DNS) leaves untouched.
        out.push(rule(&["-m", "owner", "--uid-owner", &uid, "-j", "RETURN"]));
        if table == "nat" {
            for port in [&agent, &egress] {
                out.push(rule(&[
                    "-d", lo, "-p", "tcp", "--dport", port, "-j", "RETURN",
                ]));
            }
            for proto in ["udp", "tcp"] {
                out.push(rule(&[
                    "-p",
                    proto,
                    "--dport",
                    "53",
                    "-j",
                    "REDIRECT",
                    "--to-ports",
                    &dns,
                ]));
            }
            out.push(rule(&["-p", "tcp", "-j", "REDIRECT", "--to-ports", &tp]));
        } else {
            // Packets the kernel sends on its own (resets, neighbour discovery) have no socket.
            out.push(rule(&[
                "-m",
                "owner",
                "!",
                "--socket-exists",
                "-j",
                "RETURN",
            ]));
            // The kernel's own replies go out on kernel sockets (root's, without a file):
            // resets for closed ports, and IPv6 neighbour discovery, without which clawgate
            // itself reaches no IPv6 neighbour. None carries data a user could choose.
            out.push(rule(&[
                "-p",
                "tcp",
                "--tcp-flags",
                "RST",
                "RST",
                "-j",
                "RETURN",
            ]));
            if v6 {
                for kind in [
                    "router-solicitation",
                    "neighbour-solicitation",
                    "neighbour-advertisement",
                ] {
                    out.push(rule(&[
                        "-p",
                        "ipv6-icmp",
                        "--icmpv6-type",
                        kind,
                        "-j",
                        "RETURN",
                    ]));
                }
            }
            for (proto, port) in [
                ("tcp", &tp),
                ("tcp", &dns),
                ("udp", &dns),
                ("tcp", &agent),
                ("tcp", &egress),
            ] {
                // (No `-o lo`: at this hook a redirected packet still carries the route of the
                // address it was sent to.)
                out.push(rule(&[
                    "-d", lo, "-p", proto, "--dport", port, "-j", "ACCEPT",
                ]));
            }
            out.push(rule(&["-j", "DROP"]));
        }
        out.push(Step::Jump(v(&["-t", table, "OUTPUT", "-j", CHAIN])));
    }
    out
}

fn quoted(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a == "!" {
                "'!'".to_string()
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rules as a shell script (idempotent: rerunning it replaces clawgate's chains).
fn script(a: &RulesArgs) -> String {
    let mut s = format!(
        "#!/bin/sh\n# clawgate transparent mode: every user but uid {} goes through clawgate\n\
         # (TCP -> port {}, DNS -> port {}, loopback to ports {} and {} allowed, the rest dropped).\nset -e\n",
        a.uid, a.transparent_port, a.dns_port, a.agent_port, a.egress_port
    );
    let families: &[(&str, bool)] = if a.ipv4_only {
        &[("iptables", false)]
    } else {
        &[("iptables", false), ("ip6tables", true)]
    };
    for (prog, v6) in families {
        for step in steps(a, *v6) {
            let line = match step {
                Step::Create(args) => format!("{prog} {} 2>/dev/null || true", quoted(&args)),
                Step::Run(args) => format!("{prog} {}", quoted(&args)),
                Step::Jump(args) => {
                    let (table, rest) = args.split_at(2);
                    format!(
                        "{prog} {} -C {} 2>/dev/null || {prog} {} -A {}",
                        quoted(table),
                        quoted(rest),
                        quoted(table),
                        quoted(rest)
                    )
                }
            };
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}

fn apply(a: &RulesArgs) -> Result<()> {
    let families: &[(&str, bool)] = if a.ipv4_only {
        &[("iptables", false)]
    } else {
        &[("iptables", false), ("ip6tables", true)]
    };
    let run = |prog: &str, args: &[String]| -> Result<bool> {
        let out = Command::new(prog)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {prog} (install iptables)"))?;
        Ok(out.status.success())
    };
    for (prog, v6) in families {
        for step in steps(a, *v6) {
            match step {
                Step::Create(args) => {
                    run(prog, &args)?;
                }
                Step::Run(args) => {
                    if !run(prog, &args)? {
                        let out = Command::new(prog).args(&args).output()?;
                        bail!(
                            "{prog} {} failed: {}",
                            quoted(&args),
                            String::from_utf8_lossy(&out.stderr).trim()
                        );
                    }
                }
                Step::Jump(args) => {
                    let (table, rest) = args.split_at(2);
                    let mut check = table.to_vec();
                    check.push("-C".into());
                    check.extend_from_slice(rest);
                    if !run(prog, &check)? {
                        let mut add = table.to_vec();
                        add.push("-A".into());
                        add.extend_from_slice(rest);
                        if !run(prog, &add)? {
                            bail!("{prog} {} failed", quoted(&add));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn run(cmd: NetCommand) -> Result<ExitCode> {
    match cmd {
        NetCommand::Rules(args) => {
            if args.apply {
                apply(&args)?;
                eprintln!(
                    "applied: every user but uid {} goes through clawgate (TCP port {}, DNS port {})",
                    args.uid, args.transparent_port, args.dns_port
                );
            } else {
                print!("{}", script(&args));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_exempts_clawgate_and_drops_the_rest() {
        let a = RulesArgs {
            uid: 1337,
            transparent_port: 15001,
            dns_port: 15053,
            agent_port: 9480,
            egress_port: 9481,
            apply: false,
            ipv4_only: false,
        };
        let s = script(&a);
        assert!(
            s.contains("iptables -t nat -A CLAWGATE_OUTPUT -m owner --uid-owner 1337 -j RETURN")
        );
        assert!(
            s.contains("iptables -t nat -A CLAWGATE_OUTPUT -p tcp -j REDIRECT --to-ports 15001")
        );
        assert!(s.contains(
            "ip6tables -t nat -A CLAWGATE_OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053"
        ));
        assert!(s.contains(
            "ip6tables -t filter -A CLAWGATE_OUTPUT -d ::1 -p tcp --dport 15001 -j ACCEPT"
        ));
        assert!(s.contains("iptables -t filter -A CLAWGATE_OUTPUT -j DROP"));
        assert!(s.contains(
            "iptables -t filter -A CLAWGATE_OUTPUT -m owner '!' --socket-exists -j RETURN"
        ));
    }
}
