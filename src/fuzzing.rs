//! Fuzz targets: every parser that bytes from outside reach, each as one function of `&[u8]`
//! that must return without panicking, whatever the input. `fuzz/` runs them under libFuzzer
//! (`scripts/fuzz.sh`); the test suite runs a short seeded smoke of each (`tests/it/fuzz.rs`).
//! Both call these functions, so there is one definition of each target.

use std::io::Cursor;
use std::sync::OnceLock;

use serde_json::Value;

use crate::action::Action;
use crate::facts::{FactsContext, ParamRoles};

/// One fuzz target: bytes in, nothing out, never a panic.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/NAME.rs` and `fuzz/corpus/NAME/` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("check_request", check_request),
    ("mcp_message", mcp_message),
    ("slack_interaction", slack_interaction),
    ("webhook_headers", webhook_headers),
    ("egress_request", egress_request),
    ("config_toml", config_toml),
    ("audit_export", audit_export),
    ("facts", facts),
    ("transparent_opening", transparent_opening),
    ("dns_query", dns_query),
];

/// The embedded bundle's parameter roles, read once.
fn roles() -> &'static ParamRoles {
    static ROLES: OnceLock<ParamRoles> = OnceLock::new();
    ROLES
        .get_or_init(|| ParamRoles::from_data(&crate::gate::policy::BundleFiles::embedded().data()))
}

/// The context policy tests state facts in (a home, a workspace, clawgate's own files).
/// With `CLAWGATE_FUZZ_PARSE_WORKER` naming a clawgate binary (`scripts/fuzz.sh` does),
/// shell text is parsed in its workers as the sidecar parses it, so a run explores what the
/// facts stage makes of brush's answers instead of stopping at an input brush allocates on
/// without bound (which the workers bound, `facts::parser_worker`).
fn context() -> FactsContext {
    static WORKER: std::sync::Once = std::sync::Once::new();
    WORKER.call_once(|| {
        if let Some(program) = std::env::var_os("CLAWGATE_FUZZ_PARSE_WORKER") {
            crate::facts::parser_worker::enable(program.into());
            // libFuzzer's panic hook aborts on every panic, also on the ones the facts stage
            // catches from brush's word parser (an unparsed word, by design); with the default
            // hook only a panic that escapes the target ends the run as a crash.
            drop(std::panic::take_hook());
        }
    });
    crate::gate::policy::bundle::test_facts_context()
}

/// Split at the first `sep`: the part before it and the rest (empty when there is none).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `POST /v1/check` body: JSON into the request, then its canonical hash and facts.
pub fn check_request(data: &[u8]) {
    let Ok(body) = crate::http_api::parse_json::<crate::intercept::check_api::CheckBody>(data)
    else {
        return;
    };
    if let Ok(request) = body.into_request() {
        let _ = request.action.canonical_hash();
        let _ = crate::facts::facts_for(&request.action, roles(), &context());
    }
}

/// An MCP HTTP message: routing header lines (`Name: value`), a blank line, the JSON-RPC body.
pub fn mcp_message(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (&[][..], data),
    };
    let head = String::from_utf8_lossy(head);
    let mut headers = crate::intercept::mcp::jsonrpc::RoutingHeaders::default();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "mcp-protocol-version" => headers.protocol_version = Some(value),
            "mcp-method" => headers.method = Some(value),
            "mcp-name" => headers.name = Some(value),
            _ => {}
        }
    }
    let _ = crate::intercept::mcp::jsonrpc::is_stateless(headers.protocol_version);
    if let Ok(message) = crate::intercept::mcp::jsonrpc::parse_message(body) {
        let value = &message.value;
        let _ = crate::intercept::mcp::jsonrpc::check_routing_headers(&headers, value);
        if let Some(args) = value.pointer("/params/arguments") {
            let tool = value
                .pointer("/params/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let action = Action::mcp("fuzz", tool, Some(args.clone()));
            let _ = crate::facts::facts_for(&action, roles(), &context());
        }
    }
}

/// Slack's form-encoded interaction payload, and its signature check (`timestamp \0
/// signature \0 body`).
pub fn slack_interaction(data: &[u8]) {
    let _ = crate::approvers::slack::BlockAction::parse(data);
    let (timestamp, rest) = split(data, 0);
    let (signature, body) = split(rest, 0);
    let _ = crate::approvers::slack::verify_slack(
        "fuzz-signing-secret",
        &String::from_utf8_lossy(timestamp),
        body,
        &String::from_utf8_lossy(signature),
        1_700_000_000,
    );
}

