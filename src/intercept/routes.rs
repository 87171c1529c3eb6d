//! The agent and egress listeners' routing: authenticate the peer first, then hand the request
//! to its front door. Nothing is parsed or decided for an unauthenticated peer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::gate::Gate;
use crate::http_api::{ApiError, ResponseBody};
use crate::identity::{CredentialHeader, Identities};
use crate::intercept::egress::EgressProxy;
use crate::intercept::mcp::McpGateway;
use crate::intercept::{check_api, mcp};

/// What the agent listener (`/v1/check`, `/v1/results`, approval waits, `/mcp/{server}`)
/// needs.
pub struct AgentRoutes {
    pub gate: Arc<Gate>,
    pub identities: Arc<Identities>,
    pub mcp: McpGateway,
    /// Largest request body read from the agent.
    pub max_body: usize,
    /// How long an MCP call held for approval waits before it is answered as pending.
    pub hold: Duration,
}

impl AgentRoutes {
    /// Authenticate the request and start its front door. The caller keeps only the returned
    /// future, allocated at the size of that front door's own state: a request held for
    /// approval (up to `approval.max_wait_s`, thousands at once) keeps only what its handler
    /// needs, not room for the largest handler nor copies of the request.
    pub fn route(self: &Arc<Self>, req: Request<Incoming>) -> Routed {
        let auth = match self
            .identities
            .authenticate_request(&req, CredentialHeader::Authorization)
        {
            Ok(auth) => auth,
            Err(e) => {
                tracing::info!(path = req.uri().path(), reason = %e, "agent request refused");
                return Box::pin(std::future::ready(
                    e.into_response(CredentialHeader::Authorization),
                ));
            }
        };
        let (gate, max_body) = (self.gate.clone(), self.max_body);
        match req.uri().path() {
            "/v1/check" => Box::pin(check_api::handle(gate, auth, req, max_body)),
            "/v1/results" => {
                Box::pin(async move { check_api::handle_result(&gate, &auth, req, max_body).await })
            }
            "/v1/mcp/visible-tools" => Box::pin(async move {
                check_api::handle_visible_tools(&gate, &auth, req, max_body).await
            }),
            path if path.starts_with("/v1/approvals/") => {
                Box::pin(async move { check_api::handle_wait(&gate, &auth, req).await })
            }
            path if path.starts_with("/mcp/") => {
                let routes = self.clone();
                Box::pin(
                    async move { mcp::handle(&routes.mcp, &gate, &auth, routes.hold, req).await },
                )
            }
            path => Box::pin(std::future::ready(
                ApiError::not_found(path).into_response(),
            )),
        }
    }
}

/// A front door's answer to come, in its own allocation.
pub type Routed = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;

/// What the egress listener (forward proxy and CONNECT) needs.
pub struct EgressRoutes {
    pub identities: Arc<Identities>,
    pub proxy: Arc<EgressProxy>,
}

impl EgressRoutes {
    pub async fn route(&self, req: Request<Incoming>) -> Response<ResponseBody> {
        match self
            .identities
            .authenticate_request(&req, CredentialHeader::ProxyAuthorization)
        {
            Ok(auth) => self.proxy.handle(&auth, req).await,
            Err(e) => {
                tracing::info!(target_uri = %req.uri(), reason = %e, "egress request refused");
                e.into_response(CredentialHeader::ProxyAuthorization)
            }
        }
    }
}
