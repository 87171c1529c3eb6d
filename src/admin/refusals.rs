//! Requests the admin listener refuses before they prove who sent them — a missing, malformed,
//! stale or wrong signature, a missing or wrong admin token, an exact copy of a request already
//! seen — are counted, not recorded one by one (issue 15, finding 7): whoever reaches the admin
//! Ingress must not be able to grow the audit log. Each refusal counts in the
//! `clawgate_anonymous_refusals_total` metric at once, and each window
//! (`admin.anonymous_window_s`) that saw any ends in one `access` entry with the counts; the
//! last window is written at shutdown.
//!
//! Refusals of requests that did authenticate (a valid signature or token) are not counted
//! here: the approval service records each of them (`callback_rejected`, `answer_rejected`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Request;
use tokio::sync::watch;

use crate::approvers::SignatureError;
use crate::audit::AuditLog;
use crate::audit::events::{self, ANONYMOUS_PEERS_KEPT, AnonymousWindow};
use crate::gate::approval::{now_ms, rfc3339};
use crate::identity::PeerInfo;
use crate::metrics::Metrics;

/// The admin endpoint that refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/slack/interactions`.
    SlackInteractions,
    /// `POST /v1/approvals/{id}/decision`.
    ApprovalDecision,
    /// `GET /v1/approvals`, `GET /v1/approvals/{id}`.
    Approvals,
    Status,
    AuditExport,
    /// `/v1/audit/entries`, `/v1/audit/timeline`, `/v1/audit/blob`.
    AuditRead,
    Mode,
    PolicyReload,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::SlackInteractions => "slack_interactions",
            Endpoint::ApprovalDecision => "approval_decision",
            Endpoint::Approvals => "approvals",
            Endpoint::Status => "status",
            Endpoint::AuditExport => "audit_export",
            Endpoint::AuditRead => "audit_read",
            Endpoint::Mode => "mode",
            Endpoint::PolicyReload => "policy_reload",
        }
    }
}

/// Why a request proved nothing about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MissingSignature,
    MalformedSignature,
    Stale,
    BadSignature,
    /// An exact copy of a signed request already seen: the signature proves who made the
    /// original, not who sent the copy.
    Replayed,
    AdminToken,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingSignature => "missing_signature",
            Reason::MalformedSignature => "malformed_signature",
            Reason::Stale => "stale",
            Reason::BadSignature => "bad_signature",
            Reason::Replayed => "replayed",
            Reason::AdminToken => "admin_token",
        }
    }

    /// The reason a signature check failed.
    pub fn of_signature(e: &SignatureError) -> Reason {
        match e {
            SignatureError::Missing(_) => Reason::MissingSignature,
            SignatureError::Malformed(_) => Reason::MalformedSignature,
            SignatureError::Stale(_) => Reason::Stale,
            SignatureError::Mismatch | SignatureError::Secret(_) => Reason::BadSignature,
        }
    }
}

/// The peer address of a request, as the listener saw it.
pub fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    req.extensions().get::<PeerInfo>().map(|p| p.remote.ip())
}

/// The counts of the window that is open.
#[derive(Debug, Default)]
struct Window {
    opened_ms: i64,
    count: u64,
    reasons: BTreeMap<&'static str, u64>,
    endpoints: BTreeMap<&'static str, u64>,
    peers: BTreeMap<String, u64>,
    other_peers: u64,
}

impl Window {
    fn opened_at(ms: i64) -> Window {
        Window {
            opened_ms: ms,
            ..Window::default()
        }
    }
}

/// Counts anonymous refusals and writes one audit entry per window that saw any.
pub struct AnonymousRefusals {
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
    window: Mutex<Window>,
}

impl std::fmt::Debug for AnonymousRefusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnonymousRefusals")
    }
}

impl AnonymousRefusals {
    pub fn new(audit: Arc<AuditLog>, metrics: Arc<Metrics>) -> AnonymousRefusals {
        AnonymousRefusals {
            audit,
            metrics,
            window: Mutex::new(Window::opened_at(now_ms())),
        }
    }

    /// Count one refusal: in the metric now, in the window's entry when it closes. Memory
    /// stays bounded: reasons and endpoints are fixed sets, and only the first
    /// [`ANONYMOUS_PEERS_KEPT`] peer addresses of a window are named.
    pub fn record(&self, endpoint: Endpoint, reason: Reason, peer: Option<IpAddr>) {
        self.metrics
            .anonymous_refusal(endpoint.as_str(), reason.as_str());
        tracing::debug!(
            endpoint = endpoint.as_str(),
            reason = reason.as_str(),
            peer = ?peer,
            "anonymous admin request refused"
        );
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        w.count += 1;
        *w.reasons.entry(reason.as_str()).or_default() += 1;
        *w.endpoints.entry(endpoint.as_str()).or_default() += 1;
        let peer = peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        if let Some(n) = w.peers.get_mut(&peer) {
            *n += 1;
        } else if w.peers.len() < ANONYMOUS_PEERS_KEPT {
            w.peers.insert(peer, 1);
        } else {
            w.other_peers += 1;
        }
    }

    /// Close the window: write its entry if it counted anything, and open the next.
    pub async fn close_window(&self) {
        let now = now_ms();
        let closed = {
            let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *w, Window::opened_at(now))
        };
        if closed.count == 0 {
            return;
        }
        let (start, end) = (rfc3339(closed.opened_ms), rfc3339(now));
        tracing::warn!(count = closed.count, reasons = ?closed.reasons, endpoints = ?closed.endpoints,
            window_start = %start, "admin requests refused without credentials in this window");
        let event = events::anonymous_refusals(AnonymousWindow {
            start: &start,
            end: &end,
            count: closed.count,
            reasons: &closed.reasons,
            endpoints: &closed.endpoints,
            peers: &closed.peers,
            other_peers: closed.other_peers,
        });
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, count = closed.count, "could not record a window of anonymous refusals");
        }
    }

    /// Close a window every `every` until `stop` changes. The window open at shutdown is
    /// closed by the caller (after the listeners drained), not here.
    pub async fn run(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) {
        let start = tokio::time::Instant::now() + every;
        let mut tick = tokio::time::interval_at(start, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.close_window().await,
                _ = stop.changed() => break,
            }
        }
    }
}
