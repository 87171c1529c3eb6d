//! TLS for clawgate: the certificate authority (`certs init`, leaf certificates minted on the
//! fly for TLS inspection), server configurations for the listeners (optionally with client
//! certificates, mTLS), and the client configuration used to verify upstream servers.
//!
//! One crypto provider (aws-lc-rs) is used everywhere, passed explicitly so that no
//! process-wide default has to be installed.

pub mod ca;
pub mod init;
pub(crate) mod listener;
mod settings;

pub use settings::ListenerTls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not valid PEM: {message}")]
    InvalidPem { path: PathBuf, message: String },
    #[error("{path} holds no PEM private key (expected -----BEGIN PRIVATE KEY-----)")]
    NoPrivateKey { path: PathBuf },
    #[error("{path}: {message}")]
    Unusable { path: PathBuf, message: String },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid certificate name {name:?}: {source}")]
    InvalidName { name: String, source: rcgen::Error },
    #[error("agent name {name:?} cannot name a file: use letters, digits, '-', '_' and '.'")]
    InvalidAgentName { name: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every clawgate TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file, in order (a leaf followed by its intermediates, or a
/// bundle of roots). A file with none is an error.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidPem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        e => TlsError::InvalidPem {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    })
}

/// A client configuration that verifies upstream servers against the webpki roots (Mozilla's
/// list) plus every certificate in `extra_roots` (PEM files, e.g. a corporate CA).
pub fn upstream_client_config(extra_roots: &[PathBuf]) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in extra_roots {
        for cert in load_certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::Unusable {
                path: path.clone(),
                message: format!("not a usable root certificate: {e}"),
            })?;
        }
    }
    // No ALPN protocols: the caller sets the ones its HTTP client speaks.
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_certificates(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let err = load_certificates(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = load_private_key(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM private key"),
            "{err}"
        );
    }

    #[test]
    fn upstream_config_takes_extra_roots() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca::CertificateAuthority::create("test CA", 1).unwrap();
        let path = dir.path().join("extra.pem");
        std::fs::write(&path, ca.cert_pem()).unwrap();
        upstream_client_config(&[path]).unwrap();
        let bad = dir.path().join("none.pem");
        assert!(upstream_client_config(&[bad]).is_err());
    }
}
