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

    /// The identity the transport authenticated for a request: the subject of the verified
    /// client certificate on its connection, if any (`agent.authenticated_as`).
    pub fn authenticated_as(extensions: &http::Extensions) -> Option<String> {
        let peer = extensions.get::<PeerInfo>()?;
        peer.client_cert.as_ref().map(|c| c.subject.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticated_as_is_the_client_certificate_subject() {
        let mut extensions = http::Extensions::new();
        assert_eq!(PeerInfo::authenticated_as(&extensions), None);
        let remote: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        extensions.insert(PeerInfo {
            remote,
            client_cert: None,
        });
        assert_eq!(PeerInfo::authenticated_as(&extensions), None);
        extensions.insert(PeerInfo {
            remote,
            client_cert: Some(ClientCertificate {
                subject: "openclaw-main".into(),
            }),
        });
        assert_eq!(
            PeerInfo::authenticated_as(&extensions).as_deref(),
            Some("openclaw-main")
        );
    }
}
