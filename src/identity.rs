//! What a listener learned about the peer of a connection, attached to every request on it as
//! an `http::Extensions` value, so front doors and the gate never look at sockets themselves.

use std::net::SocketAddr;

/// The transport facts of the connection a request arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The remote socket address.
    pub remote: SocketAddr,
    /// The verified client certificate, when the listener requires or accepts mTLS.
    pub client_cert: Option<ClientCertificate>,
}

/// A client certificate that chained to the listener's configured client CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's common name: the agent identity it authenticates
    /// (`agent.authenticated_as` in policy input).
    pub subject: String,
}

impl PeerInfo {
    pub fn is_loopback(&self) -> bool {
        self.remote.ip().is_loopback()
    }
}
