//! The parts of MCP's JSON-RPC the gateway reads or writes: requests, the routing headers
//! of the 2026-07-28 revision, tool error results, and `tools/list` results (JSON or SSE).

use base64::Engine;
use serde_json::{Value, json};

/// JSON-RPC error codes used by the gateway.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: a routing header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// Not in JSON-RPC: the gateway has no such server.
pub const UNKNOWN_SERVER: i64 = -32004;

/// The first revision without sessions, whose requests carry routing headers.
pub const STATELESS_REVISION: &str = "2026-07-28";
/// Where the 2026-07-28 revision puts the protocol version inside a request.
const PROTOCOL_VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// Why a client message is refused before it is judged or forwarded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message is not valid JSON: {0}")]
    NotJson(String),
    #[error(
        "send one JSON-RPC 2.0 message object at a time (an object with \"jsonrpc\": \"2.0\"; batches are not part of MCP)"
    )]
    NotOneMessage,
    #[error("{0}; a message with a repeated key can be read as two different messages")]
    DuplicateKey(String),
    #[error(
        "tools/call without an id is a notification, which clawgate cannot hold, deny or answer; send it as a request with an id"
    )]
    CallWithoutId,
}

impl MessageError {
    /// The JSON-RPC error code of the refusal.
    pub fn code(&self) -> i64 {
        match self {
            MessageError::NotJson(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

/// A client message as the gateway judges it, and the bytes it forwards: the message
/// re-serialised from the parsed value, so the server reads exactly what was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub value: Value,
    pub wire: bytes::Bytes,
}

/// Parse one client message strictly: one JSON-RPC 2.0 object (no batch), no object with a
/// repeated key (at any depth, keys compared after unescaping), and no `tools/call` without
/// an id. Shared by the HTTP gateway and `clawgate mcp-stdio`.
pub fn parse_message(bytes: &[u8]) -> Result<Message, MessageError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| MessageError::NotJson(e.to_string()))?;
    if !value.is_object() || value.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(MessageError::NotOneMessage);
    }
    if let Some(repeated) = crate::http_api::repeated_key(bytes) {
        return Err(MessageError::DuplicateKey(repeated));
    }
    if value.get("method").and_then(Value::as_str) == Some("tools/call")
        && value.get("id").is_none()
    {
        return Err(MessageError::CallWithoutId);
    }
    let wire = serde_json::to_vec(&value)
        .map_err(|e| MessageError::NotJson(e.to_string()))?
        .into();
    Ok(Message { value, wire })
}

/// Methods whose `Mcp-Name` header mirrors a params field.
fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Whether a protocol version header names the stateless revision or a later one
/// (revisions are dates, so they sort as strings).
pub fn is_stateless(protocol_version: Option<&str>) -> bool {
    protocol_version.is_some_and(|v| v >= STATELESS_REVISION)
}

