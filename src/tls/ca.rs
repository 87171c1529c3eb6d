//! The clawgate certificate authority: created by `clawgate certs init`, loaded from its PEM
//! files to issue leaf certificates, including server certificates minted on the fly (and
//! cached) for TLS inspection.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::{TlsError, load_certificates, provider};

/// Validity of a leaf minted for TLS inspection; it is minted again after half of it.
const MINTED_LEAF_DAYS: i64 = 7;
/// Most host names whose minted leaf is kept.
const MINTED_LEAF_CACHE_ENTRIES: usize = 4096;
/// `not_before` is set this far in the past, so peers with a slightly slow clock accept it.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// A CA certificate and its signing key.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    not_after: OffsetDateTime,
    minted: quick_cache::sync::Cache<String, MintedLeaf>,
}

#[derive(Clone)]
struct MintedLeaf {
    key: Arc<CertifiedKey>,
    renew_after: Instant,
}

/// A certificate issued by the CA with its freshly generated private key.
pub struct IssuedCertificate {
    pub cert_pem: String,
    /// PKCS#8, PEM-encoded.
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA named `common_name`, valid for `days` from now.
    pub fn create(common_name: &str, days: u32) -> Result<CertificateAuthority, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "clawgate");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        // Issues leaves only, never intermediate CAs.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let (not_before, not_after) = validity(days);
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_der: cert.der().clone(),
            cert_pem: certificate_pem(cert.der()),
            issuer: Issuer::new(params, key),
            not_after,
            minted: new_cache(),
        })
    }

    /// Load a CA from its certificate and private key PEM files (as `certs init` wrote them).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertificateAuthority, TlsError> {
        let unusable = |path: &Path, message: String| TlsError::Unusable {
            path: path.to_path_buf(),
            message,
        };
        let cert_der = load_certificates(cert_path)?.remove(0);
        let key_pem = std::fs::read_to_string(key_path).map_err(|source| TlsError::Read {
            path: key_path.to_path_buf(),
            source,
        })?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| unusable(key_path, format!("not a PKCS#8 PEM private key: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| unusable(cert_path, format!("not a valid X.509 certificate: {e}")))?;
        if !parsed.is_ca() {
            return Err(unusable(
                cert_path,
                "is not a CA certificate (basic constraints CA:FALSE or missing)".into(),
            ));
        }
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(unusable(
                key_path,
                format!(
                    "is not the private key of the certificate in {}",
                    cert_path.display()
                ),
            ));
        }
        let not_after = parsed.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| unusable(cert_path, format!("cannot issue with it: {e}")))?;
        let cert_pem = certificate_pem(&cert_der);
        Ok(CertificateAuthority {
            issuer,
            cert_der,
            cert_pem,
            not_after,
            minted: new_cache(),
        })
    }

    /// The CA certificate, PEM-encoded (what clients add to their trust store).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER-encoded.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A server certificate for `hosts` (DNS names or IP addresses; the first is also the
    /// subject CN), valid for `days`.
    pub fn issue_server(&self, hosts: &[String], days: u32) -> Result<IssuedCertificate, TlsError> {
        let (not_before, not_after) = validity(days);
        self.issue(server_params(hosts, not_before, not_after)?)
    }

    /// A client certificate whose subject CN is `name` (the identity it authenticates),
    /// valid for `days`.
    pub fn issue_client(&self, name: &str, days: u32) -> Result<IssuedCertificate, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (params.not_before, params.not_after) = validity(days);
        self.issue(params)
    }

    /// A server certificate chain and key for `host`, minted on first use and reused for the
    /// same host (bounded cache) until half its validity has passed. For TLS inspection.
    pub fn leaf_for(&self, host: &str) -> Result<Arc<CertifiedKey>, TlsError> {
        let host = normalize_host(host);
        if let Some(leaf) = self.minted.get(host.as_str())
            && leaf.renew_after > Instant::now()
        {
            return Ok(leaf.key);
        }
        let now = OffsetDateTime::now_utc();
        let not_after = (now + time::Duration::days(MINTED_LEAF_DAYS)).min(self.not_after);
        let issued = self.issue(server_params(
            std::slice::from_ref(&host),
            now - BACKDATE,
            not_after,
        )?)?;
        let signing_key = provider().key_provider.load_private_key(issued.key_der)?;
        let key = Arc::new(CertifiedKey::new(
            vec![issued.cert_der, self.cert_der.clone()],
            signing_key,
        ));
        let lifetime = (not_after - now).max(time::Duration::ZERO) / 2;
        let renew_after = Instant::now()
            + std::time::Duration::try_from(lifetime).unwrap_or(std::time::Duration::ZERO);
        self.minted.insert(
            host,
            MintedLeaf {
                key: key.clone(),
                renew_after,
            },
        );
        Ok(key)
    }

    fn issue(&self, params: CertificateParams) -> Result<IssuedCertificate, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = params;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

/// PEM text of one DER certificate (base64 in lines of 64 characters).
fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

fn new_cache() -> quick_cache::sync::Cache<String, MintedLeaf> {
    quick_cache::sync::Cache::new(MINTED_LEAF_CACHE_ENTRIES)
}

/// `[::1]` and `Example.COM.` name the same certificate subjects as `::1` and `example.com`.
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn server_params(
    hosts: &[String],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, TlsError> {
    let hosts: Vec<String> = hosts.iter().map(|h| normalize_host(h)).collect();
    let mut params =
        CertificateParams::new(hosts.clone()).map_err(|source| TlsError::InvalidName {
            name: hosts.join(", "),
            source,
        })?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = hosts.first() {
        params.distinguished_name.push(DnType::CommonName, first);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

/// From an hour ago until `days` from now.
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - BACKDATE, now + time::Duration::days(days.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_between_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<CertificateAuthority>();
    }

    #[test]
    fn created_ca_round_trips_through_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create("clawgate test CA", 2).unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        std::fs::write(&cert, ca.cert_pem()).unwrap();
        std::fs::write(&key, ca.key_pem()).unwrap();
        let loaded = CertificateAuthority::load(&cert, &key).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
    }

    #[test]
    fn load_refuses_a_key_of_another_certificate_and_a_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create("one", 2).unwrap();
        let other = CertificateAuthority::create("two", 2).unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("other.key"));
        std::fs::write(&cert, ca.cert_pem()).unwrap();
        std::fs::write(&key, other.key_pem()).unwrap();
        let err = CertificateAuthority::load(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other.key") && err.contains("not the private key"),
            "{err}"
        );
        let leaf = ca.issue_client("main", 2).unwrap();
        let (leaf_cert, leaf_key) = (dir.path().join("leaf.pem"), dir.path().join("leaf.key"));
        std::fs::write(&leaf_cert, &leaf.cert_pem).unwrap();
        std::fs::write(&leaf_key, &leaf.key_pem).unwrap();
        let err = CertificateAuthority::load(&leaf_cert, &leaf_key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a CA certificate"), "{err}");
    }

    #[test]
    fn minted_leaves_are_cached_per_host_and_chain_to_the_ca() {
        let ca = CertificateAuthority::create("clawgate test CA", 2).unwrap();
        let a = ca.leaf_for("API.example.com.").unwrap();
        let again = ca.leaf_for("api.example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let other = ca.leaf_for("127.0.0.1").unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(a.cert.len(), 2);
        assert_eq!(&a.cert[1], ca.cert_der());

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("api.example.com").unwrap();
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(
                &a.cert[0],
                &a.cert[1..],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        assert!(ca.leaf_for("b\u{e9}cher.example").is_err());
    }
}
