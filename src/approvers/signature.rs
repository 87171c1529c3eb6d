//! What Slack's request signing and Standard Webhooks share: HMAC-SHA256, the errors, and the
//! replay window. Every comparison is constant-time (HMAC verification in the `hmac` crate),
//! and a timestamp more than five minutes away from now is refused, so a captured request
//! cannot be replayed later.

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

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

pub(crate) fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

pub(crate) fn check_skew(timestamp: &str, now_unix: i64) -> Result<i64, SignatureError> {
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
