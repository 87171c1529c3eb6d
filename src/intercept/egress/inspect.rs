//! TLS inspection (`egress.tls_inspect`): a CONNECT tunnel to an inspected host is terminated
//! with a leaf certificate minted for that host by the clawgate CA, the requests inside are
//! decided one by one as `http` actions, and allowed ones travel to the upstream over a second
//! TLS connection that verifies the upstream's real certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::destination::{self, Resolved};
use crate::gate::scope::host_matches;
use crate::tls::TlsError;
use crate::tls::ca::CertificateAuthority;

/// Time the client has to finish the TLS handshake inside an inspected tunnel.
const CLIENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The inspection settings: the CA that mints leaves, the upstream verifier and the hosts
/// that are tunnelled uninspected.
pub struct Inspector {
    ca: CertificateAuthority,
    upstream_tls: TlsConnector,
    pass_through: Vec<String>,
}

impl Inspector {
    pub fn new(
        ca_cert: &std::path::Path,
        ca_key: &std::path::Path,
        extra_roots: &[PathBuf],
        pass_through: Vec<String>,
    ) -> Result<Inspector, TlsError> {
        let ca = CertificateAuthority::load(ca_cert, ca_key)?;
        let mut upstream = crate::tls::upstream_client_config(extra_roots)?;
        // The requests inside are relayed one by one over HTTP/1.1.
        upstream.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Inspector {
            ca,
            upstream_tls: TlsConnector::from(Arc::new(upstream)),
            pass_through,
        })
    }

    /// Whether a tunnel to `host` is terminated (false: on the pass-through list).
    pub fn inspects(&self, host: &str) -> bool {
        !self.pass_through.iter().any(|p| host_matches(p, host))
    }

    /// Finish the client's TLS handshake with a leaf for `host` from the clawgate CA.
    pub async fn accept<IO>(
        &self,
        host: &str,
        client: IO,
    ) -> Result<tokio_rustls::server::TlsStream<IO>, String>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let leaf = self
            .ca
            .leaf_for(host)
            .map_err(|e| format!("cannot mint a certificate for {host}: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(leaf)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let accept = TlsAcceptor::from(Arc::new(config)).accept(client);
        match tokio::time::timeout(CLIENT_HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!(
                "the client refused clawgate's inspection certificate for {host} ({e}); \
                 trust the clawgate CA (NODE_EXTRA_CA_CERTS) or list the host in egress.pass_through"
            )),
            Err(_) => Err(format!(
                "the client did not finish the TLS handshake for {host} within {} s",
                CLIENT_HANDSHAKE_TIMEOUT.as_secs()
            )),
        }
    }

    /// The upstream side of one inspected tunnel.
    pub fn upstream(
        &self,
        dest: Resolved,
        first: TcpStream,
        connect_timeout: Duration,
    ) -> Result<TunnelUpstream, String> {
        let server_name = ServerName::try_from(dest.host.clone())
            .map_err(|e| format!("{} is not a valid TLS server name: {e}", dest.host))?;
        Ok(TunnelUpstream {
            dest,
            server_name,
            tls: self.upstream_tls.clone(),
            connect_timeout,
            first: Mutex::new(Some(first)),
            sender: Mutex::new(None),
        })
    }
}

/// The verified TLS connection from an inspected tunnel to its upstream, opened on first use
/// (on the connection whose address policy judged for the CONNECT) and reopened if it closes.
pub struct TunnelUpstream {
    dest: Resolved,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    connect_timeout: Duration,
    first: Mutex<Option<TcpStream>>,
    sender: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl TunnelUpstream {
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
        let mut sender = self.sender.lock().await;
        let mut current = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        current
            .ready()
            .await
            .map_err(|e| format!("the upstream connection closed: {e}"))?;
        let sent = current.send_request(req).await;
        *sender = Some(current);
        sent.map_err(|e| format!("the upstream did not answer: {e}"))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = match self.first.lock().await.take() {
            Some(tcp) => tcp,
            None => destination::connect(&self.dest, self.connect_timeout)
                .await
                .map_err(|e| e.to_string())?,
        };
        let handshake = self.tls.connect(self.server_name.clone(), tcp);
        let tls = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| {
                format!(
                    "the TLS handshake with {} did not finish within {} ms",
                    self.dest.host,
                    self.connect_timeout.as_millis()
                )
            })?
            .map_err(|e| {
                format!(
                    "the upstream {} failed TLS verification: {e}",
                    self.dest.host
                )
            })?;
        super::http1_sender(tls).await
    }
}
