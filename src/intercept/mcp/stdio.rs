//! `clawgate mcp-stdio --server NAME -- COMMAND [ARGS...]`: what OpenClaw launches as a stdio
//! MCP server's command. It runs the real server as a child and relays newline-delimited
//! JSON-RPC both ways, asking the running sidecar before each `tools/call` and filtering
//! `tools/list` results. If the sidecar cannot be asked, calls are refused (fail closed).

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::jsonrpc;

/// Settings of one stdio relay.
#[derive(Debug, Clone)]
pub struct StdioRelay {
    /// The MCP server name policy sees (`input.action.server`).
    pub server: String,
    /// The sidecar's agent listener, e.g. `http://127.0.0.1:9480`.
    pub sidecar: String,
    pub agent_id: String,
    /// How long a call held for approval waits before it is refused as pending.
    pub hold: Duration,
    /// The agent's credential, sent as `Authorization: Bearer TOKEN` on every request to the
    /// sidecar (needed once `[identities]` are configured). Marked sensitive, so `Debug`
    /// never prints it.
    pub token: Option<http::HeaderValue>,
    pub command: Vec<String>,
}

/// `Authorization: Bearer TOKEN` for [`StdioRelay::token`]; `None` when the token cannot be
/// a header value (control characters, non-visible bytes).
pub fn bearer(token: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl StdioRelay {
    /// A POST to the sidecar with the agent's credential, if any.
    fn post(&self, http: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.sidecar.trim_end_matches('/'));
        let req = http.post(url);
        match &self.token {
            Some(token) => req.header(http::header::AUTHORIZATION, token.clone()),
            None => req,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("no server command given (use: clawgate mcp-stdio --server NAME -- COMMAND [ARGS...])")]
    NoCommand,
    #[error("cannot start {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("i/o error relaying MCP messages: {0}")]
    Io(#[from] std::io::Error),
}

/// Run the relay until the client closes stdin and the child exits; returns the child's
/// exit code.
pub async fn run(relay: StdioRelay) -> Result<i32, StdioError> {
    let (program, args) = relay.command.split_first().ok_or(StdioError::NoCommand)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| StdioError::Spawn {
            command: program.clone(),
            source,
        })?;
    let mut child_in = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no child stdin"))?;
    let child_out = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no child stdout"))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let relay = Arc::new(relay);
    // Ids of tools/list requests whose answers must be filtered.
    let lists: Arc<Mutex<HashSet<String>>> = Arc::default();

    // Everything written to our stdout goes through one writer, one line per message.
    let (out_tx, mut out_rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });

    // Server → client: filter tools/list answers, pass everything else.
    let from_server = {
        let (relay, http, lists, out_tx) =
            (relay.clone(), http.clone(), lists.clone(), out_tx.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(child_out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = match serde_json::from_str::<Value>(&line) {
                    Ok(msg) if is_list_answer(&msg, &lists) => {
                        filter_list(&relay, &http, msg).await
                    }
                    _ => line,
                };
                if out_tx.send(line).await.is_err() {
                    break;
                }
            }
        })
    };

    // Client → server: gate tools/call, remember tools/list ids, pass everything else.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        // The same rules as the HTTP gateway: one JSON-RPC 2.0 object per line, no repeated
        // keys, no tools/call without an id; what the server gets is the message judged.
        let (msg, wire) = match jsonrpc::parse_message(line.as_bytes()) {
            Ok(m) => (m.value, m.wire),
            Err(e) => {
                let err = jsonrpc::error_response(Value::Null, e.code(), e.to_string());
                let _ = out_tx.send(err.to_string()).await;
                continue;
            }
        };
        let method = msg.get("method").and_then(Value::as_str);
        let id = msg.get("id").cloned();
        match (method, id) {
            (Some("tools/call"), Some(id)) => {
                if let Some(refusal) = ask(&relay, &http, &msg).await {
                    let answer = jsonrpc::tool_error_result(id, refusal, false);
                    let _ = out_tx.send(answer.to_string()).await;
                    continue;
                }
            }
            (Some("tools/list"), Some(id)) => {
                if let Ok(mut l) = lists.lock() {
                    l.insert(id.to_string());
                }
            }
            _ => {}
        }
        child_in.write_all(&wire).await?;
        child_in.write_all(b"\n").await?;
        child_in.flush().await?;
    }
    // The client is done: close the server's stdin and let it finish.
    drop(child_in);
    let status = child.wait().await?;
    let _ = from_server.await;
    drop(out_tx);
    let _ = writer.await;
    Ok(status.code().unwrap_or(1))
}

