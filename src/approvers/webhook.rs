//! Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) both ways:
//! the signed `approval.requested` / `approval.resolved` events clawgate sends, and the signed
//! callbacks an approving system sends back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::Mac;
use serde_json::{Value, json};

use super::signature::{HmacSha256, SignatureError, check_skew, mac};
use crate::gate::approval::ApprovalView;
use crate::gate::approval::model::{now_ms, rfc3339};

/// The event announcing a new approval.
pub const REQUESTED: &str = "approval.requested";
/// The event announcing several new approvals at once (a burst past `notify.batch_after`).
pub const REQUESTED_BATCH: &str = "approval.requested_batch";
/// The event announcing an approval's outcome.
pub const RESOLVED: &str = "approval.resolved";

/// The generic webhook event: `{"type", "timestamp", "data": view + decision_url}`.
pub fn webhook_event(kind: &str, view: &ApprovalView, callback_base: &str) -> Value {
    json!({"type": kind, "timestamp": rfc3339(now_ms()), "data": event_data(view, callback_base)})
}

/// Several new approvals in one event: `{"type": "approval.requested_batch", "timestamp",
/// "data": {"count", "approvals": [what each approval.requested event's data would be]}}`.
pub fn webhook_batch_event(views: &[ApprovalView], callback_base: &str) -> Value {
    let approvals: Vec<Value> = views.iter().map(|v| event_data(v, callback_base)).collect();
    json!({"type": REQUESTED_BATCH, "timestamp": rfc3339(now_ms()),
        "data": {"count": approvals.len(), "approvals": approvals}})
}

/// An approval as webhook receivers see it: the view and where to answer it.
fn event_data(view: &ApprovalView, callback_base: &str) -> Value {
    let mut data = serde_json::to_value(view).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut data {
        m.insert(
            "decision_url".into(),
            json!(format!(
                "{}/v1/approvals/{}/decision",
                callback_base.trim_end_matches('/'),
                view.id
            )),
        );
    }
    data
}

/// A Standard Webhooks secret: `whsec_` + base64 of the key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    pub fn parse(s: &str) -> Result<WebhookSecret, SignatureError> {
        let b64 = s
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SignatureError::Secret("must start with whsec_"))?;
        let key = B64
            .decode(b64)
            .map_err(|_| SignatureError::Secret("the part after whsec_ is not base64"))?;
        // The spec asks for 24 to 64 random bytes.
        if key.len() < 24 || key.len() > 64 {
            return Err(SignatureError::Secret("the key must be 24 to 64 bytes"));
        }
        Ok(WebhookSecret(key))
    }

    /// A fresh random secret, for `clawgate` to print when asked.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        // The OS random source failing is not recoverable; an all-zero key would be worse.
        getrandom::fill(&mut key).unwrap_or_else(|e| panic!("OS random source failed: {e}"));
        format!("whsec_{}", B64.encode(key))
    }

    fn tag(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut m = mac(&self.0);
        m.update(msg_id.as_bytes());
        m.update(b".");
        m.update(timestamp.as_bytes());
        m.update(b".");
        m.update(body);
        m
    }

    /// The `webhook-signature` header value: `v1,` + base64 HMAC-SHA256 of
    /// `{msg_id}.{timestamp}.{body}`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let m = self.tag(msg_id, &timestamp.to_string(), body);
        format!("v1,{}", B64.encode(m.finalize().into_bytes()))
    }

    /// Verify the Standard Webhooks headers of a request. The signature header may carry
    /// several space-separated signatures (key rotation); one valid `v1` signature suffices.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        body: &[u8],
        signature_header: &str,
        now_unix: i64,
    ) -> Result<(), SignatureError> {
        if msg_id.trim().is_empty() {
            return Err(SignatureError::Missing("webhook-id"));
        }
        check_skew(timestamp, now_unix)?;
        let mut saw_v1 = false;
        for sig in signature_header.split_whitespace() {
            let Some(b64) = sig.strip_prefix("v1,") else {
                continue;
            };
            saw_v1 = true;
            let Ok(tag) = B64.decode(b64) else { continue };
            if self
                .tag(msg_id, timestamp.trim(), body)
                .verify_slice(&tag)
                .is_ok()
            {
                return Ok(());
            }
        }
        if saw_v1 {
            Err(SignatureError::Mismatch)
        } else {
            Err(SignatureError::Malformed(
                "webhook-signature (no v1 signature)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvers::fixtures::view;

    #[test]
    fn webhook_event_carries_the_view_and_decision_url() {
        let v = view();
        let e = webhook_event(REQUESTED, &v, "http://127.0.0.1:9482/");
        assert_eq!(e["type"], REQUESTED);
        assert!(chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(e["data"]["id"], v.id.as_str());
        assert_eq!(e["data"]["status"], "pending");
        assert_eq!(e["data"]["action"], v.action);
        assert_eq!(
            e["data"]["decision_url"],
            format!("http://127.0.0.1:9482/v1/approvals/{}/decision", v.id)
        );
    }

    // The example in the Standard Webhooks specification.
    const WH_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const WH_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const WH_TS: i64 = 1614265330;
    const WH_BODY: &str = r#"{"test": 2432232314}"#;
    const WH_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_webhooks_reference_example() {
        let secret = WebhookSecret::parse(WH_SECRET).unwrap();
        assert_eq!(secret.sign(WH_ID, WH_TS, WH_BODY.as_bytes()), WH_SIG);
        let header = format!("v1,bm90IHRoaXMgb25l {WH_SIG}");
        secret
            .verify(WH_ID, "1614265330", WH_BODY.as_bytes(), &header, WH_TS + 5)
            .unwrap();
    }

    #[test]
    fn standard_webhooks_rejects_forgeries() {
        let secret = WebhookSecret::parse(WH_SECRET).unwrap();
        let ts = "1614265330";
        let body = WH_BODY.as_bytes();
        assert_eq!(
            secret.verify("msg_other", ts, body, WH_SIG, WH_TS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            secret.verify(WH_ID, ts, b"{\"test\": 1}", WH_SIG, WH_TS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            secret.verify(WH_ID, ts, body, WH_SIG, WH_TS + 3600),
            Err(SignatureError::Stale(3600))
        );
        assert!(matches!(
            secret.verify(WH_ID, ts, body, "v2,abc", WH_TS),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            secret.verify("", ts, body, WH_SIG, WH_TS),
            Err(SignatureError::Missing("webhook-id"))
        );
        let other = WebhookSecret::parse(&WebhookSecret::generate()).unwrap();
        assert_eq!(
            other.verify(WH_ID, ts, body, WH_SIG, WH_TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn secrets_must_be_well_formed() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
    }
}
