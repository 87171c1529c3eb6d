//! `POST /v1/check`: the OpenClaw plugin's `before_tool_call` hook asks here before each
//! tool call. `POST /v1/results`: its `after_tool_call` hook reports what happened.

use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::action::{Action, AgentIdentity, Requester};
use crate::gate::{CheckRequest, Decision, Gate, Outcome, ResultReport};
use crate::http_api::{ApiError, ResponseBody, json_response, parse_json, read_json_body};

/// The body of `POST /v1/check`: a tool call as the `before_tool_call` hook sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    pub tool: String,
    #[serde(default)]
    pub params: Option<Value>,
    pub agent: AgentIdentity,
    #[serde(default)]
    pub requester: Option<Requester>,
}

impl CheckBody {
    fn into_request(self) -> Result<CheckRequest, ApiError> {
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
        Ok(CheckRequest {
            action: Action::tool(self.tool, self.params),
            agent: self.agent,
            requester: self.requester,
        })
    }
}

pub async fn handle<B>(gate: &Gate, req: Request<B>, max_body: usize) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if req.method() != Method::POST {
        return ApiError::method_not_allowed(req.method(), "POST").into_response();
    }
    match check(gate, req, max_body).await {
        Ok(decision) => json_response(StatusCode::OK, &decision),
        Err(e) => e.into_response(),
    }
}

async fn check<B>(gate: &Gate, req: Request<B>, max_body: usize) -> Result<Decision, ApiError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let body = read_json_body(req, max_body).await?;
    let request = parse_json::<CheckBody>(&body)?.into_request()?;
    let span = tracing::info_span!(
        "check",
        action_id = tracing::field::Empty,
        run_id = request.agent.run_id.as_deref().unwrap_or(""),
        tool = request.action.tool.as_deref().unwrap_or(""),
        decision = tracing::field::Empty,
    );
    let decision = {
        use tracing::Instrument;
        gate.decide(&request).instrument(span.clone()).await
    };
    let _enter = span.enter();
    span.record("action_id", decision.id.as_str());
    span.record("decision", decision.decision.as_str());
    if decision.decision == Outcome::Allow && decision.shadow.is_none() {
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
    let report = match read_json_body(req, max_body)
        .await
        .and_then(|body| parse_json::<ResultReport>(&body))
        .and_then(validate_report)
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
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
