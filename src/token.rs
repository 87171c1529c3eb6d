//! Bearer tokens kept only as their SHA-256: the admin token and agent identity tokens share
//! this one hashing and constant-time comparison.

use http::HeaderMap;
use http::header::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 of a secret token. The token itself is never stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    /// From 64 hex characters (the `token_sha256` form in config); `None` if malformed.
    pub fn from_hex(hex_sha256: &str) -> Option<TokenHash> {
        let bytes = hex::decode(hex_sha256.trim()).ok()?;
        bytes.try_into().ok().map(TokenHash)
    }

    /// The hash of a token as presented (surrounding whitespace ignored).
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.trim().as_bytes()).into())
    }

    /// Hex SHA-256 of a token, the form `*.token_sha256` takes in config.
    pub fn hex_of(token: &str) -> String {
        hex::encode(TokenHash::of(token).0)
    }

    /// Whether `presented` is the token this hash was made from (constant-time).
    pub fn matches(&self, presented: &str) -> bool {
        TokenHash::of(presented).0.ct_eq(&self.0).into()
    }
}

/// The credential of an `Authorization`-style header, split into scheme and value.
pub fn credential<'h>(headers: &'h HeaderMap, header: &HeaderName) -> Option<(&'h str, &'h str)> {
    let value = headers.get(header)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    (!rest.is_empty()).then_some((scheme, rest))
}

/// The bearer token of a request's `Authorization` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    credential(headers, &http::header::AUTHORIZATION)
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_and_compares() {
        let h = TokenHash::from_hex(&TokenHash::hex_of("s3cret")).unwrap();
        assert!(h.matches("s3cret") && h.matches(" s3cret\n"));
        assert!(!h.matches("s3cre"));
        assert!(TokenHash::from_hex("abc").is_none());
        assert!(TokenHash::from_hex(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn bearer_needs_the_scheme_and_a_value() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, "bearer  tok ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("tok"));
        headers.insert(http::header::AUTHORIZATION, "Basic tok".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(http::header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
