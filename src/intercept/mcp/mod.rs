//! The MCP gateway: `/mcp/{server}` on the agent listener proxies MCP streamable HTTP to the
//! configured upstream (revisions 2025-11-25 with sessions and 2026-07-28 stateless).
//!
//! `tools/call` becomes an [`Action`] of kind `mcp` and is decided by the gate before it is
//! forwarded; a denied or held call is answered here with a tool error result the model can
//! read. `tools/list` results lose the tools policy denies outright. Everything else streams
//! through untouched. Upstream credentials are added on the way out; the agent never has them.

pub(crate) mod jsonrpc;
mod settings;
pub mod stdio;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::action::{Action, AgentIdentity};
use crate::config::Config;
use crate::gate::{CheckRequest, Decision, Gate, Outcome, Permit, Ruling};
use crate::http_api::{BodyError, BoxError, ResponseBody, collect_limited, full_body};
use crate::identity::Authenticated;
use crate::intercept::forward::{self, BodyLimits, MeteredBody};
use jsonrpc::{RoutingHeaders, is_stateless};
pub use settings::{McpConfig, McpServerConfig};

/// Headers naming the agent behind an MCP client (OpenClaw sets them from its MCP server
/// config); stripped before forwarding.
pub const AGENT_HEADER: &str = "x-clawgate-agent";
pub const SESSION_HEADER: &str = "x-clawgate-session";
pub const RUN_HEADER: &str = "x-clawgate-run";
/// The agent id used when an MCP client names none.
pub const DEFAULT_AGENT: &str = "mcp-client";

/// Largest `tools/list` response the gateway reads whole to filter.
const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum McpSetupError {
    #[error("mcp.servers.{server}.bearer_token_env: environment variable {var} is not set")]
    MissingToken { server: String, var: String },
    #[error("mcp.servers.{server}.headers: {header:?} has an invalid name or value")]
    BadHeader { server: String, header: String },
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(String),
}

struct Upstream {
    url: String,
    /// Credentials and other headers added to every request.
    headers: HeaderMap,
    timeout: Duration,
}

pub struct McpGateway {
    upstreams: HashMap<String, Upstream>,
    names: Vec<String>,
    client: reqwest::Client,
    max_body: usize,
    keep_bytes: usize,
}

impl McpGateway {
    pub fn new(config: &Config) -> Result<McpGateway, McpSetupError> {
        let mut upstreams = HashMap::new();
        for (name, server) in &config.mcp.servers {
            upstreams.insert(name.clone(), upstream(name, server)?);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| McpSetupError::Client(e.to_string()))?;
        Ok(McpGateway {
            names: config.mcp.servers.keys().cloned().collect(),
            upstreams,
            client,
            max_body: config.limits.max_body_bytes,
            keep_bytes: config.audit.blob_max_bytes,
        })
    }

    pub fn server_names(&self) -> &[String] {
        &self.names
    }
}

fn upstream(name: &str, server: &McpServerConfig) -> Result<Upstream, McpSetupError> {
    let bad = |header: &str| McpSetupError::BadHeader {
        server: name.to_string(),
        header: header.to_string(),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &server.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad(k))?;
        let mut value = HeaderValue::from_str(v).map_err(|_| bad(k))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    if let Some(var) = &server.bearer_token_env {
        let token = std::env::var(var)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| McpSetupError::MissingToken {
                server: name.to_string(),
                var: var.clone(),
            })?;
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| bad(var))?;
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }
    Ok(Upstream {
        url: server.url.clone(),
        headers,
        timeout: Duration::from_millis(server.timeout_ms),
    })
}

fn rpc_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    crate::http_api::json_response(status, body)
}

/// Request headers passed to the upstream. An allow list: the agent's own credentials,
/// cookies and clawgate's identity headers never leave.
fn forwarded_request_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "accept" | "content-type" | "last-event-id" | "user-agent"
    ) || n.starts_with("mcp-")
}

/// Response headers not passed back (hop-by-hop, or recomputed by our HTTP stack).
fn dropped_response_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

