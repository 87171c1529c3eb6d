//! Exports: JSON lines for verification (`{"entry": {...}, "hash": "..."}` and
//! `{"checkpoint": "..."}`), OCSF API Activity events for SIEMs, and run timelines.

use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AuditError;
use super::checkpoint::NoteVerifier;
use super::merkle::Hash;
use super::store::AuditReader;
use super::verify::{ChainVerifier, Problem, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One `{"entry", "hash"}` line per entry, checkpoints inline or in a side file.
    Jsonl,
    /// OCSF API Activity (class 6003) events, one per line.
    Ocsf,
}

fn io_err(e: std::io::Error) -> AuditError {
    AuditError::Storage(format!("write failed: {e}"))
}

/// Write entries `from..` of a database. Checkpoints go inline after the entry that completes
/// their tree size, or to `checkpoints` when given. Returns the number of entries written.
pub fn export(
    reader: &AuditReader,
    format: ExportFormat,
    from: u64,
    out: &mut dyn Write,
    mut checkpoints: Option<&mut dyn Write>,
) -> Result<u64, AuditError> {
    let notes = reader.checkpoints()?;
    let mut next_note = notes.iter().peekable();
    while next_note.peek().is_some_and(|(size, _)| *size <= from) {
        next_note.next();
    }
    let mut count = 0u64;
    reader.for_each_entry(from, None, |seq, hash, json| {
        match format {
            ExportFormat::Jsonl => {
                out.write_all(b"{\"entry\":").map_err(io_err)?;
                out.write_all(json).map_err(io_err)?;
                let hash = hash.map(hex::encode).unwrap_or_default();
                writeln!(out, ",\"hash\":\"{hash}\"}}").map_err(io_err)?;
                while let Some((size, note)) = next_note.next_if(|(size, _)| *size == seq + 1) {
                    let line = json!({"checkpoint": note, "size": size});
                    match checkpoints.as_mut() {
                        Some(w) => writeln!(w, "{line}").map_err(io_err)?,
                        None => writeln!(out, "{line}").map_err(io_err)?,
                    }
                }
            }
            ExportFormat::Ocsf => {
                let entry: Value = serde_json::from_slice(json)
                    .map_err(|e| AuditError::Corrupt(format!("seq {seq}: {e}")))?;
                writeln!(out, "{}", to_ocsf(&entry)).map_err(io_err)?;
            }
        }
        count += 1;
        Ok(true)
    })?;
    out.flush().map_err(io_err)?;
    Ok(count)
}

#[derive(Deserialize)]
struct ExportLine<'a> {
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    checkpoint: Option<String>,
}

