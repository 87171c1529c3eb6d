//! Approvers' front door on the admin listener: Slack interactivity, signed generic
//! callbacks, and the operator API behind `clawgate approvals`. Each translates its protocol
//! into one [`AnswerInput`] for the approval service, which owns the rules.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::refusals::{Endpoint, Reason, peer_ip};
use super::{AdminState, Answerer};
use crate::approvers::signature::MAX_SKEW_S;
use crate::approvers::slack::{BlockAction, InteractionError, verify_slack};
use crate::gate::approval::{
    AnswerInput, AnswerRejected, ApprovalStatus, ApprovalView, CallbackRecord, Channel, Vote,
    now_ms,
};
use crate::http_api::{
    ApiError, ResponseBody, json_response, parse_json, read_body, read_json_body,
};

/// How long a callback's key is remembered against replays: twice the signature window, since
/// anything older is refused as stale before it is looked up.
const REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2 * MAX_SKEW_S as u64);

/// A header's value as text, if present and visible ASCII.
fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Routes under `/v1/approvals` on the admin listener.
pub async fn route<B>(state: &AdminState, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_string();
    let rest = path.trim_start_matches("/v1/approvals").trim_matches('/');
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let result = match (segments.as_slice(), req.method().clone()) {
        ([], Method::GET) => list(state, &req).await,
        ([id], Method::GET) => show(state, &req, id).await,
        ([id, "decision"], Method::POST) => decision(state, req, id).await,
        ([], m) | ([_], m) => Err(ApiError::method_not_allowed(&m, "GET")),
        ([_, "decision"], m) => Err(ApiError::method_not_allowed(&m, "POST")),
        _ => Err(ApiError::not_found(&path)),
    };
    result.unwrap_or_else(ApiError::into_response)
}

async fn list<B>(state: &AdminState, req: &Request<B>) -> Result<Response<ResponseBody>, ApiError> {
    state.answerer(req, Endpoint::Approvals)?;
    let mut status = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "status" => {
                status = Some(
                    serde_json::from_value::<ApprovalStatus>(Value::String(v.to_string()))
                        .map_err(|_| {
                            ApiError::new(
                                StatusCode::BAD_REQUEST,
                                "invalid_request",
                                format!(
                                    "status must be pending, approved, denied or expired, not {v:?}"
                                ),
                            )
                        })?,
                )
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("unknown query parameter {other:?}; use status"),
                ));
            }
        }
    }
    let approvals = state.gate.list_approvals(status).await;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "approvals": approvals }),
    ))
}

async fn show<B>(
    state: &AdminState,
    req: &Request<B>,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.answerer(req, Endpoint::Approvals)?;
    match state.gate.approval(id).await {
        Ok(Some(view)) => Ok(json_response(StatusCode::OK, &view)),
        Ok(None) => Err(not_found(id)),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval_unavailable",
            e.to_string(),
        )),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "approval_not_found",
        format!("no approval with id {id}"),
    )
}

/// The body of `POST /v1/approvals/{id}/decision`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// The approval answered. A signed callback must carry it (the signature then binds the
    /// answer to this approval); with the admin token it is optional. Either way it must be
    /// the approval of the URL.
    #[serde(default)]
    approval_id: Option<String>,
    decision: Vote,
    /// Who answers. With the admin token it defaults to `approval.local_operator`; a signed
    /// callback must name one.
    #[serde(default)]
    approver: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// If given, must equal the approval's bound action hash.
    #[serde(default)]
    action_hash: Option<String>,
}

/// Stored per webhook-id, so a repeated delivery gets the first answer back. Claimed (with
/// no status yet) before the answer is applied, completed after.
#[derive(Debug, Serialize, Deserialize)]
struct SeenCallback {
    body_sha256: String,
    /// The HTTP status of the first answer; none while it is being applied.
    #[serde(default)]
    status: Option<u16>,
    response: Value,
}

