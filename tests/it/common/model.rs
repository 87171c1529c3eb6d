//! A scripted OpenAI-compatible chat-completions model, served in the test process, for
//! driving a real OpenClaw agent turn.
//!
//! The scenario is a list of steps, each the assistant's next reply:
//! `{"tool": "exec", "arguments": {...}}` (one tool call) or `{"text": "done"}` (a final answer).
//! The Nth chat-completions request is answered with step N (the last step repeats). Every
//! request is recorded as `{"n", "tool_results", "tools"}`, so a test can assert what OpenClaw
//! sent back to the model after each tool call (for example the reason a policy gave).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A running scripted model; stops when dropped.
pub struct ScriptedModel {
    pub port: u16,
    requests: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedModel {
    pub async fn start(scenario: Vec<Value>) -> ScriptedModel {
        assert!(!scenario.is_empty(), "a scenario needs at least one step");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Script {
            steps: scenario,
            requests: requests.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = script.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let script = script.clone();
                        async move { Ok::<_, Infallible>(script.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ScriptedModel {
            port,
            requests,
            task,
        }
    }

    /// Every chat-completions request so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Script {
    steps: Vec<Value>,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Script {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() == Method::GET {
            // The model listing.
            return respond(
                "application/json",
                json!({"object": "list", "data": [{"id": "mock-1", "object": "model"}]})
                    .to_string(),
            );
        }
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        let body: Value = body
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| json!({}));
        let (n, step) = self.record(&body);
        let (message, finish) = match step.get("tool").and_then(Value::as_str) {
            Some(tool) => {
                let arguments = step.get("arguments").cloned().unwrap_or_else(|| json!({}));
                let call = json!({"index": 0, "id": format!("call_{n}"), "type": "function",
                    "function": {"name": tool, "arguments": arguments.to_string()}});
                (
                    json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                    "tool_calls",
                )
            }
            None => {
                let text = step.get("text").and_then(Value::as_str).unwrap_or("done");
                (json!({"role": "assistant", "content": text}), "stop")
            }
        };
        let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
        let base = json!({"id": format!("c{n}"), "created": 0, "model": "mock-1"});
        let with = |extra: Value| {
            let mut v = base.clone();
            if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                v.extend(extra.clone());
            }
            v
        };
        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            let choice = json!({"index": 0, "message": message, "finish_reason": finish});
            let answer =
                with(json!({"object": "chat.completion", "usage": usage, "choices": [choice]}));
            return respond("application/json", answer.to_string());
        }
        // Streaming: the whole reply in one delta, then the finish reason with the usage.
        let first = with(json!({"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": message, "finish_reason": null}]}));
        let last = with(json!({"object": "chat.completion.chunk", "usage": usage,
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}));
        respond(
            "text/event-stream",
            format!("data: {first}\n\ndata: {last}\n\ndata: [DONE]\n\n"),
        )
    }

    /// Records one request; returns its number (from 1) and the step that answers it.
    fn record(&self, body: &Value) -> (usize, Value) {
        let mut requests = self.requests.lock().unwrap();
        let n = requests.len() + 1;
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let tool_results: Vec<Value> = messages
            .into_iter()
            .filter(|m| m["role"] == "tool")
            .collect();
        let tools: Vec<Value> = body["tools"]
            .as_array()
            .map(|t| t.iter().map(|t| t["function"]["name"].clone()).collect())
            .unwrap_or_default();
        requests.push(json!({"n": n, "tool_results": tool_results, "tools": tools}));
        let step = self.steps[(n - 1).min(self.steps.len() - 1)].clone();
        (n, step)
    }
}

fn respond(content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
