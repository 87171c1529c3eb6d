//! The `Action`: one thing an agent wants to do, whichever front door it came through.
//!
//! Its JSON shape is the `input.action` document that policy sees (see `docs/policy-guide.md`);
//! absent fields are omitted, never faked.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// A built-in or plugin tool call seen by the OpenClaw plugin hook.
    Tool,
    /// An MCP `tools/call` crossing the MCP gateway.
    Mcp,
    /// An HTTP request crossing the egress proxy.
    Http,
    /// A CONNECT tunnel crossing the egress proxy, or a connection the kernel redirected to
    /// the transparent listener.
    Connect,
    /// A DNS query the agent sent, seen by the transparent mode's DNS forwarder.
    Dns,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Tool => "tool",
            ActionKind::Mcp => "mcp",
            ActionKind::Http => "http",
            ActionKind::Connect => "connect",
            ActionKind::Dns => "dns",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<Destination>,
    /// The query of a `dns` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsQuery>,
}

/// One DNS question: the name (lower case, no trailing dot) and the record type (`A`,
/// `AAAA`, `TXT`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQuery {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub query: String,
    #[serde(default)]
    pub headers: serde_json::Map<String, Value>,
    /// The body, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Hex SHA-256 of the body bytes (any media type), so approvals bind to the exact body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Transparent interception only: where `host` came from. `"sni"` (the TLS ClientHello's
    /// server name) and `"http_host"` (a plain HTTP request's `Host`) are claims the client
    /// made; `"address"` means the client named nothing and `host` is the dialled address.
    /// Absent on the egress proxy, whose host is the one clawgate resolved and connects to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_from: Option<String>,
    /// Transparent interception only, with a claimed `host`: whether that name resolves
    /// (through clawgate's resolver) to the address the client actually dialled (`ips`).
    /// `false` means the name is only a claim: judge the connection by its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_resolves: Option<bool>,
}

/// Who is acting: the OpenClaw agent, its session and run, and (once identities exist)
/// the credential it authenticated with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Set by clawgate from the transport credential, never taken from the request body.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub authenticated_as: Option<String>,
    /// The capability scopes of the authenticated identity. Set by clawgate with
    /// `authenticated_as`; the gate enforces them and adds them to policy input as
    /// `agent.scopes` (they are config, so they are not repeated in each audit entry).
    #[serde(skip)]
    pub scopes: Option<std::sync::Arc<crate::identity::Scopes>>,
}

/// The person (or channel) whose message made the agent act.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_is_owner: Option<bool>,
}

impl Action {
    /// A tool call as the OpenClaw `before_tool_call` hook sees it.
    pub fn tool(tool: impl Into<String>, params: Option<Value>) -> Action {
        Action {
            kind: ActionKind::Tool,
            tool: Some(tool.into()),
            params,
            server: None,
            http: None,
            dest: None,
            dns: None,
        }
    }

    /// An MCP `tools/call` crossing the MCP gateway.
    pub fn mcp(server: &str, tool: &str, arguments: Option<Value>) -> Action {
        Action {
            kind: ActionKind::Mcp,
            tool: Some(tool.to_string()),
            params: arguments,
            server: Some(server.to_string()),
            http: None,
            dest: None,
            dns: None,
        }
    }

    /// An HTTP request crossing the egress proxy (plain, or inside an inspected tunnel).
    pub fn http(http: HttpRequest, dest: Destination) -> Action {
        Action {
            kind: ActionKind::Http,
            tool: None,
            params: None,
            server: None,
            http: Some(http),
            dest: Some(dest),
            dns: None,
        }
    }

    /// A CONNECT tunnel crossing the egress proxy.
    pub fn connect(dest: Destination) -> Action {
        Action {
            kind: ActionKind::Connect,
            tool: None,
            params: None,
            server: None,
            http: None,
            dest: Some(dest),
            dns: None,
        }
    }

    /// A DNS query seen by the transparent mode's DNS forwarder.
    pub fn dns(name: impl Into<String>, qtype: impl Into<String>) -> Action {
        Action {
            kind: ActionKind::Dns,
            tool: None,
            params: None,
            server: None,
            http: None,
            dest: None,
            dns: Some(DnsQuery {
                name: name.into(),
                qtype: qtype.into(),
            }),
        }
    }

    /// RFC 8785 canonical JSON of the action: the bytes that approvals and audit bind to.
    /// Integers beyond ±2^53 are written by their exact decimal text (RFC 8785 would round them
    /// through a double, so an approval for one 61-bit id would match its neighbours).
    pub fn canonical_json(&self) -> Vec<u8> {
        // Plain data: serializing cannot fail, and parsed JSON holds no non-finite floats.
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = Vec::new();
        match crate::audit::jcs::write_value(&value, &mut out) {
            Ok(()) => out,
            Err(_) => serde_json_canonicalizer::to_vec(self).unwrap_or_default(),
        }
    }

    /// Hex SHA-256 of [`Action::canonical_json`].
    pub fn canonical_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_hash_ignores_key_order_but_not_values() {
        let a = Action::tool("exec", Some(json!({"command": "ls", "cwd": "/tmp"})));
        let b: Action = serde_json::from_value(
            json!({"params": {"cwd": "/tmp", "command": "ls"}, "tool": "exec", "kind": "tool"}),
        )
        .unwrap();
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        let c = Action::tool("exec", Some(json!({"command": "ls -la", "cwd": "/tmp"})));
        assert_ne!(a.canonical_hash(), c.canonical_hash());
    }

    #[test]
    fn large_integers_that_differ_in_the_last_digit_hash_apart() {
        let a = Action::mcp("s", "t", Some(json!({"id": 2305843009213693951u64})));
        let b = Action::mcp("s", "t", Some(json!({"id": 2305843009213693952u64})));
        let c = Action::mcp("s", "t", Some(json!({"id": -2305843009213693951i64})));
        let d = Action::mcp("s", "t", Some(json!({"id": -2305843009213693952i64})));
        assert_ne!(a.canonical_hash(), b.canonical_hash());
        assert_ne!(c.canonical_hash(), d.canonical_hash());
        assert!(
            String::from_utf8(a.canonical_json())
                .unwrap()
                .contains("2305843009213693951")
        );
        // Fractions keep RFC 8785's double formatting.
        let f = Action::mcp("s", "t", Some(json!({"x": 1.5e300})));
        assert!(
            String::from_utf8(f.canonical_json())
                .unwrap()
                .contains("1.5e+300")
        );
    }

    #[test]
    fn canonical_json_is_rfc8785() {
        let a = Action::tool("read", Some(json!({"b": 1, "a": "é"})));
        assert_eq!(
            String::from_utf8(a.canonical_json()).unwrap(),
            r#"{"kind":"tool","params":{"a":"é","b":1},"tool":"read"}"#
        );
    }
}