/// Why a signed answer does not belong to the approval it was posted to.
fn unbound(id: &str, body: &DecisionBody, signed: bool) -> Option<ApiError> {
    match body.approval_id.as_deref() {
        Some(named) if named != id => Some(ApiError::new(
            StatusCode::CONFLICT,
            "approval_mismatch",
            format!(
                "the answer is for approval {named}, not {id}; post it to its own decision_url"
            ),
        )),
        None if signed => Some(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "a signed answer must name the approval it answers: add \"approval_id\": \"{id}\" to the signed body"
            ),
        )),
        _ => None,
    }
}

/// `POST /v1/approvals/{id}/decision`: a generic callback signed the Standard Webhooks way
/// (channel `webhook`), or an operator with the admin token (channel `cli`).
async fn decision<B>(
    state: &AdminState,
    req: Request<B>,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let gate = &state.gate;
    let headers = req.headers().clone();
    let peer = peer_ip(&req);
    let anonymous = |reason: Reason| {
        state
            .refusals
            .record(Endpoint::ApprovalDecision, reason, peer)
    };
    let header = |name: &str| header_string(&headers, name);
    let webhook_id = header("webhook-id");
    let channel = if webhook_id.is_some() {
        Channel::Webhook
    } else {
        Channel::Cli
    };
    let answerer = match channel {
        Channel::Cli => Some(state.answerer(&req, Endpoint::ApprovalDecision)?),
        _ => None,
    };
    let body = read_json_body(req, state.max_body).await?;
    let mut seen_key = None;
    let mut webhook_credential = "webhook".to_string();
    let parsed;
    if let Some(msg_id) = webhook_id {
        // An approver with a webhook secret of their own is answered for only with it: the
        // approver the body names (read before the signature is checked, to pick the key)
        // decides which secret must have signed it.
        let named = parse_json::<DecisionBody>(&body)
            .ok()
            .and_then(|b| b.approver)
            .map(|a| a.trim().to_string());
        let personal = named.as_deref().and_then(|n| {
            (state.approver_webhook_secrets.iter()).find(|(name, _)| name.as_str() == n)
        });
        let secret = match personal {
            Some((name, secret)) => {
                webhook_credential = format!("webhook:{name}");
                secret
            }
            None => match &state.webhook_secret {
                Some(secret) => secret,
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "webhook_not_configured",
                        "signed callbacks need notify.webhook.secret (or CLAWGATE_WEBHOOK_SECRET)",
                    ));
                }
            },
        };
        let ts = header("webhook-timestamp").unwrap_or_default();
        let sig = header("webhook-signature").unwrap_or_default();
        if let Err(e) = secret.verify(&msg_id, &ts, &body, &sig, now_ms() / 1000) {
            anonymous(Reason::of_signature(&e));
            return Err(unauthorized(&format!("webhook signature rejected: {e}")));
        }
        parsed = parse_json::<DecisionBody>(&body)?;
        // Bound before it is claimed: a delivery posted to the wrong approval is refused and
        // can still be posted where it belongs.
        if let Some(e) = unbound(id, &parsed, true) {
            gate.record_refused_callback(Channel::Webhook, Some(id), &e.message)
                .await;
            return Err(e);
        }
        let key = format!("webhook:{msg_id}");
        let body_sha256 = hex::encode(Sha256::digest(&body));
        let claim = SeenCallback {
            body_sha256: body_sha256.clone(),
            status: None,
            response: Value::Null,
        };
        let claim = serde_json::to_vec(&claim).map_err(unavailable)?;
        if let Some(stored) = gate
            .claim_callback(&key, claim, REPLAY_WINDOW)
            .await
            .map_err(unavailable)?
        {
            let seen: Option<SeenCallback> = serde_json::from_slice(&stored).ok();
            // An exact copy proves who made the original, not who sent the copy: counted, not
            // recorded. The same id with another body was signed anew: recorded.
            let why = match seen {
                Some(seen) if seen.body_sha256 == body_sha256 => {
                    anonymous(Reason::Replayed);
                    match seen.status {
                        None => format!(
                            "webhook-id {msg_id} is being applied by another copy of this delivery; it counts once"
                        ),
                        Some(status) => {
                            let mut response = seen.response;
                            response["replayed"] = Value::Bool(true);
                            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                            return Ok(json_response(status, &response));
                        }
                    }
                }
                _ => {
                    let why = format!("webhook-id {msg_id} was already used for a different body");
                    gate.record_refused_callback(Channel::Webhook, Some(id), &why)
                        .await;
                    why
                }
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "replayed_callback",
                why,
            ));
        }
        seen_key = Some((key, body_sha256));
    } else {
        parsed = parse_json::<DecisionBody>(&body)?;
        if let Some(e) = unbound(id, &parsed, false) {
            return Err(e);
        }
    }
    let claimed = parsed.approver.map(|a| a.trim().to_string());
    // A token answers as whom it proves; a signed webhook names its approver: signed with that
    // approver's own secret it is theirs, signed with the shared secret its approvals count
    // once toward a quorum whoever it names.
    let (approver, credential) = match answerer {
        Some(answerer) => {
            let (me, credential) = match answerer {
                Answerer::Admin => (gate.local_operator().to_string(), "admin".into()),
                Answerer::Approver(name) => (name.clone(), format!("approver:{name}")),
            };
            if let Some(other) = claimed.filter(|c| *c != me) {
                let e = not_authenticated_as(&other, &me);
                gate.record_refused_callback(Channel::Cli, Some(id), &e.message)
                    .await;
                return Err(e);
            }
            (me, credential)
        }
        None => (claimed.unwrap_or_default(), webhook_credential),
    };
    let input = AnswerInput {
        approver,
        vote: parsed.decision,
        channel,
        reason: parsed.reason,
        action_hash: parsed.action_hash,
        reply_handle: None,
        credential,
    };
    let answered = match seen_key.clone() {
        // A counted answer stores what this delivery answered under its key in the answer's
        // own commit; anything else is remembered below.
        Some((key, body_sha256)) => {
            let stored = Box::new(move |view: &ApprovalView| {
                let seen = SeenCallback {
                    body_sha256,
                    status: Some(StatusCode::OK.as_u16()),
                    response: json!({"approval": view}),
                };
                serde_json::to_vec(&seen).unwrap_or_default()
            });
            let callback = CallbackRecord { key, stored };
            gate.answer_approval_callback(id, input, callback).await
        }
        None => gate.answer_approval(id, input).await,
    };
    let counted = answered.is_ok();
    let (status, response) = match answered {
        Ok(view) => (StatusCode::OK, json!({"approval": view})),
        Err(rejected) => {
            let e = rejection(&rejected);
            (
                e.status,
                json!({"error": {"code": e.code, "message": e.message}}),
            )
        }
    };
    if let Some((key, body_sha256)) = seen_key.filter(|_| !counted) {
        let seen = SeenCallback {
            body_sha256,
            status: Some(status.as_u16()),
            response: response.clone(),
        };
        let bytes = serde_json::to_vec(&seen).unwrap_or_default();
        gate.remember_callback(&key, bytes, REPLAY_WINDOW)
            .await
            .map_err(unavailable)?;
    }
    Ok(json_response(status, &response))
}

