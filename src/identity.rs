//! Who is on the other end of a request: what a listener learned about the peer of a
//! connection ([`PeerInfo`], attached to every request as an `http::Extensions` value, so
//! front doors and the gate never look at sockets themselves), and the configured agent
//! identities ([`Identities`]) that the agent and egress listeners authenticate against.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::http_api::{ApiError, ResponseBody};
use crate::settings::ConfigProblem;
use crate::token::{TokenHash, credential};

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

/// What an identity may do at all, whatever policy says (`[identities.NAME.scopes]`). An
/// absent list leaves that dimension unrestricted; an empty list allows nothing. Passed to
/// policy as `input.agent.scopes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scopes {
    /// Tool groups (`data.clawgate.tools.<tool>.group` in the policy bundle; a tool not in
    /// the catalog is in group `unknown`) the identity may call through `/v1/check`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_groups: Option<Vec<String>>,
    /// MCP servers (`[mcp.servers.NAME]`) the identity may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Vec<String>>,
    /// Hosts the identity may reach through the egress proxy: glob patterns where `*` is one
    /// DNS label and `**` any number of labels (`*.github.com`, `**.internal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_hosts: Option<Vec<String>>,
    /// Environments (`environment` in config) the identity may act in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
}

/// `[identities.NAME]` in config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Hex SHA-256 of the identity's bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The common name of the mTLS client certificate that authenticates as this identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<String>,
    /// The Unix user the agent runs as. Connections the kernel redirects to the transparent
    /// listener (`[listeners.transparent]`) carry no credential; the user that owns the
    /// connecting socket is the kernel's word for who opened it, so they are this identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    pub scopes: Scopes,
    /// The home directory of the agent acting as this identity, when it is not `[facts] home`
    /// (what `~` and `$HOME` mean in its commands and paths).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
}

/// `[identities.NAME]`: checks that types alone cannot express (a credential each, one
/// identity per certificate subject, valid host patterns).
pub fn identity_problems(identities: &BTreeMap<String, IdentityConfig>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut subjects = std::collections::BTreeMap::new();
    let mut uids = std::collections::BTreeMap::new();
    for (name, identity) in identities {
        let key = |k: &str| format!("identities.{name}.{k}");
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == ':') {
            problems.push(ConfigProblem {
                key: format!("identities.{name}"),
                message: "identity names must be non-empty and contain no ':'".into(),
                fix: "use a name such as openclaw-main".into(),
            });
        }
        if identity.token_sha256.is_none()
            && identity.cert_subject.is_none()
            && identity.uid.is_none()
        {
            problems.push(ConfigProblem {
                key: format!("identities.{name}"),
                message: "has no credential, so nothing can authenticate as it".into(),
                fix: "set token_sha256 (printf %s TOKEN | sha256sum), cert_subject, and/or uid (transparent mode)"
                    .into(),
            });
        }
        if let Some(uid) = identity.uid
            && let Some(other) = uids.insert(uid, name.clone())
        {
            problems.push(ConfigProblem {
                key: key("uid"),
                message: format!("uid {uid} is also the uid of identities.{other}"),
                fix: "run each agent as a user of its own".into(),
            });
        }
        if let Some(hash) = &identity.token_sha256
            && crate::token::TokenHash::from_hex(hash).is_none()
        {
            problems.push(ConfigProblem {
                key: key("token_sha256"),
                message: "must be 64 hex characters".into(),
                fix: "put the output of `printf %s TOKEN | sha256sum` here".into(),
            });
        }
        if let Some(subject) = &identity.cert_subject {
            if subject.trim().is_empty() {
                problems.push(ConfigProblem {
                    key: key("cert_subject"),
                    message: "must not be empty".into(),
                    fix: "write the client certificate's common name".into(),
                });
            } else if let Some(other) = subjects.insert(subject.clone(), name.clone()) {
                problems.push(ConfigProblem {
                    key: key("cert_subject"),
                    message: format!("{subject:?} is also the subject of identities.{other}"),
                    fix: "give each identity its own client certificate".into(),
                });
            }
        }
        if let Some(hosts) = &identity.scopes.egress_hosts
            && let Some(bad) = hosts
                .iter()
                .find(|h| !crate::gate::scope::valid_host_pattern(h))
        {
            problems.push(ConfigProblem {
                key: key("scopes.egress_hosts"),
                message: format!("{bad:?} is not a host pattern"),
                fix: "write host names where * is one label and ** any labels, e.g. *.github.com"
                    .into(),
            });
        }
    }
    problems
}

