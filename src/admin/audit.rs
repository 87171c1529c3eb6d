//! Audit export over the admin listener, for `clawgate audit verify --url` and SIEM pulls.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use super::AdminState;
use crate::audit::export::{self, ExportFormat};
use crate::http_api::{ApiError, ResponseBody, json_response};

/// Bytes buffered before a chunk is sent to the client.
const CHUNK: usize = 64 * 1024;

pub fn pubkey(state: &AdminState) -> Response<ResponseBody> {
    let audit = state.audit();
    json_response(
        StatusCode::OK,
        &json!({"verifier_key": audit.verifier_key(), "origin": audit.origin()}),
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
    let audit = state.audit();
    if let Err(e) = audit.checkpoint_now().await {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            e.to_string(),
        )
        .into_response();
    }
    let reader = match audit.reader() {
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
