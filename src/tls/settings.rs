//! `[listeners.NAME.tls]`: a listener's certificate, key and client certificate CA.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::ConfigProblem;

/// TLS on one listener; with `client_ca`, clients may (or with `require_client_cert`, must)
/// present a certificate issued by it, whose subject CN becomes `agent.authenticated_as`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM server certificate chain (leaf first), e.g. `certs/server.pem`.
    pub cert: PathBuf,
    /// PEM private key of that certificate, e.g. `certs/server.key`.
    pub key: PathBuf,
    /// PEM CA certificate(s) that client certificates must chain to, e.g. `certs/ca.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Refuse the handshake of a client without a valid certificate (needs `client_ca`).
    #[serde(default)]
    pub require_client_cert: bool,
}

impl ListenerTls {
    /// Checks that types alone cannot express; `listener` is its key under `[listeners]`.
    pub fn problems(&self, listener: &str) -> Vec<ConfigProblem> {
        let tls = self;
        let key = |k: &str| format!("listeners.{listener}.tls.{k}");
        let mut problems = Vec::new();
        let files = [
            (
                "cert",
                Some(&tls.cert),
                "a PEM certificate chain, e.g. certs/server.pem",
            ),
            (
                "key",
                Some(&tls.key),
                "its PEM private key, e.g. certs/server.key",
            ),
            (
                "client_ca",
                tls.client_ca.as_ref(),
                "a PEM CA certificate, e.g. certs/ca.pem",
            ),
        ];
        for (name, path, what) in files {
            if let Some(path) = path
                && !path.is_file()
            {
                problems.push(ConfigProblem {
                    key: key(name),
                    message: format!("{} is not a readable file", path.display()),
                    fix: format!("point it at {what} (`clawgate certs init` makes them)"),
                });
            }
        }
        if tls.require_client_cert && tls.client_ca.is_none() {
            problems.push(ConfigProblem {
                key: key("require_client_cert"),
                message: "client certificates are required but no client_ca verifies them".into(),
                fix: format!(
                    "set {} to the CA that issued the client certificates",
                    key("client_ca")
                ),
            });
        }
        problems
    }
}
