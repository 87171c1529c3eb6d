//! Shared test scaffolding: start a real clawgate on loopback ports and talk HTTP to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use clawgate::config::Config;
use clawgate::server::{self, Running};
use serde_json::{Value, json};

pub struct Sidecar {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// A config on free loopback ports with state in a fresh temporary directory.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.listeners.agent.addr = "127.0.0.1:0".parse().unwrap();
    config.listeners.admin.addr = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.join("data");
    config
}

pub async fn start_with(edit: impl FnOnce(&mut Config, &Path)) -> Sidecar {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    edit(&mut config, dir.path());
    let running = server::start(config).await.expect("sidecar starts");
    Sidecar {
        running,
        dir,
        http: reqwest::Client::new(),
    }
}

impl Sidecar {
    pub fn agent(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.agent_addr)
    }
    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.admin_addr)
    }

    /// POST a tool call to /v1/check and return (status, body).
    pub async fn check(&self, tool: &str, params: Value) -> (u16, Value) {
        self.check_body(&check_body(tool, params)).await
    }

    pub async fn check_body(&self, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.agent("/v1/check"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn status(&self) -> Value {
        self.http
            .get(self.admin("/v1/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub fn check_body(tool: &str, params: Value) -> Value {
    json!({
        "tool": tool,
        "params": params,
        "agent": {"id": "main", "session": "agent:main:main", "run_id": "run-1", "tool_call_id": "call-1"},
        "requester": {"channel": "slack", "sender_id": "U1", "sender_is_owner": false},
    })
}

/// Write a policy bundle directory with the given files.
pub fn write_bundle(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.to_path_buf()
}

/// A small policy whose behaviour is driven by `input.action.tool`.
pub const TOY_POLICY: &str = r#"package clawgate

default decision := {"effect": "deny", "risk": "high", "reasons": ["unknown tool"]}

decision := {"effect": "allow", "risk": "low", "reasons": ["read is safe"]} if input.action.tool == "read"

decision := {"effect": "require_approval", "risk": "medium", "reasons": ["writes need a person"],
  "approval": {"approvers": ["group:sre"], "quorum": 1, "timeout_s": 60}} if input.action.tool == "write"
"#;
