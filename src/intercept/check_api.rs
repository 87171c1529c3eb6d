//! `POST /v1/check`: the OpenClaw plugin's `before_tool_call` hook asks here before each
//! tool call (`?wait=SECONDS` holds a call that needs approval). `GET
//! /v1/approvals/{id}/wait`: long-polls a pending approval. `POST /v1/results`: the
//! `after_tool_call` hook reports what happened.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::action::{Action, ActionKind, AgentIdentity, Requester};
use crate::gate::approval::{ApprovalView, refusal_reason};
use crate::gate::{CheckRequest, Decision, Gate, Outcome, ResultReport, Ruling, Waited};
use crate::http_api::{ApiError, ResponseBody, json_response, read_json};
use crate::identity::Authenticated;

/// The body of `POST /v1/check`: a tool call as the `before_tool_call` hook sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// `tool` (default: a tool call seen by the plugin hook) or `mcp` (an MCP `tools/call`,
    /// as `clawgate mcp-stdio` asks; then `server` names the MCP server).
    #[serde(default)]
    pub kind: Option<ActionKind>,
    #[serde(default)]
    pub server: Option<String>,
    pub tool: String,
    #[serde(default)]
    pub params: Option<Value>,
    pub agent: AgentIdentity,
    #[serde(default)]
    pub requester: Option<Requester>,
}

impl CheckBody {
    pub(crate) fn into_request(self) -> Result<CheckRequest, ApiError> {
        let invalid = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m);
        if self.tool.trim().is_empty() {
            return Err(invalid("`tool` must not be empty"));
        }
        if self
            .agent
            .id
            .as_deref()
            .is_none_or(|id| id.trim().is_empty())
        {
            return Err(invalid("missing field `id` at `agent.id`"));
        }
        let action = match (
            self.kind.unwrap_or(ActionKind::Tool),
            self.server.as_deref(),
        ) {
            (ActionKind::Tool, None) => Action::tool(self.tool, self.params),
            (ActionKind::Mcp, Some(server)) if !server.trim().is_empty() => {
                Action::mcp(server, &self.tool, self.params)
            }
            (ActionKind::Mcp, _) => return Err(invalid("`server` is required when `kind` is mcp")),
            (ActionKind::Tool, Some(_)) => {
                return Err(invalid("`server` is only allowed when `kind` is mcp"));
            }
            (k, _) => {
                return Err(invalid(&format!(
                    "kind {:?} is decided by clawgate's own front doors, not /v1/check",
                    k.as_str()
                )));
            }
        };
        Ok(CheckRequest {
            action,
            agent: self.agent,
            requester: self.requester,
        })
    }
}

/// A check of `req`. The method, the hold time and the body are taken from the request before
/// the returned future starts, so that a check held for approval (up to
/// `approval.max_wait_s`, thousands at once) keeps neither the request nor copies of it in
/// its state: only the parsed check, its pending decision and its wait.
pub fn handle<B>(
    gate: Arc<Gate>,
    auth: Authenticated,
    req: Request<B>,
    max_body: usize,
) -> impl Future<Output = Response<ResponseBody>> + Send + 'static
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = if req.method() != Method::POST {
        Err(ApiError::method_not_allowed(req.method(), "POST"))
    } else {
        // Read and parsed in its own allocation, freed before the decision (and any hold).
        wait_param(req.uri().query(), "wait", &gate)
            .map(|wait| (wait, Box::pin(read_json::<CheckBody, _>(req, max_body))))
    };
    async move {
        let (wait, body) = match started {
            Ok(started) => started,
            Err(e) => return e.into_response(),
        };
        match check(&gate, &auth, body, wait).await {
            Ok(decision) => json_response(StatusCode::OK, &decision),
            Err(e) => e.into_response(),
        }
    }
}

