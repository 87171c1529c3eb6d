//! Real MCP peers for the gateway tests: servers and a client built with the official MCP
//! Python SDK (`tests/mcp/*.py`, installed by `scripts/setup-tools.sh py` into `.tools/py`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python, installed once per test binary by the project's own script.
pub fn python() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let status = Command::new(root().join("scripts/setup-tools.sh"))
                .arg("py")
                .status()
                .expect("run scripts/setup-tools.sh py");
            assert!(status.success(), "scripts/setup-tools.sh py failed");
            root().join(".tools/py/bin/python")
        })
        .clone()
}

pub fn script(name: &str) -> PathBuf {
    root().join("tests/mcp").join(name)
}

/// An MCP server (the SDK's `MCPServer`) over streamable HTTP. Killed when dropped.
pub struct Upstream {
    pub url: String,
    /// Every tool that ran appends `<tool> <json args>` here.
    pub ran_log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

/// The longest a Python peer may take to answer before the test fails.
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Upstream {
    pub fn start(extra: &[&str]) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let ran_log = dir.path().join("ran.log");
        let mut child = Command::new(python())
            .arg(script("upstream.py"))
            .args(["--port", "0", "--ran-log"])
            .arg(&ran_log)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/mcp/upstream.py");
        let stdout = child.stdout.take().unwrap();
        // Read its READY line on a thread, so that a server that never says it is ready fails
        // the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(PEER_TIMEOUT)
            .unwrap_or_else(|_| panic!("upstream.py did not start within {PEER_TIMEOUT:?}"));
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("upstream.py did not start: {line:?}"))
            .to_string();
        Upstream {
            url,
            ran_log,
            child,
            _dir: dir,
        }
    }

    /// The tools that ran, in order.
    pub fn ran(&self) -> Vec<String> {
        ran(&self.ran_log)
    }
}

pub fn ran(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `tests/mcp/client.py` with the given arguments; its JSON answer, or the failure.
pub async fn client<A: AsRef<[String]>>(args: A) -> Result<Value, String> {
    client_with_env(args, &[]).await
}

/// [`client`] with extra environment variables (a stdio server inherits them).
pub async fn client_with_env<A: AsRef<[String]>>(
    args: A,
    env: &[(&str, &str)],
) -> Result<Value, String> {
    let run = tokio::process::Command::new(python())
        .arg(script("client.py"))
        .args(args.as_ref())
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    // A peer that never answers fails the test instead of hanging it.
    let out = tokio::time::timeout(PEER_TIMEOUT, run)
        .await
        .map_err(|_| format!("client.py gave no answer within {PEER_TIMEOUT:?}"))?
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "client.py failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "client.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Arguments for the client over HTTP in one protocol mode.
pub fn http_args(url: &str, mode: &str, rest: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--url".to_string(),
        url.to_string(),
        "--mode".to_string(),
        mode.to_string(),
    ];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}