pub fn error_response(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// A `tools/call` result the model reads: the call did not run, and why.
pub fn tool_error_result(id: Value, text: String, stateless: bool) -> Value {
    let mut result = json!({"content": [{"type": "text", "text": text}], "isError": true});
    if stateless {
        result["resultType"] = json!("complete");
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// `Mcp-Name` values may be sent as `=?base64?...?=` when not plain ASCII.
fn decode_header_value(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(payload) => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(value.to_string()),
    }
}

/// The routing headers the caller sent with one request.
#[derive(Debug, Default, Clone)]
pub struct RoutingHeaders<'a> {
    pub protocol_version: Option<&'a str>,
    pub method: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// The gateway decides on the body; an upstream may route on the headers. They must agree,
/// or a call could be judged as one tool and run as another.
pub fn check_routing_headers(h: &RoutingHeaders<'_>, body: &Value) -> Result<(), String> {
    let method = body.get("method").and_then(Value::as_str);
    if let Some(m) = h.method
        && Some(m) != method
    {
        return Err(format!(
            "Mcp-Method header {m:?} does not match the body's method {:?}",
            method.unwrap_or("")
        ));
    }
    let modern = h.method.is_some() || is_stateless(h.protocol_version);
    if let Some(key) = method.and_then(name_key) {
        let body_name = body["params"].get(key).and_then(Value::as_str);
        let header_name = h.name.map(decode_header_value);
        let mismatch = match (header_name, body_name) {
            (Some(decoded), b) => decoded.as_deref() != b,
            (None, Some(_)) => modern,
            (None, None) => false,
        };
        if mismatch {
            return Err(format!(
                "Mcp-Name header does not match the body's params.{key} {:?}",
                body_name.unwrap_or("")
            ));
        }
    }
    if let (Some(header), Some(meta)) = (
        h.protocol_version,
        body["params"]["_meta"]
            .get(PROTOCOL_VERSION_META_KEY)
            .and_then(Value::as_str),
    ) && header != meta
    {
        return Err(format!(
            "MCP-Protocol-Version header {header:?} does not match the body's {meta:?}"
        ));
    }
    Ok(())
}

/// Drop tools from a `tools/list` result; returns how many were dropped.
pub fn filter_tools(message: &mut Value, keep: &mut impl FnMut(&str) -> bool) -> usize {
    let Some(tools) = message
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    else {
        return 0;
    };
    let before = tools.len();
    tools.retain(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_some_and(&mut *keep)
    });
    before - tools.len()
}

/// Apply `edit` to every JSON message of a Server-Sent Events body, keeping everything else
/// (event names, ids, retry hints, comments) as it was.
pub fn rewrite_sse(body: &str, edit: &mut impl FnMut(&mut Value)) -> String {
    let mut out = String::with_capacity(body.len());
    let normalized = body.replace("\r\n", "\n");
    for event in normalized.split("\n\n") {
        if event.is_empty() {
            continue;
        }
        let mut data = Vec::new();
        let mut others = Vec::new();
        for line in event.lines() {
            match line.strip_prefix("data:") {
                Some(d) => data.push(d.strip_prefix(' ').unwrap_or(d)),
                None => others.push(line),
            }
        }
        for line in &others {
            out.push_str(line);
            out.push('\n');
        }
        if !data.is_empty() {
            let joined = data.join("\n");
            match serde_json::from_str::<Value>(&joined) {
                Ok(mut v) => {
                    edit(&mut v);
                    out.push_str("data: ");
                    out.push_str(&v.to_string());
                    out.push('\n');
                }
                Err(_) => {
                    for d in data {
                        out.push_str("data: ");
                        out.push_str(d);
                        out.push('\n');
                    }
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "arguments": {}, "_meta": {PROTOCOL_VERSION_META_KEY: "2026-07-28"}}})
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let ok = RoutingHeaders {
            protocol_version: Some("2026-07-28"),
            method: Some("tools/call"),
            name: Some("echo"),
        };
        check_routing_headers(&ok, &call("echo")).unwrap();
        let wrong_name = RoutingHeaders {
            name: Some("drop_database"),
            ..ok.clone()
        };
        assert!(check_routing_headers(&wrong_name, &call("echo")).is_err());
        let missing_name = RoutingHeaders {
            name: None,
            ..ok.clone()
        };
        assert!(check_routing_headers(&missing_name, &call("echo")).is_err());
        let wrong_method = RoutingHeaders {
            method: Some("tools/list"),
            ..ok.clone()
        };
        assert!(check_routing_headers(&wrong_method, &call("echo")).is_err());
        let wrong_version = RoutingHeaders {
            protocol_version: Some("2026-08-01"),
            ..ok.clone()
        };
        assert!(check_routing_headers(&wrong_version, &call("echo")).is_err());
        let b64 = RoutingHeaders {
            name: Some("=?base64?ZWNobw==?="),
            ..ok
        };
        check_routing_headers(&b64, &call("echo")).unwrap();
        // A session-era client sends no routing headers at all.
        check_routing_headers(&RoutingHeaders::default(), &call("echo")).unwrap();
    }

    #[test]
    fn messages_are_parsed_strictly_and_forwarded_as_judged() {
        let parse = |s: &str| parse_message(s.as_bytes()).map_err(|e| e.code());
        let m = parse_message(
            br#"{ "jsonrpc" : "2.0", "id": 1, "method": "tools/call", "params": {"name": "ec\u0068o"} }"#,
        )
        .unwrap();
        assert_eq!(m.value["params"]["name"], "echo");
        // What is forwarded is the parsed value written again, not the bytes received.
        assert_eq!(serde_json::from_slice::<Value>(&m.wire).unwrap(), m.value);
        assert!(!m.wire.contains(&b' ') && !m.wire.windows(2).any(|w| w == b"\\u"));
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"#),
            Err(PARSE_ERROR)
        );
        for refused in [
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            r#""jsonrpc""#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":[{"k":1,"\u006b":2}]}}"#,
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#,
        ] {
            assert_eq!(parse(refused), Err(INVALID_REQUEST), "{refused}");
        }
        // Notifications other than tools/call, and a tools/call with any id, are fine.
        parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        parse(r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"a"}}"#)
            .unwrap();
        parse(r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"a":{"k":1},"b":{"k":2}}}"#).unwrap();
    }

    #[test]
    fn sse_messages_are_rewritten_in_place() {
        let body = "event: message\r\nid: 7\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\r\n\r\n";
        let out = rewrite_sse(body, &mut |v| {
            filter_tools(v, &mut |n| n != "b");
        });
        assert!(out.starts_with("event: message\nid: 7\ndata: "), "{out}");
        assert!(out.contains("\"a\"") && !out.contains("\"b\""), "{out}");
        assert!(out.ends_with("\n\n"));
    }
}
