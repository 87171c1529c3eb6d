//! Reading the audit log over the admin listener: the export (`clawgate audit verify|export
//! --url`, SIEM pulls), entries from a seq (`audit tail --url`), one run's timeline and kept
//! result bodies. The running sidecar holds its log file exclusively, so these endpoints are how
//! other processes read a live log.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use super::AdminState;
use crate::audit::AuditError;
use crate::audit::export::{self, ExportFormat};
use crate::http_api::{ApiError, ResponseBody, full_body, json_response};

/// Bytes buffered before a chunk is sent to the client.
const CHUNK: usize = 64 * 1024;

pub fn pubkey(state: &AdminState) -> Response<ResponseBody> {
    let (verifier_key, origin) = state.gate.audit_identity();
    json_response(
        StatusCode::OK,
        &json!({"verifier_key": verifier_key, "origin": origin}),
    )
}

/// `GET /v1/audit/export?format=jsonl|ocsf&from=SEQ`: streams the log. A checkpoint is signed
/// first, so a JSON-lines export is covered by a signature up to its last entry.
pub async fn export(state: &AdminState, query: Option<&str>) -> Response<ResponseBody> {
    let mut format = ExportFormat::Jsonl;
    let mut from = 0u64;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("format", "jsonl") => format = ExportFormat::Jsonl,
            ("format", "ocsf") => format = ExportFormat::Ocsf,
            ("from", n) => match n.parse() {
                Ok(n) => from = n,
                Err(_) => return bad_query(format!("from={n:?} is not a sequence number")),
            },
            (k, v) => {
                return bad_query(format!(
                    "unknown query parameter {k}={v}; use format=jsonl|ocsf and from=SEQ"
                ));
            }
        }
    }
    let reader = match state.gate.signed_audit_reader().await {
        Ok(r) => r,
        Err(e) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                e.to_string(),
            )
            .into_response();
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = export::export(&reader, format, from, &mut out, None) {
            // The status line is gone; end the body with an error so the client sees a cut.
            let _ = out
                .tx
                .blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    let body = BodyExt::boxed(StreamBody::new(stream.map(|r| r.map_err(Into::into))));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// Most entries one `GET /v1/audit/entries` answers (and its default).
pub const MAX_ENTRIES_PAGE: u64 = 10_000;

/// `GET /v1/audit/entries?from=SEQ&limit=N`: stored entries `from <= seq < from + limit` as
/// JSON lines, as written (no checkpoint is signed: a follower polls this).
pub async fn entries(state: &AdminState, query: Option<&str>) -> Response<ResponseBody> {
    let mut from = 0u64;
    let mut limit = MAX_ENTRIES_PAGE;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let n = v.parse::<u64>();
        match (k.as_ref(), n) {
            ("from", Ok(n)) => from = n,
            ("limit", Ok(n)) if (1..=MAX_ENTRIES_PAGE).contains(&n) => limit = n,
            ("from" | "limit", _) => {
                return bad_query(format!(
                    "{k}={v:?}: from is a sequence number, limit 1 to {MAX_ENTRIES_PAGE}"
                ));
            }
            (k, _) => {
                return bad_query(format!(
                    "unknown query parameter {k}={v}; use from=SEQ and limit=N"
                ));
            }
        }
    }
    let to = from.saturating_add(limit);
    read_blocking(state, "application/x-ndjson", move |reader| {
        let mut out = Vec::new();
        reader.for_each_entry(from, Some(to), |_, _, json| {
            out.extend_from_slice(json);
            out.push(b'\n');
            Ok(true)
        })?;
        Ok(Some(out))
    })
    .await
}

/// `GET /v1/audit/timeline?run=RUN_ID`: one run's entries in order, as a JSON array; 404 when
/// the log has none.
pub async fn timeline(state: &AdminState, query: Option<&str>) -> Response<ResponseBody> {
    let Some(run) = only_param(query, "run") else {
        return bad_query("give the run id: /v1/audit/timeline?run=RUN_ID".into());
    };
    read_blocking(state, "application/json", move |reader| {
        let entries = export::timeline(&reader, &run)?;
        Ok((!entries.is_empty()).then(|| serde_json::to_vec(&entries).unwrap_or_default()))
    })
    .await
}

/// `GET /v1/audit/blob?sha256=HEX`: a kept result body; 404 when the log has none.
pub async fn blob(state: &AdminState, query: Option<&str>) -> Response<ResponseBody> {
    let hash = only_param(query, "sha256").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    let Some(hash) = hash else {
        return bad_query("give the body's hash: /v1/audit/blob?sha256=<64 lowercase hex>".into());
    };
    read_blocking(state, "application/octet-stream", move |reader| {
        reader.blob(&hash)
    })
    .await
}

/// The value of `name` when the query is exactly `name=VALUE`.
fn only_param(query: Option<&str>, name: &str) -> Option<String> {
    let mut pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes());
    match (pairs.next(), pairs.next()) {
        (Some((k, v)), None) if k == name && !v.is_empty() => Some(v.into_owned()),
        _ => None,
    }
}

/// Run a read of the live log off the async workers; `None` answers 404.
async fn read_blocking(
    state: &AdminState,
    content_type: &'static str,
    read: impl FnOnce(crate::audit::AuditReader) -> Result<Option<Vec<u8>>, AuditError> + Send + 'static,
) -> Response<ResponseBody> {
    let unavailable = |message: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            message,
        )
        .into_response()
    };
    let reader = match state.gate.audit_reader() {
        Ok(r) => r,
        Err(e) => return unavailable(e.to_string()),
    };
    match tokio::task::spawn_blocking(move || read(reader)).await {
        Ok(Ok(Some(body))) => {
            let mut resp = Response::new(full_body(body));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        }
        Ok(Ok(None)) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the audit log has no such entry",
        )
        .into_response(),
        Ok(Err(e)) => unavailable(e.to_string()),
        Err(e) => unavailable(format!("the read stopped: {e}")),
    }
}

fn bad_query(message: String) -> Response<ResponseBody> {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).into_response()
}

/// A `Write` that sends full chunks down a channel from a blocking thread.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
