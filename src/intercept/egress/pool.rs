//! Idle upstream HTTP/1.1 connections of the plain-HTTP egress path, kept for reuse. A
//! connection is reused only for a request to the same judged destination: the same host, port
//! and resolved addresses, the ones policy judged for that request (nothing is resolved again,
//! so reuse cannot carry a request to an address no decision saw).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

use super::destination::Resolved;

/// Idle connections kept per destination.
const MAX_IDLE_PER_DESTINATION: usize = 16;
/// Destinations with idle connections; a new one past this is not kept.
const MAX_DESTINATIONS: usize = 1024;
/// An idle connection older than this is closed rather than reused (upstreams close idle
/// keep-alive connections after a while; a reused one that they closed fails the request).
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Where a kept connection leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    host: String,
    port: u16,
    addrs: Vec<IpAddr>,
}

impl PoolKey {
    pub fn of(dest: &Resolved) -> PoolKey {
        PoolKey {
            host: dest.host.to_ascii_lowercase(),
            port: dest.port,
            addrs: dest.addrs.clone(),
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;

#[derive(Default)]
pub struct UpstreamPool {
    idle: Mutex<HashMap<PoolKey, Vec<(Instant, Sender)>>>,
}

impl UpstreamPool {
    /// An idle, open connection to `key`, newest first; stale and closed ones are dropped.
    pub fn take(&self, key: &PoolKey) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let senders = idle.get_mut(key)?;
        let mut found = None;
        while let Some((since, sender)) = senders.pop() {
            if since.elapsed() < IDLE_FOR && sender.is_ready() {
                found = Some(sender);
                break;
            }
        }
        if senders.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keep `sender` once its response has been read to the end and the connection is idle
    /// again (in the background; a connection that closes or stays busy is let go).
    pub fn keep(self: &Arc<Self>, key: PoolKey, mut sender: Sender) {
        let pool = self.clone();
        tokio::spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(IDLE_FOR, sender.ready()).await {
                pool.put(key, sender);
            }
        });
    }

    fn put(&self, key: PoolKey, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_DESTINATIONS && !idle.contains_key(&key) {
            return;
        }
        let senders = idle.entry(key).or_default();
        if senders.len() < MAX_IDLE_PER_DESTINATION {
            senders.push((Instant::now(), sender));
        }
    }
}
