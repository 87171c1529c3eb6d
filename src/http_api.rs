//! What every JSON endpoint shares: the error shape, body limits, content-type checks and
//! JSON parsing that tells malformed JSON apart from a well-formed body of the wrong shape.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body of every listener: full JSON now, streamed bodies for proxied traffic.
pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// An error answered as `{"error": {"code", "message"}}`. Codes are stable; messages are
/// for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no endpoint at {path}"),
        )
    }

    pub fn method_not_allowed(method: &http::Method, allowed: &'static str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here; use {allowed}"),
        )
    }

    pub fn into_response(self) -> Response<ResponseBody> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        json_response(self.status, &body)
    }
}

pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full_body(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Collect a JSON request body: 415 unless it is JSON, 413 past `limit` bytes.
pub async fn read_json_body<B>(req: Request<B>, limit: usize) -> Result<Bytes, ApiError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    read_body(req, limit, "application/json").await
}

/// Collect a JSON request body (as [`read_json_body`]) and parse it into `T` (as [`parse_json`]).
pub async fn read_json<T, B>(req: Request<B>, limit: usize) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    parse_json(&read_json_body(req, limit).await?)
}

/// Collect a request body of media type `mime`: 415 for any other type, 413 past `limit`.
pub async fn read_body<B>(req: Request<B>, limit: usize, mime: &str) -> Result<Bytes, ApiError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let matches = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let given = v.split(';').next().unwrap_or("").trim();
            given.eq_ignore_ascii_case(mime)
        })
        .unwrap_or(false);
    if !matches {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the body as Content-Type: {mime}"),
        ));
    }
    let (parts, body) = req.into_parts();
    collect_limited(body, &parts.headers, limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request body is larger than the limit of {limit} bytes (limits.max_body_bytes)"
                ),
            ),
            BodyError::Unreadable(why) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("could not read the request body: {why}"),
            ),
        })
}

/// Why a request body could not be collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit, by its declared Content-Length or by what arrived.
    TooLarge,
    Unreadable(String),
}

/// Time a whole request body has to arrive.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Collect a request body of at most `limit` bytes; a declared Content-Length over the limit
/// is refused before anything is read. Each front door words the errors in its protocol.
pub async fn collect_limited<B>(
    body: B,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    // A client that declares a body and then trickles or withholds it must not hold a task
    // forever (the listener's idle timeout does not see a request still being answered).
    let collected = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect());
    match collected.await {
        Err(_) => Err(BodyError::Unreadable(format!(
            "the request body did not arrive within {} s",
            BODY_READ_TIMEOUT.as_secs()
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// The first key an object of a JSON document repeats (at any depth; keys compared after
/// unescaping, so `"to"` and `"t\u006f"` are one key), said with where it is. Parsers disagree
/// on which of repeated keys counts, so a body clawgate judges and forwards must not have any.
/// `None` also for text that is not JSON at all (that is for the caller's parser to say).
pub fn repeated_key(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<UniqueKeys>(bytes) {
        Err(e) if e.is_data() => Some(e.to_string()),
        _ => None,
    }
}

/// A JSON document read only to prove that no object in it repeats a key.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UniqueKeys, D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            map.next_value::<UniqueKeys>()?;
            seen.insert(key);
        }
        Ok(UniqueKeys)
    }
}

/// Parse JSON into `T`: `malformed_json` for bad syntax, `invalid_request` (naming the field)
/// for a body of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Fast path; the slower path-tracking parse runs only to explain a failure.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let inner = err.inner();
        // serde stops at the first shape error; only call it a shape error if the whole
        // body is valid JSON.
        let syntax_ok = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        match inner.classify() {
            serde_json::error::Category::Data if syntax_ok => {
                let path = err.path().to_string();
                let at = if path == "." {
                    String::new()
                } else {
                    format!(" at `{path}`")
                };
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("{inner}{at}"),
                )
            }
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {inner}"),
            ),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_found_at_any_depth_and_however_spelt() {
        for repeated in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"x": [{"k": 1}, {"k": 1, "\u006b": 2}]}"#,
            r#"[{"deep": {"deeper": {"n": 1, "n": 1}}}]"#,
        ] {
            let found = repeated_key(repeated.as_bytes()).unwrap_or_default();
            assert!(found.contains("appears twice"), "{repeated}: {found:?}");
        }
        for fine in [
            r#"{"a": {"k": 1}, "b": {"k": 1}}"#,
            "[1, 2, 1]",
            "{not json",
            "",
        ] {
            assert_eq!(repeated_key(fine.as_bytes()), None, "{fine}");
        }
    }
}
