//! Operating a running sidecar without a restart: `POST /v1/mode` switches between enforce
//! and shadow, `POST /v1/policy/reload` re-reads the policy bundle. Both need the admin token
//! and both are recorded in the audit log before they answer.

use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::refusals::Endpoint;
use crate::gate::policy::watch::{ReloadOutcome, ReloadTrigger};
use crate::gate::{Mode, OperationError};
use crate::http_api::{ApiError, ResponseBody, json_response, read_json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeBody {
    mode: Mode,
}

/// An operation the gate did not make: 503 when the audit log could not record it.
fn not_made(e: OperationError) -> ApiError {
    match e {
        OperationError::Unrecorded(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            e.to_string(),
        ),
        OperationError::Interrupted(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload_failed",
            e.to_string(),
        ),
    }
}

/// `POST /v1/mode` with `{"mode": "enforce" | "shadow"}`.
pub async fn set_mode<B>(state: &AdminState, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match mode(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn mode<B>(state: &AdminState, req: Request<B>) -> Result<Response<ResponseBody>, ApiError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    state.authorize(&req, Endpoint::Mode)?;
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(req.method(), "POST"));
    }
    let wanted = read_json::<ModeBody, _>(req, state.max_body).await?.mode;
    let change = state
        .gate
        .change_mode(wanted, "admin_api")
        .await
        .map_err(not_made)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"mode": wanted, "previous": change.previous, "audit_seq": change.audit_seq}),
    ))
}

/// `POST /v1/policy/reload`: re-read the bundle from where it was loaded. A bundle that does
/// not compile is rejected (422) and the serving one stays.
pub async fn reload_policy<B>(state: &AdminState, req: Request<B>) -> Response<ResponseBody> {
    if let Err(e) = state.authorize(&req, Endpoint::PolicyReload) {
        return e.into_response();
    }
    if req.method() != Method::POST {
        return ApiError::method_not_allowed(req.method(), "POST").into_response();
    }
    let reload = match state.gate.reload_policy(ReloadTrigger::Admin).await {
        Ok(reload) => reload,
        Err(e) => return not_made(e).into_response(),
    };
    // An admin reload is always recorded, unchanged or not.
    let seq = reload.audit_seq;
    match reload.outcome {
        ReloadOutcome::Swapped { revision } => json_response(
            StatusCode::OK,
            &json!({"outcome": "reloaded", "revision": revision, "audit_seq": seq}),
        ),
        ReloadOutcome::Unchanged => json_response(
            StatusCode::OK,
            &json!({"outcome": "unchanged", "revision": state.gate.policy_revision(), "audit_seq": seq}),
        ),
        ReloadOutcome::Rejected { error, serving } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy_rejected",
            format!("the new bundle was rejected and revision {serving} keeps serving: {error}"),
        )
        .into_response(),
    }
}