/// Standard Webhooks headers: `webhook-id \0 webhook-timestamp \0 webhook-signature \0 body`.
pub fn webhook_headers(data: &[u8]) {
    static SECRET: OnceLock<Option<crate::approvers::webhook::WebhookSecret>> = OnceLock::new();
    let Some(secret) = SECRET.get_or_init(|| {
        crate::approvers::webhook::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .ok()
    }) else {
        return;
    };
    let (id, rest) = split(data, 0);
    let (timestamp, rest) = split(rest, 0);
    let (signature, body) = split(rest, 0);
    let _ = secret.verify(
        &String::from_utf8_lossy(id),
        &String::from_utf8_lossy(timestamp),
        body,
        &String::from_utf8_lossy(signature),
        1_700_000_000,
    );
}

/// A proxy request head (request line and header fields, as hyper would have parsed them):
/// the destination checks and the description policy reads.
pub fn egress_request(data: &[u8]) {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = parsed.parse(data) else {
        return;
    };
    let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
        return;
    };
    let mut request = http::Request::builder().method(method).uri(path);
    for h in parsed.headers.iter() {
        request = request.header(h.name, h.value);
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let body = &data[len..];
    for (scheme, host, port) in [("http", "example.com", 80), ("https", "example.com", 443)] {
        let _ =
            crate::intercept::egress::names_only(&parts.uri, &parts.headers, scheme, host, port);
        let resolved = crate::intercept::egress::destination::Resolved {
            host: host.to_string(),
            port,
            addrs: vec![std::net::IpAddr::from([93, 184, 215, 14])],
            host_from: None,
            host_resolves: None,
        };
        let described = crate::intercept::egress::describe_request(
            &parts.method,
            scheme,
            &parts.uri,
            &parts.headers,
            body,
            &resolved,
        );
        let action = Action::http(
            described,
            crate::action::Destination {
                host: host.to_string(),
                port,
                ips: resolved.policy_ips(),
                ..Default::default()
            },
        );
        let _ = action.canonical_hash();
        let _ = crate::facts::facts_for(&action, roles(), &context());
    }
}

/// `clawgate.toml`: parse and validate.
pub fn config_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = crate::config::Config::parse(text)
    {
        let _ = config.validate();
    }
}

/// An audit export (JSON lines) verified against a pinned key.
pub fn audit_export(data: &[u8]) {
    static VERIFIER: OnceLock<Option<String>> = OnceLock::new();
    let Some(key) = VERIFIER.get_or_init(|| {
        crate::audit::checkpoint::NoteSigner::generate("fuzz")
            .ok()
            .map(|s| s.verifier_key())
    }) else {
        return;
    };
    if let Ok(verifier) = crate::audit::checkpoint::NoteVerifier::parse(key) {
        let _ = crate::audit::export::verify_export(Cursor::new(data), verifier, |_| {});
    }
}

/// Shell, path and URL facts: the bytes as an exec command, a read path and a fetch URL.
pub fn facts(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    for action in [
        Action::tool("exec", Some(serde_json::json!({ "command": text }))),
        Action::tool("read", Some(serde_json::json!({ "path": text }))),
        Action::tool("web_fetch", Some(serde_json::json!({ "url": text }))),
        // A dispatched call, and a parameter judged by its shape.
        Action::tool(
            "tool_call",
            Some(serde_json::json!({ "name": "exec", "arguments": { "command": text } })),
        ),
        Action::tool("message", Some(serde_json::json!({ "media": text }))),
        // A command line in exec's env, and credential shapes in an outbound tool's text.
        Action::tool(
            "exec",
            Some(serde_json::json!({ "command": "git log", "env": { "GIT_PAGER": text } })),
        ),
        Action::tool("web_search", Some(serde_json::json!({ "query": text }))),
    ] {
        let _ = crate::facts::facts_for(&action, roles(), &context());
    }
}

/// The first bytes of a redirected connection, as the transparent listener classifies them.
pub fn transparent_opening(data: &[u8]) {
    let _ = crate::intercept::transparent::peek::classify(data);
}

/// A DNS query message from the agent: parsed, its question read as the forwarder reads it,
/// and the `dns` action's facts stated.
pub fn dns_query(data: &[u8]) {
    let Ok(msg) = hickory_proto::op::Message::from_vec(data) else {
        return;
    };
    for q in msg.queries.iter().take(4) {
        let (name, qtype) = crate::intercept::transparent::dns::asked(q);
        let _ = crate::facts::facts_for(&Action::dns(name, qtype), roles(), &context());
    }
}
