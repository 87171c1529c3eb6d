//! Operating a running sidecar without a restart: `POST /v1/mode` switches between enforce
//! and shadow, `POST /v1/policy/reload` re-reads the policy bundle. Both need the admin token
//! and both are recorded in the audit log before they answer.

use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::audit::AuditEvent;
use crate::config::Mode;
use crate::gate::policy::watch::{ReloadOutcome, ReloadTrigger, reload};
use crate::http_api::{ApiError, ResponseBody, json_response, read_json};
use crate::server::{AppState, reload_event};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeBody {
    mode: Mode,
}

fn audit_unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        format!("the change could not be recorded in the audit log, so it was not made: {e}"),
    )
}

/// `POST /v1/mode` with `{"mode": "enforce" | "shadow"}`.
pub async fn set_mode<B>(state: &AppState, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match mode(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn mode<B>(state: &AppState, req: Request<B>) -> Result<Response<ResponseBody>, ApiError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    state.admin_token.require(req.headers())?;
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(req.method(), "POST"));
    }
    let wanted = read_json::<ModeBody, _>(req, state.config.limits.max_body_bytes)
        .await?
        .mode;
    let previous = state.gate.mode();
    // Recorded first: a mode that loosens enforcement never takes effect unrecorded.
    let receipt = state
        .audit()
        .append(AuditEvent::new(
            "mode",
            json!({"event": "changed", "from": previous, "to": wanted, "via": "admin_api"}),
        ))
        .await
        .map_err(audit_unavailable)?;
    state.gate.set_mode(wanted);
    tracing::warn!(
        from = previous.as_str(),
        to = wanted.as_str(),
        "mode changed through the admin API"
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({"mode": wanted, "previous": previous, "audit_seq": receipt.seq}),
    ))
}

/// `POST /v1/policy/reload`: re-read the bundle from where it was loaded. A bundle that does
/// not compile is rejected (422) and the serving one stays.
pub async fn reload_policy<B>(state: &AppState, req: Request<B>) -> Response<ResponseBody> {
    if let Err(e) = state.admin_token.require(req.headers()) {
        return e.into_response();
    }
    if req.method() != Method::POST {
        return ApiError::method_not_allowed(req.method(), "POST").into_response();
    }
    let policy = state.gate.policy().clone();
    let outcome =
        match tokio::task::spawn_blocking(move || reload(&policy, ReloadTrigger::Admin)).await {
            Ok(o) => o,
            Err(e) => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "reload_failed",
                    format!("the reload did not finish: {e}"),
                )
                .into_response();
            }
        };
    let event = reload_event(
        ReloadTrigger::Admin,
        &outcome,
        &state.gate.policy().revision(),
    );
    let seq = match state.audit().append(event).await {
        Ok(r) => r.seq,
        Err(e) => return audit_unavailable(e).into_response(),
    };
    match outcome {
        ReloadOutcome::Swapped { revision } => json_response(
            StatusCode::OK,
            &json!({"outcome": "reloaded", "revision": revision, "audit_seq": seq}),
        ),
        ReloadOutcome::Unchanged => json_response(
            StatusCode::OK,
            &json!({"outcome": "unchanged", "revision": state.gate.policy().revision(), "audit_seq": seq}),
        ),
        ReloadOutcome::Rejected { error, serving } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy_rejected",
            format!("the new bundle was rejected and revision {serving} keeps serving: {error}"),
        )
        .into_response(),
    }
}