async fn check(
    gate: &Arc<Gate>,
    auth: &Authenticated,
    body: impl Future<Output = Result<CheckBody, ApiError>>,
    wait: Duration,
) -> Result<Decision, ApiError> {
    let mut request = body.await?.into_request()?;
    auth.apply_to(&mut request.agent);
    let span = tracing::info_span!(
        "check",
        action_id = tracing::field::Empty,
        run_id = request.agent.run_id.as_deref().unwrap_or(""),
        tool = request.action.tool.as_deref().unwrap_or(""),
        decision = tracing::field::Empty,
    );
    let ruling = {
        use tracing::Instrument;
        gate.rule(&request, wait).instrument(span.clone()).await
    };
    let decision = match ruling {
        // The action runs inside OpenClaw: it counts as running until its result arrives.
        Ruling::Allowed(permit) => permit.run_elsewhere(),
        Ruling::Refused(decision) => decision,
    };
    let _enter = span.enter();
    span.record("action_id", decision.id.as_str());
    span.record("decision", decision.outcome.as_str());
    if decision.outcome == Outcome::Allow && decision.shadow.is_none() {
        tracing::debug!(risk = decision.risk.as_str(), "allowed");
    } else {
        tracing::info!(
            risk = decision.risk.as_str(),
            effect = decision.effect.as_str(),
            reasons = ?decision.reasons,
            "decided"
        );
    }
    Ok(decision)
}

/// `POST /v1/results`: a result pointer for a decision (ok/error, duration, SHA-256).
pub async fn handle_result<B>(
    gate: &Gate,
    auth: &Authenticated,
    req: Request<B>,
    max_body: usize,
) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if req.method() != Method::POST {
        return ApiError::method_not_allowed(req.method(), "POST").into_response();
    }
    let mut report = match read_json::<ResultReport, _>(req, max_body)
        .await
        .and_then(validate_report)
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    report.authenticated_as = auth.name().map(str::to_string);
    match gate.record_result(&report).await {
        Ok(seq) => json_response(
            StatusCode::OK,
            &serde_json::json!({"recorded": true, "audit_seq": seq}),
        ),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            format!("the result could not be recorded: {e}"),
        )
        .into_response(),
    }
}

fn validate_report(report: ResultReport) -> Result<ResultReport, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m);
    if report.decision_id.trim().is_empty() {
        return Err(invalid("`decision_id` must not be empty".into()));
    }
    if let Some(h) = &report.result_sha256
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(invalid(format!(
            "`result_sha256` must be 64 hex characters, got {h:?}"
        )));
    }
    Ok(report)
}

/// Read a hold time in seconds from the query (`wait` or `timeout`), bounded by
/// `approval.max_wait_s`. Absent means no hold.
fn wait_param(query: Option<&str>, name: &str, gate: &Gate) -> Result<Duration, ApiError> {
    let max = gate.approval_max_wait();
    let mut wait = Duration::ZERO;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != name {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("unknown query parameter {k:?}; use {name}"),
            ));
        }
        let secs: f64 = v
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("{name} must be a number of seconds, not {v:?}"),
                )
            })?;
        wait = Duration::from_secs_f64(secs.min(max.as_secs_f64()));
    }
    Ok(wait)
}

/// The answer of `GET /v1/approvals/{id}/wait`.
#[derive(Debug, serde::Serialize)]
struct WaitAnswer {
    approval_id: String,
    /// `allow` (run the call now), `deny`, or `pending` (ask again).
    decision: Outcome,
    /// The decision this release recorded (an approved action is admitted like a check);
    /// `/v1/results` reports the call under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<String>,
    status: crate::gate::approval::ApprovalStatus,
    reasons: Vec<String>,
    decided_by: Vec<String>,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_url: Option<String>,
}

impl WaitAnswer {
    fn new(view: ApprovalView, decision: Outcome, reasons: Vec<String>) -> WaitAnswer {
        let wait_url =
            (decision == Outcome::Pending).then(|| format!("/v1/approvals/{}/wait", view.id));
        WaitAnswer {
            approval_id: view.id,
            decision,
            decision_id: None,
            status: view.status,
            reasons,
            decided_by: view.decided_by,
            expires_at: view.expires_at,
            wait_url,
        }
    }
}

