//! Where an egress request really goes: clawgate resolves the name itself, hands every address
//! to policy, and later connects only to an address that policy saw. A DNS answer that changes
//! between the check and the connect (rebinding) therefore changes nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

pub use crate::facts::url::{embedded_ipv4, normalize_host};

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("{host} resolved to no addresses")]
    NoAddresses { host: String },
    #[error("cannot connect to {host} ({addrs}): {reason}")]
    Connect {
        host: String,
        addrs: String,
        reason: String,
    },
}

/// A destination with the addresses clawgate resolved for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub host: String,
    pub port: u16,
    /// The addresses the connection may use, in resolver order.
    pub addrs: Vec<IpAddr>,
    /// Transparent interception: where `host` came from (`sni`, `http_host`, `address`) and
    /// whether that claim resolves to the dialled address (`action.dest.host_from`,
    /// `action.dest.host_resolves`). `None` on the egress proxy.
    pub host_from: Option<&'static str>,
    pub host_resolves: Option<bool>,
}

impl Resolved {
    /// Every address policy must judge: the resolved ones, plus the IPv4 address embedded in
    /// any IPv6 one (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo), so that a private
    /// IPv4 hidden inside an IPv6 address is caught by the IPv4 ranges too.
    pub fn policy_ips(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.addrs.len());
        let mut push = |s: String| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        for ip in &self.addrs {
            push(ip.to_string());
            if let IpAddr::V6(v6) = ip {
                for v4 in embedded_ipv4(v6) {
                    push(v4.to_string());
                }
            }
        }
        out
    }
}

/// Resolves names for the egress proxy: IP literals as they are, names in the static map
/// (`egress.resolve`) without DNS, everything else through the system resolver.
#[derive(Debug, Clone)]
pub struct Resolver {
    pinned: BTreeMap<String, Vec<IpAddr>>,
    timeout: Duration,
}

impl Resolver {
    pub fn new(pinned: BTreeMap<String, Vec<IpAddr>>, timeout: Duration) -> Resolver {
        let pinned = pinned
            .into_iter()
            .map(|(k, v)| (normalize_host(&k), v))
            .collect();
        Resolver { pinned, timeout }
    }

    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolved, DestinationError> {
        let host = normalize_host(host);
        let addrs = if let Ok(ip) = host.parse::<IpAddr>() {
            vec![ip]
        } else if let Some(ips) = self.pinned.get(&host) {
            ips.clone()
        } else {
            let lookup = tokio::net::lookup_host((host.as_str(), port));
            let found = tokio::time::timeout(self.timeout, lookup)
                .await
                .map_err(|_| DestinationError::Resolve {
                    host: host.clone(),
                    reason: format!("no answer within {} ms", self.timeout.as_millis()),
                })?
                .map_err(|e| DestinationError::Resolve {
                    host: host.clone(),
                    reason: e.to_string(),
                })?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for a in found {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            ips
        };
        if addrs.is_empty() {
            return Err(DestinationError::NoAddresses { host });
        }
        Ok(Resolved {
            host,
            port,
            addrs,
            host_from: None,
            host_resolves: None,
        })
    }
}

/// Connect to one of the addresses policy judged, in order, each within `timeout`.
pub async fn connect(dest: &Resolved, timeout: Duration) -> Result<TcpStream, DestinationError> {
    let mut last = String::from("no address tried");
    for ip in &dest.addrs {
        let addr = SocketAddr::new(*ip, dest.port);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no connection within {} ms", timeout.as_millis()),
        }
    }
    Err(DestinationError::Connect {
        host: dest.host.clone(),
        addrs: dest
            .addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reason: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pinned_names_and_literals_skip_dns() {
        let mut pins = BTreeMap::new();
        pins.insert(
            "Api.Example.COM.".to_string(),
            vec!["10.1.2.3".parse().unwrap()],
        );
        let r = Resolver::new(pins, Duration::from_secs(1));
        let d = r.resolve("api.example.com", 443).await.unwrap();
        assert_eq!(d.addrs, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        let d = r.resolve("[::ffff:10.0.0.9]", 80).await.unwrap();
        assert_eq!(d.policy_ips(), ["::ffff:10.0.0.9", "10.0.0.9"]);
    }
}