/// A token naming another approver than the one it proves.
fn not_authenticated_as(claimed: &str, me: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "approver_not_authenticated",
        format!(
            "this token answers only as {me}, not {claimed}: {claimed} answers with a token of their own ([approvers.{claimed}] token_sha256) or through Slack"
        ),
    )
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "approval_unavailable",
        e.to_string(),
    )
}

/// The HTTP form of a rejected answer.
fn rejection(r: &AnswerRejected) -> ApiError {
    let status = match r {
        AnswerRejected::NotFound(_) => StatusCode::NOT_FOUND,
        AnswerRejected::NotAllowed(_) | AnswerRejected::SelfApproval(_) => StatusCode::FORBIDDEN,
        AnswerRejected::NoApprover => StatusCode::BAD_REQUEST,
        AnswerRejected::Failed(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, r.code(), r.to_string())
}

/// `POST /v1/slack/interactions`: Slack's interactivity request URL. Verifies the request
/// signature, refuses stale and replayed requests, and applies the button's answer.
/// Slack wants an answer within 3 seconds; everything here is local and takes milliseconds.
pub async fn slack_interactions<B>(state: &AdminState, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if req.method() != Method::POST {
        return ApiError::method_not_allowed(req.method(), "POST").into_response();
    }
    slack(state, req)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn slack<B>(state: &AdminState, req: Request<B>) -> Result<Response<ResponseBody>, ApiError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let gate = &state.gate;
    let Some(secret) = &state.slack_signing_secret else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "slack_not_configured",
            "Slack interactivity needs notify.slack.signing_secret (or CLAWGATE_SLACK_SIGNING_SECRET)",
        ));
    };
    let headers = req.headers().clone();
    let peer = peer_ip(&req);
    let anonymous = |reason: Reason| {
        state
            .refusals
            .record(Endpoint::SlackInteractions, reason, peer)
    };
    let header = |name: &str| header_string(&headers, name);
    let body: Bytes = read_body(req, state.max_body, "application/x-www-form-urlencoded").await?;
    let (Some(ts), Some(sig)) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    ) else {
        anonymous(Reason::MissingSignature);
        return Err(unauthorized(
            "missing X-Slack-Request-Timestamp or X-Slack-Signature",
        ));
    };
    if let Err(e) = verify_slack(secret, &ts, &body, &sig, now_ms() / 1000) {
        anonymous(Reason::of_signature(&e));
        return Err(unauthorized(&format!("Slack signature rejected: {e}")));
    }
    // Claimed before the click is applied: of concurrent copies exactly one goes on.
    let key = format!("slack:{sig}");
    if gate
        .claim_callback(&key, Vec::new(), REPLAY_WINDOW)
        .await
        .map_err(unavailable)?
        .is_some()
    {
        // An exact copy proves who made the original, not who sent the copy: counted.
        anonymous(Reason::Replayed);
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replayed_callback",
            "replayed Slack request (this signature was already used)",
        ));
    }
    let action = parse_block_action(&body)?;
    let input = AnswerInput {
        credential: format!("slack:{}", action.user_id),
        approver: action.user_id,
        vote: action.vote,
        channel: Channel::Slack,
        reason: None,
        action_hash: None,
        reply_handle: action.response_url,
    };
    // Slack shows nothing for a block_actions response body; the message update through
    // response_url (sent when the approval resolves) is what approvers see. The body still
    // says what happened, for logs and tests.
    let text = match gate.answer_approval(&action.approval_id, input).await {
        Ok(view) => match view.status {
            ApprovalStatus::Pending => format!(
                "Recorded. {} of {} approvals so far.",
                view.answers
                    .iter()
                    .filter(|a| a.vote == Vote::Approve)
                    .count(),
                view.quorum
            ),
            s => format!("Recorded. The approval is now {}.", s.as_str()),
        },
        Err(rejected) => format!("Not recorded: {rejected}."),
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"response_type": "ephemeral", "replace_original": false, "text": text}),
    ))
}

/// Slack's click as the approval service takes it; a payload it cannot read is a 400.
fn parse_block_action(body: &[u8]) -> Result<BlockAction, ApiError> {
    BlockAction::parse(body).map_err(|e| {
        let code = match e {
            InteractionError::MalformedJson(_) => "malformed_json",
            InteractionError::Invalid(_) => "invalid_request",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
    })
}
