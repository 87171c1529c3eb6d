//! The admin listener: operators and approvers only. Health, readiness and the audit public
//! key are open; status, the audit export, mode, policy reload and approvals need the admin
//! token.

pub(crate) mod approvals;
pub(crate) mod audit;
pub mod auth;
pub(crate) mod control;
pub mod refusals;
mod settings;

pub use audit::MAX_ENTRIES_PAGE as MAX_AUDIT_ENTRIES_PAGE;
pub use settings::{ANONYMOUS_WINDOW_S, AdminConfig, ApproverCredential, approver_problems};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;

use crate::approvers::webhook::WebhookSecret;
use crate::gate::Gate;
use crate::metrics::Metrics;

use crate::http_api::{ApiError, ResponseBody, full_body, json_response};
use crate::token::TokenHash;
use refusals::{Endpoint, Reason};

/// The handles the admin listener's handlers use, and nothing else. The composition root
/// (`app.rs`) builds it; nothing under `admin/` imports the composition root.
pub struct AdminState {
    pub gate: Arc<Gate>,
    pub admin_token: auth::AdminToken,
    /// Verifies signed generic approval callbacks (`notify.webhook.secret`).
    pub webhook_secret: Option<WebhookSecret>,
    /// Verifies Slack interactivity requests (`notify.slack.signing_secret`).
    pub slack_signing_secret: Option<String>,
    /// Largest request body read (`limits.max_body_bytes`).
    pub max_body: usize,
    /// Where the sidecar keeps its state; readiness probes that it takes writes.
    pub data_dir: PathBuf,
    /// Each listener's name and whether its accept loop is running (readiness).
    pub listeners: Vec<(&'static str, Arc<AtomicBool>)>,
    /// Counts requests refused before they proved who sent them (one entry per window).
    pub refusals: Arc<refusals::AnonymousRefusals>,
    /// `[approvers.NAME]`: each approver's name and token hash.
    pub approver_tokens: Vec<(String, TokenHash)>,
    /// `[approvers.NAME] webhook_secret`: the approvers whose signed callbacks must be signed
    /// with a secret of their own.
    pub approver_webhook_secrets: Vec<(String, WebhookSecret)>,
    /// The series `/metrics` serves.
    pub metrics: Arc<Metrics>,
}

/// Who a bearer token on the approvals API proves the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answerer {
    /// The admin token: the local operator (`approval.local_operator`).
    Admin,
    /// An approver's own token (`[approvers.NAME]`).
    Approver(String),
}

impl AdminState {
    /// `Ok` when the request carries the admin token; else the 401 every admin endpoint
    /// answers, counted as an anonymous refusal of `endpoint` (not an audit entry of its own).
    pub fn authorize<B>(&self, req: &Request<B>, endpoint: Endpoint) -> Result<(), ApiError> {
        self.admin_token.require(req.headers()).inspect_err(|_| {
            self.refusals
                .record(endpoint, Reason::AdminToken, refusals::peer_ip(req))
        })
    }

    /// Who may read and answer approvals: the admin token's holder or an approver with a token
    /// of their own. Anyone else gets the 401, counted as an anonymous refusal of `endpoint`.
    pub fn answerer<B>(&self, req: &Request<B>, endpoint: Endpoint) -> Result<Answerer, ApiError> {
        if self.admin_token.authorizes(req.headers()) {
            return Ok(Answerer::Admin);
        }
        let presented = crate::token::bearer(req.headers());
        // Every hash is compared (each in constant time), so timing does not say which matched.
        let mut found = None;
        for (name, hash) in &self.approver_tokens {
            if presented.is_some_and(|t| hash.matches(t)) && found.is_none() {
                found = Some(name.clone());
            }
        }
        match found {
            Some(name) => Ok(Answerer::Approver(name)),
            None => self.authorize(req, endpoint).map(|()| Answerer::Admin),
        }
    }

    fn data_dir_writable(&self) -> bool {
        let probe = self.data_dir.join(".ready-probe");
        let ok = std::fs::write(&probe, b"ok").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    }
}

