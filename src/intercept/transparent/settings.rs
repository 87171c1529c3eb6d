//! `[listeners.transparent]`: the transparent listener and the DNS forwarder (off unless the
//! section is present).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::settings::ConfigProblem;

/// Transparent interception: the agent's TCP connections redirected by the kernel
/// (`clawgate net rules`) and its DNS queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransparentConfig {
    /// Where redirected TCP arrives. iptables `REDIRECT` of locally sent traffic delivers
    /// IPv4 to 127.0.0.1 and IPv6 to ::1 on the given port. An IPv6 address that cannot be
    /// bound (IPv6 off) is skipped with a warning.
    pub addrs: Vec<SocketAddr>,
    /// Time a redirected connection has to show what it is (a TLS ClientHello, an HTTP
    /// request head, or any first bytes). A client that says nothing in time is refused:
    /// protocols where the server speaks first (SMTP, MySQL) do not pass this listener.
    pub peek_timeout_ms: u64,
    /// Redirected connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Where redirected DNS (UDP and TCP port 53) arrives; empty: no DNS forwarder.
    pub dns_addrs: Vec<SocketAddr>,
    /// The resolver allowed queries are forwarded to. Default: the first `nameserver` of
    /// `/etc/resolv.conf` (the system resolver), port 53.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_upstream: Option<SocketAddr>,
    /// Time the upstream resolver has to answer one query (milliseconds).
    pub dns_timeout_ms: u64,
}

impl Default for TransparentConfig {
    fn default() -> Self {
        TransparentConfig {
            addrs: vec![
                SocketAddr::from(([127, 0, 0, 1], 15001)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 15001)),
            ],
            peek_timeout_ms: 3_000,
            max_connections: 4_096,
            dns_addrs: vec![
                SocketAddr::from(([127, 0, 0, 1], 15053)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 15053)),
            ],
            dns_upstream: None,
            dns_timeout_ms: 5_000,
        }
    }
}

impl TransparentConfig {
    /// Checks that types alone cannot express.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let key = |k: &str| format!("listeners.transparent.{k}");
        let mut out = Vec::new();
        if self.addrs.is_empty() {
            out.push(ConfigProblem::new(
                key("addrs"),
                "must name at least one address",
                "use [\"127.0.0.1:15001\", \"[::1]:15001\"] (the defaults), or remove [listeners.transparent]",
            ));
        }
        if self.peek_timeout_ms == 0 || self.peek_timeout_ms > 60_000 {
            out.push(ConfigProblem::new(
                key("peek_timeout_ms"),
                format!("{} is out of range", self.peek_timeout_ms),
                "use a value between 1 and 60000 (default 3000)",
            ));
        }
        if self.max_connections == 0 {
            out.push(ConfigProblem::new(
                key("max_connections"),
                "must be at least 1",
                "use a positive count (default 4096)",
            ));
        }
        if self.dns_timeout_ms == 0 || self.dns_timeout_ms > 60_000 {
            out.push(ConfigProblem::new(
                key("dns_timeout_ms"),
                format!("{} is out of range", self.dns_timeout_ms),
                "use a value between 1 and 60000 (default 5000)",
            ));
        }
        if let Some(up) = self.dns_upstream
            && self.dns_addrs.contains(&up)
        {
            out.push(ConfigProblem::new(
                key("dns_upstream"),
                format!("{up} is the forwarder's own address"),
                "name the resolver queries go to, not a listener of clawgate",
            ));
        }
        out
    }
}

/// The first `nameserver` of a resolv.conf text, port 53.
pub fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            .and_then(|ip| ip.split('%').next())
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_from_resolv_conf() {
        let conf = "# generated\nsearch x.svc\nnameserver 10.96.0.10\nnameserver 1.1.1.1\n";
        assert_eq!(
            first_nameserver(conf),
            Some("10.96.0.10:53".parse().unwrap())
        );
        assert_eq!(
            first_nameserver("nameserver fe80::1%eth0\n"),
            Some("[fe80::1]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver("options ndots:5\n"), None);
    }

    #[test]
    fn problems_name_their_key() {
        let mut c = TransparentConfig::default();
        assert!(c.problems().is_empty());
        c.peek_timeout_ms = 0;
        c.dns_upstream = c.dns_addrs.first().copied();
        c.addrs.clear();
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "listeners.transparent.addrs",
                "listeners.transparent.peek_timeout_ms",
                "listeners.transparent.dns_upstream"
            ]
        );
    }
}
