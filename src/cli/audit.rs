//! `clawgate audit ...`: verify, export, timeline, tail, blob and pubkey.
//!
//! Every command reads the database file directly (`--db`, once the sidecar has stopped: a
//! running sidecar holds its log exclusively) or, with `--url`, the running sidecar's admin
//! listener.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use clawgate::audit::checkpoint::{NoteSigner, NoteVerifier};
use clawgate::audit::export::{self, ExportFormat};
use clawgate::audit::verify::{self, Problem, Summary};
use clawgate::audit::{AuditError, AuditReader};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every hash, prev link, checkpoint root and signature. Exits 1 on the first problem.
    Verify {
        #[command(flatten)]
        source: Source,
        /// Verifier key to pin (`clawgate audit pubkey`). Required with --url; with --db the
        /// key file beside the database is used when omitted.
        #[arg(long)]
        pubkey: Option<String>,
    },
    /// Write the log as JSON lines (`{"entry","hash"}`, with checkpoints) or OCSF events.
    Export {
        #[command(flatten)]
        source: Source,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write checkpoints to this file instead of inline.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// First seq to export.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Output file (stdout when omitted).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Show one agent run in order: actions, decisions, approvals and results.
    Timeline {
        run_id: String,
        #[command(flatten)]
        source: Source,
        /// Print the entries as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Follow new entries as they are written (JSON lines).
    Tail {
        #[command(flatten)]
        source: Source,
        /// Start at this seq (default: the next entry written).
        #[arg(long)]
        from: Option<u64>,
    },
    /// Print a kept result body by its SHA-256.
    Blob {
        hash: String,
        #[command(flatten)]
        source: Source,
    },
    /// Print the checkpoint verifier key.
    Pubkey {
        /// The signing key file.
        #[arg(long, default_value = "clawgate-data/audit-signing.key")]
        key: PathBuf,
    },
}

const DEFAULT_DB: &str = "clawgate-data/audit.redb";

impl Source {
    /// What the command reads, for messages.
    fn name(&self) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => self.db.display().to_string(),
        }
    }
}

/// An URL query with its values percent-encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[derive(Args)]
pub struct Source {
    /// The audit database file of a stopped sidecar (a running one holds it exclusively: use
    /// --url).
    #[arg(long, default_value = DEFAULT_DB, conflicts_with = "url")]
    db: PathBuf,
    /// A running sidecar's admin listener, e.g. http://127.0.0.1:9482 (with the admin token).
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    admin_token: crate::cli::admin::AdminTokenArgs,
}

pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { source, pubkey } => verify(source, pubkey),
        AuditCommand::Export {
            source,
            format,
            checkpoints,
            from,
            output,
        } => export_cmd(source, format, checkpoints, from, output),
        AuditCommand::Timeline {
            run_id,
            source,
            json,
        } => {
            let entries = match &source.url {
                Some(url) => {
                    let query = query(&[("run", &run_id)]);
                    match request(
                        url,
                        &source.admin_token,
                        &format!("/v1/audit/timeline?{query}"),
                    )? {
                        Some(body) => {
                            serde_json::from_reader(BufReader::new(body)).with_context(|| {
                                format!("{url} answered a timeline that is not JSON")
                            })?
                        }
                        None => Vec::new(),
                    }
                }
                None => export::timeline(&AuditReader::open(&source.db)?, &run_id)?,
            };
            if entries.is_empty() {
                eprintln!("no entries for run {run_id:?} in {}", source.name());
                return Ok(ExitCode::from(1));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                print!("{}", export::render_timeline(&entries));
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Tail { source, from } => match &source.url {
            Some(url) => tail_url(url, &source.admin_token, from),
            None => tail(&source.db, from),
        },
        AuditCommand::Blob { hash, source } => {
            let body = match &source.url {
                Some(url) => {
                    let path = format!("/v1/audit/blob?{}", query(&[("sha256", &hash)]));
                    match request(url, &source.admin_token, &path)? {
                        Some(mut r) => {
                            let mut body = Vec::new();
                            r.read_to_end(&mut body)?;
                            Some(body)
                        }
                        None => None,
                    }
                }
                None => AuditReader::open(&source.db)?.blob(&hash)?,
            };
            match body {
                Some(body) => {
                    std::io::stdout().write_all(&body)?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("no blob {hash} in {}", source.name());
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::Pubkey { key } => {
            println!("{}", load_signer(&key)?.verifier_key());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_signer(path: &Path) -> Result<NoteSigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    NoteSigner::from_private_key(text.trim())
        .with_context(|| format!("{} is not a clawgate signing key", path.display()))
}

fn report(result: Result<Summary, Problem>) -> Result<ExitCode> {
    match result {
        Ok(s) => {
            println!(
                "ok: {} entries, {} checkpoints verified (newest covers {}), root {}",
                s.entries, s.checkpoints, s.checkpoint_size, s.root
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(p) => {
            println!("FAILED: {p}");
            Ok(ExitCode::from(1))
        }
    }
}

fn progress(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn verify(source: Source, pubkey: Option<String>) -> Result<ExitCode> {
    match source.url {
        Some(url) => {
            let Some(key) = pubkey else {
                bail!(
                    "--url needs --pubkey: pin the verifier key you trust (`clawgate audit pubkey` on the host)"
                );
            };
            let verifier = NoteVerifier::parse(&key).context("--pubkey is not a verifier key")?;
            let body = fetch(&url, &source.admin_token, "/v1/audit/export?format=jsonl")?;
            let bar = progress(0);
            let result = export::verify_export(BufReader::new(body), verifier, |n| {
                if n % 4096 == 0 {
                    bar.set_position(n)
                }
            });
            bar.finish_and_clear();
            report(result)
        }
        None => {
            let verifier = match pubkey {
                Some(key) => NoteVerifier::parse(&key).context("--pubkey is not a verifier key")?,
                None => {
                    let key = source.db.with_file_name("audit-signing.key");
                    eprintln!(
                        "note: no --pubkey given; using the key beside the database ({}). Pin the key for an independent check.",
                        key.display()
                    );
                    load_signer(&key)?.verifier()
                }
            };
            let bar = progress(0);
            let result = verify::verify_db(&source.db, verifier, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            report(result)
        }
    }
}

fn export_cmd(
    source: Source,
    format: ExportFormat,
    checkpoints: Option<PathBuf>,
    from: u64,
    output: Option<PathBuf>,
) -> Result<ExitCode> {
    let mut out: Box<dyn Write> = match &output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if let Some(url) = source.url {
        if checkpoints.is_some() {
            bail!("--checkpoints works with --db; a --url export has its checkpoints inline");
        }
        let fmt = match format {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Ocsf => "ocsf",
        };
        let mut body = fetch(
            &url,
            &source.admin_token,
            &format!("/v1/audit/export?format={fmt}&from={from}"),
        )?;
        std::io::copy(&mut body, &mut out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let reader = AuditReader::open(&source.db)?;
    let mut cp_file = match &checkpoints {
        Some(p) => Some(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => None,
    };
    let n = export::export(
        &reader,
        format,
        from,
        &mut out,
        cp_file.as_mut().map(|f| f as &mut dyn Write),
    )?;
    eprintln!("exported {n} entries");
    Ok(ExitCode::SUCCESS)
}

fn tail(db: &Path, from: Option<u64>) -> Result<ExitCode> {
    let reader = AuditReader::open(db)?;
    let mut next = match from {
        Some(n) => n,
        None => reader.head()?.size,
    };
    let stdout = std::io::stdout();
    loop {
        let mut out = stdout.lock();
        reader.for_each_entry(next, None, |seq, _, json| {
            out.write_all(json)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| AuditError::Storage(e.to_string()))?;
            next = seq + 1;
            Ok(true)
        })?;
        out.flush()?;
        drop(out);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Follow a running sidecar's log through its admin listener, one page of entries per poll.
fn tail_url(
    url: &str,
    admin: &crate::cli::admin::AdminTokenArgs,
    from: Option<u64>,
) -> Result<ExitCode> {
    let mut next = match from {
        Some(n) => n,
        None => {
            let status: serde_json::Value =
                serde_json::from_reader(BufReader::new(fetch(url, admin, "/v1/status")?))
                    .with_context(|| format!("{url}/v1/status is not JSON"))?;
            status["audit"]["entries"]
                .as_u64()
                .with_context(|| format!("{url}/v1/status does not give the audit log's size"))?
        }
    };
    let stdout = std::io::stdout();
    loop {
        let body = fetch(url, admin, &format!("/v1/audit/entries?from={next}"))?;
        let mut out = stdout.lock();
        let mut got = 0;
        for line in std::io::BufRead::lines(BufReader::new(body)) {
            let line = line?;
            let entry: serde_json::Value = serde_json::from_str(&line)
                .with_context(|| format!("{url} answered an entry that is not JSON"))?;
            let seq = entry["seq"]
                .as_u64()
                .with_context(|| format!("{url} answered an entry without a seq"))?;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            next = seq + 1;
            got += 1;
        }
        out.flush()?;
        drop(out);
        if got < clawgate::admin::MAX_AUDIT_ENTRIES_PAGE {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// GET a path from a running sidecar's admin listener (with the admin token, over TLS when
/// the URL is https), as a blocking reader over the streamed body.
fn fetch(
    base: &str,
    admin: &crate::cli::admin::AdminTokenArgs,
    path: &str,
) -> Result<impl Read + use<>> {
    match request(base, admin, path)? {
        Some(body) => Ok(body),
        None => bail!("{base}{path} answered 404 Not Found"),
    }
}

/// As [`fetch`], with `None` for a 404 (a run or blob the log does not have).
fn request(
    base: &str,
    admin: &crate::cli::admin::AdminTokenArgs,
    path: &str,
) -> Result<Option<ChannelReader>> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let token = admin.load()?;
    let client = admin.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<bytes::Bytes>>(16);
    let resp = runtime
        .block_on(client.get(&url).bearer_auth(&token).send())
        .with_context(|| format!("cannot reach {base}"))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        let status = resp.status();
        let body = runtime.block_on(resp.text()).unwrap_or_default();
        bail!("{url} answered {status}: {body}");
    }
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let mut resp = resp;
            loop {
                let item = match resp.chunk().await {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => return,
                    Err(e) => Err(std::io::Error::other(e)),
                };
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        })
    });
    Ok(Some(ChannelReader {
        rx,
        buf: bytes::Bytes::new(),
    }))
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    buf: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.buf = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}
