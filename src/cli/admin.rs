//! What every CLI command that talks to a running sidecar's admin listener shares: where it
//! is, the admin token, and a small JSON client.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

/// The admin token, given directly or read from the file the sidecar created.
#[derive(Args, Clone)]
pub struct AdminTokenArgs {
    /// The admin token (default: read from --token-file).
    #[arg(
        long,
        global = true,
        env = "CLAWGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// File holding the admin token, as created by the sidecar on first start.
    #[arg(long, global = true, default_value = "clawgate-data/admin.token")]
    pub token_file: PathBuf,
    /// PEM CA certificate to trust for an https:// admin listener (e.g. certs/ca.pem), besides
    /// the system's roots.
    #[arg(long, global = true, env = "CLAWGATE_ADMIN_CA")]
    pub ca_cert: Option<PathBuf>,
}

impl AdminTokenArgs {
    /// The HTTP client for the admin listener, trusting `--ca-cert` when given.
    pub fn client(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().context("cannot build the HTTP client")
    }

    pub fn load(&self) -> Result<String> {
        match &self.token {
            Some(t) => Ok(t.trim().to_string()),
            None => Ok(std::fs::read_to_string(&self.token_file)
                .with_context(|| {
                    format!(
                        "no admin token: pass --token, set CLAWGATE_ADMIN_TOKEN, or point --token-file at {} of the sidecar's data dir",
                        self.token_file.display()
                    )
                })?
                .trim()
                .to_string()),
        }
    }
}

/// A running sidecar's admin listener and the token to present to it.
#[derive(Args, Clone)]
pub struct AdminConnection {
    /// Base URL of the sidecar's admin listener.
    #[arg(
        long,
        global = true,
        env = "CLAWGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9482"
    )]
    pub url: String,
    #[command(flatten)]
    pub token: AdminTokenArgs,
}

impl AdminConnection {
    pub fn api(&self) -> Result<AdminApi> {
        Ok(AdminApi {
            base: self.url.trim_end_matches('/').to_string(),
            token: self.token.load()?,
            client: self.token.client()?,
        })
    }
}

pub struct AdminApi {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl AdminApi {
    pub async fn get(&self, path: &str) -> Result<Value> {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let req = self.client.post(format!("{}{path}", self.base)).json(body);
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the admin listener at {}", self.base))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("no details");
            let code = body["error"]["code"].as_str().unwrap_or("error");
            bail!("{status} {code}: {msg}");
        }
        Ok(body)
    }
}

/// Runs one admin request on a current-thread runtime: the client commands are one-shot.
pub fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