/// `/mcp/{server}` and anything below it.
pub async fn handle<B>(
    gw: &McpGateway,
    gate: &Arc<Gate>,
    auth: &Authenticated,
    hold: Duration,
    req: Request<B>,
) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path();
    let server = path
        .strip_prefix("/mcp/")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let Some(upstream) = gw.upstreams.get(&server) else {
        let configured = if gw.names.is_empty() {
            "none are configured ([mcp.servers.NAME] url = ...)".to_string()
        } else {
            format!("configured: {}", gw.names.join(", "))
        };
        return rpc_response(
            StatusCode::NOT_FOUND,
            &jsonrpc::error_response(
                Value::Null,
                jsonrpc::UNKNOWN_SERVER,
                format!("no MCP server named {server:?}; {configured}"),
            ),
        );
    };
    let (parts, body) = req.into_parts();
    match parts.method {
        Method::POST => {}
        Method::GET | Method::DELETE => {
            return Box::pin(forward(gw, upstream, &parts, Bytes::new(), None)).await;
        }
        ref m => {
            return crate::http_api::ApiError::method_not_allowed(m, "POST, GET or DELETE")
                .into_response();
        }
    }
    let body = match read_body(body, &parts.headers, gw.max_body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    // From here on the message is judged and forwarded as parsed: `body` is its
    // re-serialisation, never the bytes the client sent.
    let (message, body) = match jsonrpc::parse_message(&body) {
        Ok(m) => (m.value, m.wire),
        Err(e) => {
            return rpc_response(
                StatusCode::BAD_REQUEST,
                &jsonrpc::error_response(Value::Null, e.code(), e.to_string()),
            );
        }
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let routing = RoutingHeaders {
        protocol_version: header("mcp-protocol-version"),
        method: header("mcp-method"),
        name: header("mcp-name"),
    };
    if let Err(why) = jsonrpc::check_routing_headers(&routing, &message) {
        return rpc_response(
            StatusCode::BAD_REQUEST,
            &jsonrpc::error_response(id, jsonrpc::HEADER_MISMATCH, why),
        );
    }
    let stateless = is_stateless(routing.protocol_version);
    let mut agent = agent_identity(&parts);
    auth.apply_to(&mut agent);
    match message.get("method").and_then(Value::as_str) {
        // parse_message refused a tools/call without an id: every call is decided here.
        Some("tools/call") => {
            let params = &message["params"];
            let Some(tool) = params.get("name").and_then(Value::as_str) else {
                return rpc_response(
                    StatusCode::BAD_REQUEST,
                    &jsonrpc::error_response(id, -32602, "tools/call needs params.name"),
                );
            };
            let request = CheckRequest {
                action: Action::mcp(&server, tool, params.get("arguments").cloned()),
                agent,
                requester: None,
            };
            // A call held for approval keeps the action and the bytes to forward, not the
            // parsed message as well.
            drop(message);
            let ruling = gate.rule(&request, hold).await;
            let decision = ruling.decision();
            tracing::info!(action_id = %decision.id, run_id = request.agent.run_id.as_deref().unwrap_or(""),
                decision = decision.outcome.as_str(), server = %server,
                tool = request.action.tool.as_deref().unwrap_or(""), "mcp tools/call");
            match ruling {
                // Forwarding runs in its own allocation: the future that holds a call for its
                // approval does not carry the upstream request's state as well.
                Ruling::Allowed(permit) => {
                    Box::pin(forward(gw, upstream, &parts, body, Some(permit))).await
                }
                Ruling::Refused(decision) => {
                    let text = decision_refusal(&decision);
                    rpc_response(
                        StatusCode::OK,
                        &jsonrpc::tool_error_result(id, text, stateless),
                    )
                }
            }
        }
        Some("tools/list") => {
            let resp = Box::pin(forward(gw, upstream, &parts, body, None)).await;
            filter_list(gate, &server, &agent, resp).await
        }
        _ => Box::pin(forward(gw, upstream, &parts, body, None)).await,
    }
}

/// The agent from the X-Clawgate-* headers; `authenticated_as` comes from the listener's
/// authentication (token or client certificate), never from a header.
fn agent_identity(parts: &http::request::Parts) -> AgentIdentity {
    let get = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    AgentIdentity {
        id: Some(get(AGENT_HEADER).unwrap_or_else(|| DEFAULT_AGENT.to_string())),
        session: get(SESSION_HEADER),
        run_id: get(RUN_HEADER),
        ..AgentIdentity::default()
    }
}

/// What the model reads when a call does not run: held for an approval (its id and expiry)
/// or denied. Shared by the HTTP gateway and `clawgate mcp-stdio`.
pub fn refusal_text(
    decision_id: &str,
    held_for: Option<(&str, &str)>,
    reasons: &[String],
) -> String {
    let reasons = reasons.join("; ");
    match held_for {
        Some((approval_id, expires)) => format!(
            "clawgate is holding this call for approval {approval_id} (expires {expires}). It did not run. \
             Ask an approver to approve it, then retry the identical call. Reasons: {reasons}"
        ),
        None => format!(
            "clawgate denied this call (decision {decision_id}); it did not run. Reasons: {reasons}"
        ),
    }
}

fn decision_refusal(d: &Decision) -> String {
    let held_for = match (d.outcome, &d.approval_id) {
        (Outcome::Pending, Some(id)) => {
            Some((id.as_str(), d.approval_expires_at.as_deref().unwrap_or("?")))
        }
        _ => None,
    };
    refusal_text(&d.id, held_for, &d.reasons)
}

async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Response<ResponseBody>>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    collect_limited(body, headers, limit).await.map_err(|e| {
        let (status, message) = match e {
            BodyError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes (limits.max_body_bytes)"),
            ),
            BodyError::Unreadable(why) => (
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {why}"),
            ),
        };
        rpc_response(
            status,
            &jsonrpc::error_response(Value::Null, jsonrpc::INVALID_REQUEST, message),
        )
    })
}

