//! Who opened a redirected connection: the user that owns the connecting socket.
//!
//! A redirected connection carries no credential, but the kernel keeps the owner of every
//! socket. The agent's socket is the row of this network namespace's TCP table
//! (`/proc/self/net/tcp`, `tcp6`) whose local address is the peer the listener accepted and
//! whose remote address is the original destination (REDIRECT rewrites packets, not the
//! socket); a DNS query over UDP comes from the row of the UDP table whose local address is
//! the query's source. Its uid names the identity (`[identities.NAME] uid`).

use std::net::SocketAddr;

use super::origdst::canonical;
use crate::action::AgentIdentity;
use crate::identity::Identities;
use crate::intercept::egress::agent_identity;

/// The agent behind a redirected connection from `peer` to `orig` (the socket table is read
/// on a blocking thread).
pub async fn connection_agent(
    identities: &Identities,
    peer: SocketAddr,
    orig: SocketAddr,
) -> AgentIdentity {
    let uid = tokio::task::spawn_blocking(move || connecting_uid(peer, orig))
        .await
        .ok()
        .flatten();
    agent_owning(identities, uid)
}

/// The agent behind a datagram from `peer` (a DNS query over UDP).
pub async fn datagram_agent(identities: &Identities, peer: SocketAddr) -> AgentIdentity {
    let uid = tokio::task::spawn_blocking(move || sending_uid(peer))
        .await
        .ok()
        .flatten();
    agent_owning(identities, uid)
}

/// The agent behind traffic whose socket `uid` owns: the identity with that `uid`, else an
/// unnamed agent called `uid:N` (or nothing, when the owner is unknown).
fn agent_owning(identities: &Identities, uid: Option<u32>) -> AgentIdentity {
    match uid.and_then(|u| identities.by_uid(u)) {
        Some(auth) => agent_identity(&auth),
        None => AgentIdentity {
            id: uid.map(|u| format!("uid:{u}")),
            ..AgentIdentity::default()
        },
    }
}

/// The uid owning the UDP socket that sent from `peer` (a DNS query); `None` when no row
/// matches.
pub fn sending_uid(peer: SocketAddr) -> Option<u32> {
    let peer = canonical(peer);
    let tables = match peer {
        SocketAddr::V4(_) => [procfs::net::udp(), procfs::net::udp6()],
        SocketAddr::V6(_) => [procfs::net::udp6(), procfs::net::udp()],
    };
    first_owner(tables, "UDP", |row| {
        (canonical(row.local_address) == peer).then_some(row.uid)
    })
}

/// The uid owning the socket that connected from `peer` to `orig`; `None` when no row
/// matches (the socket is gone already, or it lives in another network namespace) or the
/// table cannot be read.
pub fn connecting_uid(peer: SocketAddr, orig: SocketAddr) -> Option<u32> {
    let (peer, orig) = (canonical(peer), canonical(orig));
    // An IPv4 socket can also be an IPv6 one with mapped addresses: look in both tables.
    let tables = match peer {
        SocketAddr::V4(_) => [procfs::net::tcp(), procfs::net::tcp6()],
        SocketAddr::V6(_) => [procfs::net::tcp6(), procfs::net::tcp()],
    };
    first_owner(tables, "TCP", |row| {
        (canonical(row.local_address) == peer && canonical(row.remote_address) == orig)
            .then_some(row.uid)
    })
}

/// The uid of the first row of the socket tables that `owner_of` picks; a table that
/// cannot be read is skipped (and logged).
fn first_owner<R>(
    tables: [procfs::ProcResult<Vec<R>>; 2],
    protocol: &str,
    owner_of: impl Fn(&R) -> Option<u32>,
) -> Option<u32> {
    tables
        .into_iter()
        .filter_map(|t| {
            t.map_err(|e| tracing::debug!(error = %e, "cannot read the {protocol} socket table"))
                .ok()
        })
        .flatten()
        .find_map(|row| owner_of(&row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn the_owner_of_a_loopback_connection_is_this_process_user() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        let client = TcpStream::connect(to).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // SAFETY: getuid has no preconditions and touches no memory.
        let me = unsafe { libc::getuid() };
        assert_eq!(connecting_uid(peer, to), Some(me));
        // Another destination: not this socket.
        let elsewhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(connecting_uid(peer, elsewhere), None);
    }

    #[test]
    fn the_owner_of_a_udp_sender_is_this_process_user() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // SAFETY: getuid has no preconditions and touches no memory.
        let me = unsafe { libc::getuid() };
        assert_eq!(sending_uid(sender.local_addr().unwrap()), Some(me));
        drop(sender);
    }
}