pub async fn route<B>(state: &AdminState, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path();
    match path {
        "/healthz" => only_get(req.method(), || {
            json_response(StatusCode::OK, &json!({"status": "alive"}))
        }),
        "/readyz" => only_get(req.method(), || readiness(state)),
        "/metrics" => match *req.method() {
            Method::GET | Method::HEAD => metrics(state).await,
            ref m => ApiError::method_not_allowed(m, "GET").into_response(),
        },
        "/v1/status" => match state.authorize(&req, Endpoint::Status) {
            Ok(()) => only_get(req.method(), || status(state)),
            Err(e) => e.into_response(),
        },
        "/v1/audit/export" => match (req.method(), state.authorize(&req, Endpoint::AuditExport)) {
            (_, Err(e)) => e.into_response(),
            (&Method::GET, Ok(())) => audit::export(state, req.uri().query()).await,
            (m, Ok(())) => ApiError::method_not_allowed(m, "GET").into_response(),
        },
        "/v1/audit/entries" | "/v1/audit/timeline" | "/v1/audit/blob" => {
            match (req.method(), state.authorize(&req, Endpoint::AuditRead)) {
                (_, Err(e)) => e.into_response(),
                (&Method::GET, Ok(())) => {
                    let query = req.uri().query();
                    match path {
                        "/v1/audit/entries" => audit::entries(state, query).await,
                        "/v1/audit/timeline" => audit::timeline(state, query).await,
                        _ => audit::blob(state, query).await,
                    }
                }
                (m, Ok(())) => ApiError::method_not_allowed(m, "GET").into_response(),
            }
        }
        "/v1/mode" => control::set_mode(state, req).await,
        "/v1/policy/reload" => control::reload_policy(state, req).await,
        "/v1/audit/pubkey" => only_get(req.method(), || audit::pubkey(state)),
        "/v1/slack/interactions" => approvals::slack_interactions(state, req).await,
        p if p == "/v1/approvals" || p.starts_with("/v1/approvals/") => {
            approvals::route(state, req).await
        }
        _ => ApiError::not_found(path).into_response(),
    }
}

fn only_get(method: &Method, f: impl FnOnce() -> Response<ResponseBody>) -> Response<ResponseBody> {
    if method == Method::GET || method == Method::HEAD {
        f()
    } else {
        ApiError::method_not_allowed(method, "GET").into_response()
    }
}

/// Ready when policy is loaded (always, once serving: start fails without a bundle), the audit
/// log takes writes, the data directory is writable and every listener accepts.
fn readiness(state: &AdminState) -> Response<ResponseBody> {
    let data_dir_writable = state.data_dir_writable();
    let health = state.gate.audit_health();
    let audit_writable = health.writable();
    let listeners: serde_json::Map<String, serde_json::Value> = (state.listeners.iter())
        .map(|(name, up)| (name.to_string(), up.load(Ordering::Relaxed).into()))
        .collect();
    let listeners_up = listeners.values().all(|up| *up == true);
    let ready = data_dir_writable && audit_writable && listeners_up;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "ready": ready,
            "checks": {
                "policy_loaded": true,
                "data_dir_writable": data_dir_writable,
                "audit_writable": audit_writable,
                "listeners_up": listeners_up,
            },
            "listeners": listeners,
            "audit_error": health.last_error(),
        }),
    )
}

/// The Prometheus scrape: unauthenticated, like the probes (it holds counts, not content).
async fn metrics(state: &AdminState) -> Response<ResponseBody> {
    let pending = state.gate.pending_approvals().await;
    let text = state
        .metrics
        .encode(pending, state.gate.audit_health().size());
    let mut resp = Response::new(full_body(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

fn status(state: &AdminState) -> Response<ResponseBody> {
    let bundle = state.gate.policy_bundle();
    let (verifier_key, origin) = state.gate.audit_identity();
    json_response(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "mode": state.gate.mode(),
            "environment": state.gate.environment(),
            "policy": {
                "revision": bundle.revision,
                "source": bundle.source.to_string(),
                "files": bundle.file_count,
            },
            "audit": {
                "entries": state.gate.audit_health().size(),
                "origin": origin,
                "verifier_key": verifier_key,
            },
        }),
    )
}