/// Which header carries the agent's credential: the agent listener reads `Authorization`,
/// the egress proxy `Proxy-Authorization`. Both accept `Bearer TOKEN` and
/// `Basic base64(NAME:TOKEN)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialHeader {
    Authorization,
    ProxyAuthorization,
}

impl CredentialHeader {
    fn name(self) -> HeaderName {
        match self {
            CredentialHeader::Authorization => header::AUTHORIZATION,
            CredentialHeader::ProxyAuthorization => header::PROXY_AUTHORIZATION,
        }
    }
}

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// A configured identity; its name is `agent.authenticated_as`.
    Identity { name: String, scopes: Arc<Scopes> },
    /// No identities are configured and the peer is on loopback (the embedded default).
    LoopbackPeer,
}

impl Authenticated {
    pub fn name(&self) -> Option<&str> {
        match self {
            Authenticated::Identity { name, .. } => Some(name),
            Authenticated::LoopbackPeer => None,
        }
    }

    pub fn scopes(&self) -> Option<&Arc<Scopes>> {
        match self {
            Authenticated::Identity { scopes, .. } => Some(scopes),
            Authenticated::LoopbackPeer => None,
        }
    }

    /// Stamp the identity on an agent (overwriting anything the request body claimed).
    pub fn apply_to(&self, agent: &mut crate::action::AgentIdentity) {
        agent.authenticated_as = self.name().map(str::to_string);
        agent.scopes = self.scopes().cloned();
    }
}

/// Why a request was refused before anything was decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no agent credential: send Authorization: Bearer <token> or a client certificate")]
    Missing,
    #[error("the agent credential does not match any configured identity")]
    Invalid,
    #[error("the token and the client certificate name different identities")]
    Conflicting,
    #[error(
        "no identities are configured, so only loopback peers are accepted; configure [identities.NAME]"
    )]
    NotLoopback,
}

impl AuthError {
    /// The refusal in the listener's own terms: 401 with `WWW-Authenticate: Bearer` on the
    /// agent listener, 407 with `Proxy-Authenticate: Bearer` on the egress proxy, 403 for a
    /// non-loopback peer when no identities exist. The body is the usual JSON error.
    pub fn into_response(self, via: CredentialHeader) -> Response<ResponseBody> {
        let (status, code, challenge) = match (&self, via) {
            (AuthError::NotLoopback, _) => (StatusCode::FORBIDDEN, "forbidden", None),
            (_, CredentialHeader::Authorization) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                Some(header::WWW_AUTHENTICATE),
            ),
            (_, CredentialHeader::ProxyAuthorization) => (
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "proxy_authentication_required",
                Some(header::PROXY_AUTHENTICATE),
            ),
        };
        let mut resp = ApiError::new(status, code, self.to_string()).into_response();
        if let Some(name) = challenge {
            resp.headers_mut()
                .insert(name, HeaderValue::from_static("Bearer realm=\"clawgate\""));
        }
        resp
    }
}

struct Identity {
    name: String,
    token: Option<TokenHash>,
    cert_subject: Option<String>,
    uid: Option<u32>,
    scopes: Arc<Scopes>,
}

/// The configured agent identities.
pub struct Identities {
    identities: Vec<Identity>,
}

/// A malformed `[identities.NAME]` entry (config validation reports these first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identities.{name}.token_sha256 must be 64 hex characters")]
pub struct BadIdentityHash {
    pub name: String,
}

