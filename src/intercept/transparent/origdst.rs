//! Where a redirected connection was going: the kernel's NAT keeps the original destination
//! of a `REDIRECT`ed connection, and `getsockopt(SO_ORIGINAL_DST)` (IPv4) or
//! `getsockopt(IP6T_SO_ORIGINAL_DST)` (IPv6) hands it back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// `SO_ORIGINAL_DST` (linux/netfilter_ipv4.h) and `IP6T_SO_ORIGINAL_DST`
/// (linux/netfilter_ipv6/ip6_tables.h) share the number 80.
const SO_ORIGINAL_DST: libc::c_int = 80;
const IP6T_SO_ORIGINAL_DST: libc::c_int = 80;

/// The address the client dialled before the kernel redirected it here. On a connection that
/// was not redirected the kernel answers with the listener's own address (or an error when
/// the connection is not tracked at all).
pub fn original_destination(stream: &tokio::net::TcpStream) -> std::io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    let fd = stream.as_raw_fd();
    let is_v4 = match local {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    };
    if is_v4 {
        // SAFETY: a zeroed sockaddr_in is a valid value; the kernel writes at most `len` bytes
        // into it and the fd is a live TCP socket owned by `stream`.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_IP,
                SO_ORIGINAL_DST,
                (&mut addr as *mut libc::sockaddr_in).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if i32::from(addr.sin_family) != libc::AF_INET {
            return Err(std::io::Error::other(
                "SO_ORIGINAL_DST gave no IPv4 address",
            ));
        }
        let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
        Ok(SocketAddr::new(IpAddr::V4(ip), u16::from_be(addr.sin_port)))
    } else {
        // SAFETY: as above, with sockaddr_in6.
        let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_IPV6,
                IP6T_SO_ORIGINAL_DST,
                (&mut addr as *mut libc::sockaddr_in6).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if i32::from(addr.sin6_family) != libc::AF_INET6 {
            return Err(std::io::Error::other(
                "IP6T_SO_ORIGINAL_DST gave no IPv6 address",
            ));
        }
        let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
        Ok(SocketAddr::new(
            IpAddr::V6(ip),
            u16::from_be(addr.sin6_port),
        ))
    }
}

/// The same address written one way: an IPv4-mapped IPv6 address as its IPv4 address.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_read_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:443".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.1:443".parse().unwrap());
        let v6: SocketAddr = "[fd00::1]:443".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[tokio::test]
    async fn a_connection_that_was_not_redirected_has_no_other_destination() {
        // Without NAT the kernel reports the listener's own address, or no entry at all.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        match original_destination(&server) {
            Ok(orig) => assert_eq!(canonical(orig), addr),
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
    }
}
