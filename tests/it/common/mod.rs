//! Shared test scaffolding: start a real clawgate on loopback ports and talk HTTP to it.

pub mod mcp;
pub mod model;
pub mod netns;
pub mod openclaw;
pub mod receiver;

use std::path::{Path, PathBuf};

use clawgate::app::{self, Running};
use clawgate::config::Config;
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
    config.listeners.egress.addr = "127.0.0.1:0".parse().unwrap();
    config.listeners.admin.addr = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.join("data");
    config
}

pub async fn start_with(edit: impl FnOnce(&mut Config, &Path)) -> Sidecar {
    isolate_shell_parser();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    edit(&mut config, dir.path());
    let running = app::start(config).await.expect("sidecar starts");
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

    /// An operator's answer to an approval through the admin API: (status, body).
    pub async fn answer_approval(&self, token: &str, id: &str, answer: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.admin(&format!("/v1/approvals/{id}/decision")))
            .bearer_auth(token)
            .json(answer)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// The admin token the sidecar created in its data dir (none when config sets its hash).
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.running.config.admin_token_path())
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub async fn status(&self) -> Value {
        self.http
            .get(self.admin("/v1/status"))
            .bearer_auth(self.admin_token())
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

pub const BIN: &str = env!("CARGO_BIN_EXE_clawgate");

/// A loopback port nothing listens on, for a server started later (the sidecar binary, an
/// upstream). Picked below the kernel's ephemeral range: a port taken from that range with
/// `bind(0)` and released can be handed to some test's outgoing connection as its source port
/// before the server binds it, and the server then fails to start.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    let _ = NEXT.compare_exchange(
        0,
        LOW + (std::process::id() % 4_000) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = LOW + (port - LOW) % (HIGH - LOW);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The real `clawgate serve` binary on free loopback ports, with its config and state in a
/// temporary directory. Killed when dropped.
pub struct BinarySidecar {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    pub agent: u16,
    pub admin: u16,
    child: Option<std::process::Child>,
}

impl BinarySidecar {
    /// Write a config with free ports, a data dir, and `extra` TOML appended.
    pub fn configure(extra: &str) -> BinarySidecar {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (agent, egress, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("clawgate.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n[listeners.agent]\naddr = \"127.0.0.1:{agent}\"\n\
                 [listeners.egress]\naddr = \"127.0.0.1:{egress}\"\n\
                 [listeners.admin]\naddr = \"127.0.0.1:{admin}\"\n{extra}",
                data.display()
            ),
        )
        .unwrap();
        BinarySidecar {
            dir,
            config,
            data,
            agent,
            admin,
            child: None,
        }
    }

    /// Start the binary and wait until its admin listener answers.
    pub async fn start(&mut self) {
        self.start_with_env(&[]).await
    }

    /// [`BinarySidecar::start`] with extra environment variables.
    pub async fn start_with_env(&mut self, env: &[(&str, &str)]) {
        let log = self.dir.path().join("serve.log");
        self.spawn(&[], env, &log).await
    }

    /// [`BinarySidecar::start`] with `--log-format json`, its stderr written to `log`.
    pub async fn start_logging_json(&mut self, log: &Path) {
        self.spawn(&["--log-format", "json"], &[], log).await
    }

    async fn spawn(&mut self, args: &[&str], env: &[(&str, &str)], log: &Path) {
        let stderr = std::fs::File::create(log).unwrap();
        let child = std::process::Command::new(BIN)
            .args(args)
            .args(["serve", "--config"])
            .arg(&self.config)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while reqwest::get(self.admin_url("/healthz")).await.is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                panic!("sidecar exited before it answered ({status}); it said:\n{said}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sidecar did not answer /healthz within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    /// Send a signal (`KILL`, `TERM`, `HUP`) with kill(1); KILL and TERM wait for the exit.
    pub fn signal(&mut self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        if name != "HUP"
            && let Some(mut child) = self.child.take()
        {
            child.wait().unwrap();
        }
    }

    /// Wait (without blocking the runtime) until the process exits; its status.
    pub async fn exited(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        let child = self.child.as_mut().expect("started");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "sidecar did not exit");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn agent_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.agent)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    /// The admin token the binary created in its data dir.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// GET an admin endpoint with the admin token; the JSON answer.
    pub async fn get_admin(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(self.admin_url(path))
            .bearer_auth(self.admin_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for BinarySidecar {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// POST a JSON body and return the JSON answer.
/// Run a command to its end: its exit code, and its stdout followed by its stderr.
pub async fn output_text(cmd: &mut tokio::process::Command) -> (i32, String) {
    let out = cmd.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Send a request and read its JSON answer, whatever the status.
pub async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

pub async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    http.post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The options `open_audit_log` opens a log in `dir` with.
pub fn audit_options(
    dir: &Path,
    checkpoint_every: u64,
    checkpoint_interval: std::time::Duration,
) -> clawgate::audit::AuditOptions {
    clawgate::audit::AuditOptions {
        path: dir.join("audit.redb"),
        key_path: dir.join("audit-signing.key"),
        checkpoint_every,
        checkpoint_interval,
        max_batch: 64,
        journal_bytes: clawgate::audit::journal::DEFAULT_JOURNAL_BYTES,
        metrics: Default::default(),
    }
}

/// An audit log of its own in `dir` (`audit.redb`, `audit-signing.key`) that signs a
/// checkpoint every `checkpoint_every` entries or `checkpoint_interval`, redacting nothing.
pub async fn open_audit_log(
    dir: &Path,
    checkpoint_every: u64,
    checkpoint_interval: std::time::Duration,
) -> clawgate::audit::AuditLog {
    let opts = audit_options(dir, checkpoint_every, checkpoint_interval);
    let redactor = clawgate::audit::redact::Redactor::new(&[], &[], &[]).unwrap();
    clawgate::audit::AuditLog::open(opts, redactor)
        .await
        .unwrap()
}

/// Every audit entry of `kind`, in order.
pub fn audit_entries(audit: &clawgate::audit::AuditLog, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    audit
        .reader()
        .unwrap()
        .for_each_entry(0, None, |_, _, json| {
            let entry: Value = serde_json::from_slice(json).unwrap();
            if entry["kind"] == kind {
                out.push(entry);
            }
            Ok(true)
        })
        .unwrap();
    out
}

/// An HTTPS server on `listener` with a certificate for `hosts` from `ca`; answers
/// "secure ok" and records each request's method and path.
pub fn serve_https_recording(
    listener: tokio::net::TcpListener,
    ca: &clawgate::tls::ca::CertificateAuthority,
    hosts: &[&str],
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let issued = ca.issue_server(&hosts, 1).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(clawgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![issued.cert_der, ca.cert_der().clone()], issued.key_der)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        log.lock()
                            .unwrap()
                            .push(format!("{} {}", req.method(), req.uri().path()));
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"secure ok")),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    seen
}

/// Parse shell text in worker processes of the clawgate binary, as the binary itself does
/// (`clawgate::facts::parser_worker`): tests that evaluate in this process then neither take
/// a different path from the sidecar nor run brush's unbounded inputs in the test process.
pub fn isolate_shell_parser() {
    clawgate::facts::parser_worker::enable(PathBuf::from(BIN));
}
