//! Signatures on approval traffic: Slack's request signing (`X-Slack-Signature`) for
//! interactivity callbacks, and Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) for outgoing notifications and incoming generic callbacks.
//!
//! Every comparison is constant-time (HMAC verification in the `hmac` crate), and a
//! timestamp more than five minutes away from now is refused, so a captured request cannot
//! be replayed later.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Largest accepted distance between a signed timestamp and now, either way.
pub const MAX_SKEW_S: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("timestamp is {0} s away from now (more than 300 s): stale or replayed")]
    Stale(i64),
    #[error("signature does not match")]
    Mismatch,
    #[error("invalid secret: {0}")]
    Secret(&'static str),
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn check_skew(timestamp: &str, now_unix: i64) -> Result<i64, SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed("timestamp"))?;
    let age = now_unix.saturating_sub(ts);
    if age.abs() > MAX_SKEW_S {
        return Err(SignatureError::Stale(age));
    }
    Ok(ts)
}

/// Slack's signature of a request: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn slack_signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut m = mac(signing_secret.as_bytes());
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    format!("v0={}", hex::encode(m.finalize().into_bytes()))
}

/// Verify `X-Slack-Signature` against `X-Slack-Request-Timestamp` and the raw body.
pub fn verify_slack(
    signing_secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_unix: i64,
) -> Result<(), SignatureError> {
    check_skew(timestamp, now_unix)?;
    let tag = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed("X-Slack-Signature"))?;
    let mut m = mac(signing_secret.as_bytes());
    m.update(b"v0:");
    m.update(timestamp.trim().as_bytes());
    m.update(b":");
    m.update(body);
    m.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
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

    // The example in Slack's "Verifying requests from Slack" guide.
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TS: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slack_reference_example_verifies() {
        assert_eq!(
            slack_signature(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes()),
            SLACK_SIG
        );
        let now = 1531420618 + 10;
        verify_slack(
            SLACK_SECRET,
            SLACK_TS,
            SLACK_BODY.as_bytes(),
            SLACK_SIG,
            now,
        )
        .unwrap();
    }

    #[test]
    fn slack_rejects_changed_body_stale_time_and_garbage() {
        let now = 1531420618;
        let body = SLACK_BODY.replace("roadrunner", "coyote");
        assert_eq!(
            verify_slack(SLACK_SECRET, SLACK_TS, body.as_bytes(), SLACK_SIG, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_slack(
                SLACK_SECRET,
                SLACK_TS,
                SLACK_BODY.as_bytes(),
                SLACK_SIG,
                now + 301
            ),
            Err(SignatureError::Stale(301))
        );
        assert!(matches!(
            verify_slack(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes(), "v0=zz", now),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify_slack(SLACK_SECRET, "soon", SLACK_BODY.as_bytes(), SLACK_SIG, now),
            Err(SignatureError::Malformed(_))
        ));
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