/// Send the request upstream and stream the answer back. For an allowed `tools/call` (its
/// permit), the verdict's time and size limits apply and the permit is finished when the body
/// ends (the action counts as running until then).
async fn forward(
    gw: &McpGateway,
    upstream: &Upstream,
    parts: &http::request::Parts,
    body: Bytes,
    call: Option<Permit>,
) -> Response<ResponseBody> {
    let limits = call
        .as_ref()
        .map(Permit::upstream_limits)
        .unwrap_or_default();
    let timeout = limits.timeout.unwrap_or(upstream.timeout);
    let max_bytes = limits.max_response_bytes;
    let mut url = upstream.url.clone();
    if let Some(q) = parts.uri.query() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(q);
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if forwarded_request_header(k) {
            headers.append(k, v.clone());
        }
    }
    for (k, v) in &upstream.headers {
        headers.insert(k, v.clone());
    }
    let mut request = gw
        .client
        .request(parts.method.clone(), &url)
        .headers(headers);
    if !body.is_empty() {
        request = request.body(body);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    // A GET event stream lives as long as the session; only requests are time-limited.
    let sent = if parts.method == Method::GET {
        request.send().await.map_err(Some)
    } else {
        match tokio::time::timeout_at(deadline, request.send()).await {
            Ok(r) => r.map_err(Some),
            Err(_) => Err(None),
        }
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let message = match e {
                None => format!(
                    "the upstream MCP server did not answer within the time limit of {} ms",
                    timeout.as_millis()
                ),
                Some(e) => format!(
                    "the upstream MCP server could not be reached: {}",
                    without_url(e)
                ),
            };
            if let Some(permit) = call {
                forward::fail(permit, message.clone());
            }
            return rpc_response(
                StatusCode::BAD_GATEWAY,
                &jsonrpc::error_response(Value::Null, jsonrpc::INTERNAL_ERROR, message),
            );
        }
    };
    let resp: http::Response<reqwest::Body> = resp.into();
    let (mut head, body) = resp.into_parts();
    let dropped: Vec<HeaderName> = head
        .headers
        .keys()
        .filter(|n| dropped_response_header(n))
        .cloned()
        .collect();
    for name in dropped {
        head.headers.remove(name);
    }
    let body: ResponseBody = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
    let body = match call {
        Some(permit) => {
            let limits = BodyLimits {
                max_bytes,
                deadline: Some(deadline),
                keep_bytes: gw.keep_bytes,
            };
            let (metered, report) = MeteredBody::new(body, limits);
            forward::finish_when_done(permit, head.status.as_u16(), report);
            metered.boxed()
        }
        None => body,
    };
    Response::from_parts(head, body)
}

/// reqwest names the URL in its errors; upstream URLs may carry secrets, so say less.
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Read a `tools/list` response whole and drop the tools policy denies outright.
async fn filter_list(
    gate: &Gate,
    server: &str,
    agent: &AgentIdentity,
    resp: Response<ResponseBody>,
) -> Response<ResponseBody> {
    if !resp.status().is_success() {
        return resp;
    }
    let (mut head, body) = resp.into_parts();
    let bytes = match read_bounded(body, MAX_LIST_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return rpc_response(
                StatusCode::BAD_GATEWAY,
                &jsonrpc::error_response(
                    Value::Null,
                    jsonrpc::INTERNAL_ERROR,
                    format!("the upstream tools/list answer could not be read: {e}"),
                ),
            );
        }
    };
    let mut hidden = Vec::new();
    let mut keep = |name: &str| {
        let visible = gate.tool_visible(server, name, agent);
        if !visible {
            hidden.push(name.to_string());
        }
        visible
    };
    let is_sse = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let out: Bytes = if is_sse {
        match std::str::from_utf8(&bytes) {
            Ok(text) => jsonrpc::rewrite_sse(text, &mut |v| {
                jsonrpc::filter_tools(v, &mut keep);
            })
            .into(),
            Err(_) => bytes,
        }
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut v) => {
                jsonrpc::filter_tools(&mut v, &mut keep);
                serde_json::to_vec(&v).map(Bytes::from).unwrap_or(bytes)
            }
            Err(_) => bytes,
        }
    };
    if !hidden.is_empty() {
        tracing::info!(server, hidden = ?hidden, "tools hidden from tools/list by policy");
    }
    head.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(head, full_body(out))
}

/// Read a whole response body of at most `limit` bytes.
async fn read_bounded(mut body: ResponseBody, limit: usize) -> Result<Bytes, String> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > limit {
                return Err(format!("it is larger than {limit} bytes"));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.into())
}