/// `GET /v1/approvals/{id}/wait?timeout=SECONDS`: hold until the approval resolves (bounded
/// by `approval.max_wait_s`). An approved call is admitted and recorded as a check would be
/// (constraints, scopes); `allow` means it may run now, and counts as the approval's use.
pub async fn handle_wait<B>(
    gate: &Arc<Gate>,
    auth: &Authenticated,
    req: Request<B>,
) -> Response<ResponseBody> {
    let path = req.uri().path();
    let Some(id) = path
        .strip_prefix("/v1/approvals/")
        .and_then(|rest| rest.strip_suffix("/wait"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
    else {
        return ApiError::not_found(path).into_response();
    };
    if req.method() != Method::GET {
        return ApiError::method_not_allowed(req.method(), "GET").into_response();
    }
    let timeout = match wait_param(req.uri().query(), "timeout", gate) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "approval_not_found",
            format!("no approval with id {id}"),
        )
        .into_response()
    };
    // Only the identity an approval is bound to may wait on (and so release) it.
    match gate.approval(id).await {
        Ok(Some(view)) if view.authenticated_as.as_deref() == auth.name() => {}
        Ok(_) => return not_found(),
        Err(e) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "approval_unavailable",
                format!("the approval could not be read ({e}); do not run the call"),
            )
            .into_response();
        }
    }
    let span = tracing::info_span!(
        "approval_wait",
        approval_id = id,
        decision = tracing::field::Empty
    );
    let mut caller = AgentIdentity::default();
    auth.apply_to(&mut caller);
    let released = {
        use tracing::Instrument;
        gate.wait_for_approval(id, timeout, caller)
            .instrument(span.clone())
            .await
    };
    let answer = match released {
        Ok(Some(Waited::Ruled { view, ruling })) => {
            // Allowed: the call runs inside OpenClaw, so it holds its constraints until its
            // result is reported, as after a check.
            let decision = match *ruling {
                Ruling::Allowed(permit) => permit.run_elsewhere(),
                Ruling::Refused(decision) => decision,
            };
            let mut answer = WaitAnswer::new(view, decision.outcome, decision.reasons);
            answer.decision_id = Some(decision.id);
            answer
        }
        Ok(Some(Waited::Refused { view, reason })) => {
            WaitAnswer::new(view, Outcome::Deny, vec![reason])
        }
        Ok(Some(Waited::Pending(view))) => {
            let reason = refusal_reason(&view);
            WaitAnswer::new(view, Outcome::Pending, vec![reason])
        }
        Ok(None) => return not_found(),
        Err(e) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "approval_unavailable",
                format!("the approval could not be released ({e}); do not run the call"),
            )
            .into_response();
        }
    };
    span.record("decision", answer.decision.as_str());
    json_response(StatusCode::OK, &answer)
}

/// The body of `POST /v1/mcp/visible-tools`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibleToolsBody {
    server: String,
    tools: Vec<String>,
    agent: AgentIdentity,
}

/// `POST /v1/mcp/visible-tools`: which of a server's tools the model may see (those policy
/// does not deny outright). Used by `clawgate mcp-stdio` to filter `tools/list`; evaluates
/// only, records nothing.
pub async fn handle_visible_tools<B>(
    gate: &Gate,
    auth: &Authenticated,
    req: Request<B>,
    max_body: usize,
) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if req.method() != Method::POST {
        return ApiError::method_not_allowed(req.method(), "POST").into_response();
    }
    let mut body = match read_json::<VisibleToolsBody, _>(req, max_body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    auth.apply_to(&mut body.agent);
    let (visible, hidden): (Vec<String>, Vec<String>) = body
        .tools
        .into_iter()
        .partition(|t| gate.tool_visible(&body.server, t, &body.agent));
    json_response(
        StatusCode::OK,
        &serde_json::json!({"visible": visible, "hidden": hidden}),
    )
}