fn is_list_answer(msg: &Value, lists: &Mutex<HashSet<String>>) -> bool {
    let Some(id) = msg.get("id") else {
        return false;
    };
    if msg.get("method").is_some() {
        return false;
    }
    lists
        .lock()
        .map(|mut l| l.remove(&id.to_string()))
        .unwrap_or(false)
}

/// Ask the sidecar about one `tools/call`. `None` lets it through; otherwise the text the
/// model reads instead of a result.
async fn ask(relay: &StdioRelay, http: &reqwest::Client, msg: &Value) -> Option<String> {
    let params = &msg["params"];
    let Some(tool) = params.get("name").and_then(Value::as_str) else {
        return Some("clawgate refused this call: tools/call needs params.name".into());
    };
    let body = json!({
        "kind": "mcp",
        "server": relay.server,
        "tool": tool,
        "params": params.get("arguments"),
        "agent": {"id": relay.agent_id},
    });
    let answer = relay
        .post(http, &format!("/v1/check?wait={}", relay.hold.as_secs()))
        .json(&body)
        .timeout(relay.hold + Duration::from_secs(10))
        .send()
        .await;
    let decision: CheckAnswer = match answer {
        Ok(resp) if resp.status().is_success() => match resp.json().await {
            Ok(v) => v,
            Err(e) => return Some(unreachable_text(&format!("its answer was not JSON: {e}"))),
        },
        Ok(resp) => return Some(unreachable_text(&refused(resp).await)),
        Err(e) => return Some(unreachable_text(&e.without_url().to_string())),
    };
    let id = decision.id.as_deref().unwrap_or("?");
    match decision.decision.as_deref() {
        Some("allow") => None,
        Some("pending") => Some(super::refusal_text(
            id,
            Some((
                decision.approval_id.as_deref().unwrap_or("?"),
                decision.approval_expires_at.as_deref().unwrap_or("?"),
            )),
            &decision.reasons,
        )),
        Some("deny") => Some(super::refusal_text(id, None, &decision.reasons)),
        _ => Some(unreachable_text("its answer had no decision")),
    }
}

/// The fields of a `/v1/check` answer the relay acts on.
#[derive(Debug, serde::Deserialize)]
struct CheckAnswer {
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    approval_id: Option<String>,
    #[serde(default)]
    approval_expires_at: Option<String>,
    #[serde(default)]
    reasons: Vec<String>,
}

/// "it answered HTTP 401 Unauthorized: <the sidecar's error message>".
async fn refused(resp: reqwest::Response) -> String {
    let status = resp.status();
    let message = resp
        .json::<Value>()
        .await
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
    match message {
        Some(m) => format!("it answered HTTP {status}: {m}"),
        None => format!("it answered HTTP {status}"),
    }
}

fn unreachable_text(why: &str) -> String {
    format!(
        "clawgate could not check this call, so it did not run (the sidecar could not be asked: {why})"
    )
}

/// Filter a `tools/list` answer through the sidecar; if it cannot be asked, the answer
/// becomes an error (no tool is shown unchecked).
async fn filter_list(relay: &StdioRelay, http: &reqwest::Client, mut msg: Value) -> String {
    let names: Vec<String> = msg["result"]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let body = json!({"server": relay.server, "tools": names, "agent": {"id": relay.agent_id}});
    let visible: Option<HashSet<String>> = match relay
        .post(http, "/v1/mcp/visible-tools")
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(resp) if resp.status().is_success() => resp.json::<Value>().await.ok().and_then(|v| {
            v["visible"].as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
        }),
        _ => None,
    };
    match visible {
        Some(visible) => {
            jsonrpc::filter_tools(&mut msg, &mut |n| visible.contains(n));
            msg.to_string()
        }
        None => jsonrpc::error_response(
            msg.get("id").cloned().unwrap_or(Value::Null),
            jsonrpc::INTERNAL_ERROR,
            "clawgate could not check which tools may be listed (the sidecar could not be asked)",
        )
        .to_string(),
    }
}