/// Verify a JSON-lines export (as written by [`export`] from seq 0) against a pinned key.
/// `on_entry` is called with the running count (for progress).
pub fn verify_export(
    input: impl BufRead,
    verifier: NoteVerifier,
    mut on_entry: impl FnMut(u64),
) -> Result<Summary, Problem> {
    let mut chain = ChainVerifier::new(verifier);
    let mut line_no = 0u64;
    for line in input.lines() {
        line_no += 1;
        let line = line.map_err(|e| Problem {
            seq: None,
            what: format!("line {line_no}: cannot read: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ExportLine = serde_json::from_str(&line).map_err(|e| Problem {
            seq: Some(chain.entries_seen()),
            what: format!("line {line_no} is not an export line: {e}"),
        })?;
        if let Some(note) = parsed.checkpoint {
            chain.add_checkpoint(note)?;
            continue;
        }
        let Some(raw) = parsed.entry else {
            return Err(Problem {
                seq: Some(chain.entries_seen()),
                what: format!("line {line_no} has neither an entry nor a checkpoint"),
            });
        };
        let recorded = parsed.hash.as_deref().and_then(parse_hash);
        let seq = chain.entries_seen();
        // Exports hold canonical bytes; a re-serialized export is canonicalized again.
        let bytes = raw.get().as_bytes();
        let canonical;
        let bytes = if recorded.is_some_and(|h| h == super::merkle::leaf_hash(bytes)) {
            bytes
        } else {
            let value: Value = serde_json::from_str(raw.get()).map_err(|e| Problem {
                seq: Some(seq),
                what: e.to_string(),
            })?;
            canonical = serde_json_canonicalizer::to_vec(&value).map_err(|e| Problem {
                seq: Some(seq),
                what: e.to_string(),
            })?;
            &canonical[..]
        };
        chain.push(seq, recorded, bytes)?;
        on_entry(chain.entries_seen());
    }
    chain.finish()
}

fn parse_hash(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}

/// One entry as an OCSF API Activity event.
pub fn to_ocsf(entry: &Value) -> Value {
    let kind = entry["kind"].as_str().unwrap_or("");
    let ts_ms = entry["ts"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let decision = entry["decision"].as_str();
    let (activity_id, activity_name) = match (kind, entry["effect"].as_str()) {
        ("decision", _) => (99, "Tool Call"),
        ("result", _) => (99, "Tool Result"),
        _ => (99, "Other"),
    };
    let severity_id = match entry["risk"].as_str() {
        Some("low") => 1,
        Some("medium") => 3,
        Some("high") => 4,
        Some("critical") => 5,
        _ => 0,
    };
    let (status_id, status) = match (decision, entry["ok"].as_bool()) {
        (Some("allow"), _) | (_, Some(true)) => (1, "Success"),
        (Some(_), _) | (_, Some(false)) => (2, "Failure"),
        _ => (0, "Unknown"),
    };
    let (disposition_id, disposition) = match decision {
        Some("allow") => (1, "Allowed"),
        Some("deny") => (2, "Blocked"),
        Some("pending") => (99, "Pending approval"),
        _ => (0, "Unknown"),
    };
    let action = &entry["action"];
    let operation = action["tool"]
        .as_str()
        .or_else(|| action["http"]["method"].as_str())
        .unwrap_or(kind);
    json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 6003 * 100 + activity_id,
        "time": ts_ms,
        "severity_id": severity_id,
        "status_id": status_id,
        "status": status,
        "disposition_id": disposition_id,
        "disposition": disposition,
        "message": entry["reasons"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")),
        "actor": {
            "user": {"uid": entry["agent"]["id"], "name": entry["agent"]["authenticated_as"]},
            "session": {"uid": entry["agent"]["session"]},
        },
        "api": {
            "operation": operation,
            "service": {"name": action["server"].as_str().unwrap_or("openclaw")},
            "request": {"uid": entry["decision_id"]},
        },
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "clawgate", "vendor_name": "clawgate", "version": env!("CARGO_PKG_VERSION")},
            "uid": entry["hash"],
            "sequence": entry["seq"],
            "log_name": "audit",
        },
        "unmapped": entry,
    })
}

/// The entries of one run, in order.
pub fn timeline(reader: &AuditReader, run_id: &str) -> Result<Vec<Value>, AuditError> {
    let mut out = Vec::new();
    for seq in reader.run_seqs(run_id)? {
        if let Some(entry) = reader.entry(seq)? {
            out.push(entry);
        }
    }
    Ok(out)
}

/// A readable table of a timeline.
pub fn render_timeline(entries: &[Value]) -> String {
    let mut rows = vec![[
        "TIME".to_string(),
        "SEQ".to_string(),
        "EVENT".to_string(),
        "TARGET".to_string(),
        "OUTCOME".to_string(),
        "DETAIL".to_string(),
    ]];
    for e in entries {
        let action = &e["action"];
        let target = action["tool"]
            .as_str()
            .map(|t| match action["server"].as_str() {
                Some(s) => format!("{s}/{t}"),
                None => t.to_string(),
            })
            .or_else(|| {
                action["http"]["host"]
                    .as_str()
                    .map(|h| format!("{} {h}", action["http"]["method"].as_str().unwrap_or("")))
            })
            .or_else(|| e["decision_id"].as_str().map(|d| format!("decision {d}")))
            .unwrap_or_default();
        let outcome = match e["kind"].as_str() {
            Some("decision") => format!(
                "{} ({}, {})",
                e["decision"].as_str().unwrap_or("?"),
                e["effect"].as_str().unwrap_or("?"),
                e["risk"].as_str().unwrap_or("?")
            ),
            Some("result") => {
                if e["ok"].as_bool() == Some(true) {
                    "ok".into()
                } else {
                    "error".into()
                }
            }
            _ => e["event"].as_str().unwrap_or("").to_string(),
        };
        let detail = match e["kind"].as_str() {
            Some("result") => format!(
                "{} ms, sha256 {}",
                e["duration_ms"],
                e["result_sha256"].as_str().unwrap_or("-")
            ),
            _ => {
                let mut d = e["reasons"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                if let Some(who) = e["approver"].as_str() {
                    d = format!("by {who} {d}");
                }
                d
            }
        };
        rows.push([
            e["ts"].as_str().unwrap_or("").to_string(),
            e["seq"].to_string(),
            e["kind"].as_str().unwrap_or("").to_string(),
            target,
            outcome,
            detail,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &rows {
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&format!("{:<w$}  ", r[i], w = *w));
        }
        s.push_str(&r[5]);
        s.push('\n');
    }
    s
}
