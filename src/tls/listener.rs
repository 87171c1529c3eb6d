//! Server-side TLS for the listeners: the rustls configuration from `[listeners.NAME.tls]`,
//! and the verified client certificate of a connection as a `ClientCertificate`.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use super::ListenerTls;
use super::{TlsError, load_certificates, load_private_key, provider};
use crate::identity::ClientCertificate;

/// The rustls server configuration of one listener: its certificate and key, client
/// certificate verification against `client_ca` when set (required or optional), and ALPN
/// `h2` and `http/1.1`.
pub fn server_config(tls: &ListenerTls) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certificates(&tls.cert)?;
    let key = load_private_key(&tls.key)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certificates(ca_path)? {
                roots.add(cert).map_err(|e| TlsError::Unusable {
                    path: ca_path.clone(),
                    message: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if tls.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| TlsError::Unusable {
                path: ca_path.clone(),
                message: format!("cannot verify client certificates with it: {e}"),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Unusable {
            path: tls.cert.clone(),
            message: format!(
                "cannot be served with the key in {}: {e}",
                tls.key.display()
            ),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client certificate the handshake verified, if any: its subject common name.
/// A verified certificate without a CN yields `None` (it authenticates nobody by name).
pub fn client_certificate(conn: &ServerConnection) -> Option<ClientCertificate> {
    let leaf = conn.peer_certificates()?.first()?;
    common_name(leaf).map(|subject| ClientCertificate { subject })
}

/// The first subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    let cn = cn.as_str().ok()?.trim();
    (!cn.is_empty()).then(|| cn.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ca::CertificateAuthority;

    #[test]
    fn common_name_of_an_issued_client_certificate() {
        let ca = CertificateAuthority::create("clawgate test CA", 1).unwrap();
        let client = ca.issue_client("openclaw-main", 1).unwrap();
        assert_eq!(
            common_name(&client.cert_der).as_deref(),
            Some("openclaw-main")
        );
        assert_eq!(common_name(b"not a certificate"), None);
    }

    #[test]
    fn mismatched_key_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create("clawgate test CA", 1).unwrap();
        let server = ca.issue_server(&["localhost".to_string()], 1).unwrap();
        let other = ca.issue_server(&["localhost".to_string()], 1).unwrap();
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("other.key"));
        std::fs::write(&cert, &server.cert_pem).unwrap();
        std::fs::write(&key, &other.key_pem).unwrap();
        let tls = ListenerTls {
            cert,
            key,
            client_ca: None,
            require_client_cert: false,
        };
        let err = server_config(&tls).unwrap_err().to_string();
        assert!(
            err.contains("server.pem") && err.contains("other.key"),
            "{err}"
        );
    }
}