impl Identities {
    pub fn new(config: &BTreeMap<String, IdentityConfig>) -> Result<Identities, BadIdentityHash> {
        let identities = config
            .iter()
            .map(|(name, c)| {
                let token = match &c.token_sha256 {
                    Some(h) => Some(
                        TokenHash::from_hex(h)
                            .ok_or_else(|| BadIdentityHash { name: name.clone() })?,
                    ),
                    None => None,
                };
                Ok(Identity {
                    name: name.clone(),
                    token,
                    cert_subject: c.cert_subject.clone(),
                    uid: c.uid,
                    scopes: Arc::new(c.scopes.clone()),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Identities { identities })
    }

    /// No identities: only loopback peers are served.
    pub fn none() -> Identities {
        Identities {
            identities: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Authenticate one request from its headers and the peer of its connection (`None`
    /// when the listener attached no [`PeerInfo`]: an unknown peer, never loopback).
    ///
    /// With identities configured, a token in `via` or a client certificate must name one;
    /// when both are present they must name the same one. Without identities, only
    /// loopback peers pass.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        via: CredentialHeader,
        peer: Option<&PeerInfo>,
    ) -> Result<Authenticated, AuthError> {
        let cert = peer.and_then(|p| p.client_cert.as_ref());
        if self.identities.is_empty() {
            // A certificate the listener's client CA verified names the agent by itself.
            return match (cert, peer) {
                (Some(cert), _) => Ok(Authenticated::Identity {
                    name: cert.subject.clone(),
                    scopes: Arc::default(),
                }),
                (None, Some(p)) if p.is_loopback() => Ok(Authenticated::LoopbackPeer),
                _ => Err(AuthError::NotLoopback),
            };
        }
        let by_token = match credential(headers, &via.name()) {
            Some(cred) => Some(self.by_token(cred).ok_or(AuthError::Invalid)?),
            None => None,
        };
        // A certificate maps to the identity whose cert_subject it carries, or, for identities
        // without one, whose name equals the subject.
        let by_cert = match cert {
            Some(cert) => Some(
                self.identities
                    .iter()
                    .find(|i| i.cert_subject.as_deref().unwrap_or(i.name.as_str()) == cert.subject)
                    .ok_or(AuthError::Invalid)?,
            ),
            None => None,
        };
        let identity = match (by_token, by_cert) {
            (Some(t), Some(c)) if t.name != c.name => return Err(AuthError::Conflicting),
            (Some(i), _) | (None, Some(i)) => i,
            (None, None) => return Err(AuthError::Missing),
        };
        Ok(Authenticated::Identity {
            name: identity.name.clone(),
            scopes: identity.scopes.clone(),
        })
    }

    /// The identity whose `uid` owns a connection's socket (transparent mode).
    pub fn by_uid(&self, uid: u32) -> Option<Authenticated> {
        self.identities
            .iter()
            .find(|i| i.uid == Some(uid))
            .map(|i| Authenticated::Identity {
                name: i.name.clone(),
                scopes: i.scopes.clone(),
            })
    }

    /// Authenticate a request whose [`PeerInfo`] the listener put in its extensions.
    pub fn authenticate_request<B>(
        &self,
        req: &http::Request<B>,
        via: CredentialHeader,
    ) -> Result<Authenticated, AuthError> {
        self.authenticate(req.headers(), via, req.extensions().get::<PeerInfo>())
    }

    fn by_token(&self, (scheme, value): (&str, &str)) -> Option<&Identity> {
        if scheme.eq_ignore_ascii_case("bearer") {
            // Compare against every identity so the time taken does not say which matched.
            let mut found = None;
            for i in &self.identities {
                if i.token.is_some_and(|t| t.matches(value)) {
                    found = found.or(Some(i));
                }
            }
            return found;
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (name, token) = decoded.split_once(':')?;
            let identity = self.identities.iter().find(|i| i.name == name)?;
            return identity
                .token
                .is_some_and(|t| t.matches(token))
                .then_some(identity);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities() -> Identities {
        let mut config = BTreeMap::new();
        config.insert(
            "ci".to_string(),
            IdentityConfig {
                token_sha256: Some(TokenHash::hex_of("ci-token")),
                cert_subject: Some("ci.agents.example".into()),
                uid: Some(61_002),
                scopes: Scopes::default(),
                home: None,
            },
        );
        config.insert(
            "ops".to_string(),
            IdentityConfig {
                token_sha256: Some(TokenHash::hex_of("ops-token")),
                ..IdentityConfig::default()
            },
        );
        Identities::new(&config).unwrap()
    }

    #[test]
    fn a_uid_names_its_identity_and_is_a_credential_of_its_own() {
        let ids = identities();
        assert_eq!(
            ids.by_uid(61_002).and_then(|a| a.name().map(String::from)),
            Some("ci".into())
        );
        assert!(ids.by_uid(61_003).is_none());
        let mut config = BTreeMap::new();
        let by_uid = IdentityConfig {
            uid: Some(7),
            ..IdentityConfig::default()
        };
        config.insert("a".to_string(), by_uid.clone());
        assert!(identity_problems(&config).is_empty());
        config.insert("b".to_string(), by_uid);
        let problems = identity_problems(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "identities.b.uid");
    }

    fn peer(addr: &str, cn: Option<&str>) -> PeerInfo {
        PeerInfo {
            remote: addr.parse().unwrap(),
            client_cert: cn.map(|s| ClientCertificate { subject: s.into() }),
        }
    }

    fn headers(name: HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    const AUTH: CredentialHeader = CredentialHeader::Authorization;

    #[test]
    fn no_identities_accepts_loopback_only() {
        let none = Identities::none();
        let empty = HeaderMap::new();
        let local = peer("127.0.0.1:5000", None);
        let local6 = peer("[::1]:5000", None);
        let remote = peer("10.0.0.7:5000", None);
        assert_eq!(
            none.authenticate(&empty, AUTH, Some(&local)),
            Ok(Authenticated::LoopbackPeer)
        );
        assert!(none.authenticate(&empty, AUTH, Some(&local6)).is_ok());
        assert_eq!(
            none.authenticate(&empty, AUTH, Some(&remote)),
            Err(AuthError::NotLoopback)
        );
        // An unknown peer is not loopback.
        assert_eq!(
            none.authenticate(&empty, AUTH, None),
            Err(AuthError::NotLoopback)
        );
        let resp = AuthError::NotLoopback.into_response(AUTH);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn bearer_basic_and_certificate() {
        let ids = identities();
        let remote = peer("10.0.0.7:5000", None);
        let ok = ids
            .authenticate(
                &headers(header::AUTHORIZATION, "Bearer ops-token"),
                AUTH,
                Some(&remote),
            )
            .unwrap();
        assert_eq!(ok.name(), Some("ops"));
        let basic = base64::engine::general_purpose::STANDARD.encode("ci:ci-token");
        let proxy = ids
            .authenticate(
                &headers(header::PROXY_AUTHORIZATION, &format!("Basic {basic}")),
                CredentialHeader::ProxyAuthorization,
                None,
            )
            .unwrap();
        assert_eq!(proxy.name(), Some("ci"));
        // Basic with the right token under the wrong name fails.
        let wrong = base64::engine::general_purpose::STANDARD.encode("ops:ci-token");
        assert_eq!(
            ids.authenticate(
                &headers(header::PROXY_AUTHORIZATION, &format!("Basic {wrong}")),
                CredentialHeader::ProxyAuthorization,
                None,
            ),
            Err(AuthError::Invalid)
        );
        // The proxy header is not read on the agent listener.
        assert_eq!(
            ids.authenticate(
                &headers(header::PROXY_AUTHORIZATION, "Bearer ops-token"),
                AUTH,
                Some(&remote)
            ),
            Err(AuthError::Missing)
        );
        let by_cert = ids
            .authenticate(
                &HeaderMap::new(),
                AUTH,
                Some(&peer("10.0.0.7:1", Some("ci.agents.example"))),
            )
            .unwrap();
        assert_eq!(by_cert.name(), Some("ci"));
        assert_eq!(
            ids.authenticate(
                &headers(header::AUTHORIZATION, "Bearer ops-token"),
                AUTH,
                Some(&peer("10.0.0.7:1", Some("ci.agents.example")))
            ),
            Err(AuthError::Conflicting)
        );
        assert_eq!(
            ids.authenticate(&headers(header::AUTHORIZATION, "Bearer nope"), AUTH, None),
            Err(AuthError::Invalid)
        );
        // Loopback grants nothing once identities exist.
        assert_eq!(
            ids.authenticate(&HeaderMap::new(), AUTH, Some(&peer("127.0.0.1:1", None))),
            Err(AuthError::Missing)
        );
        let resp = AuthError::Missing.into_response(AUTH);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
}
