//! What every front door that forwards traffic itself (MCP gateway, egress proxy) shares:
//! streaming a response body through while measuring it, enforcing the verdict's size and
//! time limits on it, and finishing the action's permit with what it measured (status, size,
//! SHA-256, and the body itself when small) once it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::gate::{Dispatched, Permit};
use crate::http_api::{BoxError, ResponseBody};

/// How a forwarded body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyReport {
    pub size: u64,
    /// Hex SHA-256 of the bytes that passed through.
    pub sha256: String,
    /// `None` when the body ended normally.
    pub error: Option<String>,
    /// The whole body, when it was no larger than the keep limit.
    pub kept: Option<Vec<u8>>,
}

/// Limits on a forwarded body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The body is cut off (with an error) past this many bytes.
    pub max_bytes: Option<u64>,
    /// The body is cut off once this instant passes.
    pub deadline: Option<tokio::time::Instant>,
    /// Bodies up to this size are kept for the blob table.
    pub keep_bytes: usize,
}

/// A response body passed through unchanged, measured as it goes.
pub struct MeteredBody {
    inner: ResponseBody,
    limits: BodyLimits,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    size: u64,
    hasher: Sha256,
    kept: Option<Vec<u8>>,
    /// The bytes so far end at a Server-Sent Events boundary (a blank line).
    at_event_boundary: bool,
    done: Option<oneshot::Sender<BodyReport>>,
}

impl MeteredBody {
    pub fn new(
        inner: ResponseBody,
        limits: BodyLimits,
    ) -> (MeteredBody, oneshot::Receiver<BodyReport>) {
        let (tx, rx) = oneshot::channel();
        let body = MeteredBody {
            inner,
            sleep: limits
                .deadline
                .map(|d| Box::pin(tokio::time::sleep_until(d))),
            limits,
            size: 0,
            hasher: Sha256::new(),
            kept: (limits.keep_bytes > 0).then(Vec::new),
            at_event_boundary: false,
            done: Some(tx),
        };
        (body, rx)
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(tx) = self.done.take() {
            let hasher = std::mem::take(&mut self.hasher);
            let _ = tx.send(BodyReport {
                size: self.size,
                sha256: hex::encode(hasher.finalize()),
                error,
                kept: self.kept.take(),
            });
        }
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        if self.done.is_some() {
            // An event-stream client may hang up once it has read the event carrying its
            // answer; that delivered everything. Anything else was cut short.
            let error = (!(self.size > 0 && self.at_event_boundary))
                .then(|| "the client went away before the body ended".to_string());
            self.finish(error);
        }
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done.is_none() {
            return Poll::Ready(None);
        }
        if let Some(sleep) = &mut this.sleep
            && sleep.as_mut().poll(cx).is_ready()
        {
            let msg = "the upstream did not finish the response within the time limit";
            this.finish(Some(msg.into()));
            return Poll::Ready(Some(Err(msg.into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.size += data.len() as u64;
                    if let Some(max) = this.limits.max_bytes
                        && this.size > max
                    {
                        let msg = format!("the response exceeded its size limit of {max} bytes");
                        this.finish(Some(msg.clone()));
                        return Poll::Ready(Some(Err(msg.into())));
                    }
                    this.hasher.update(data);
                    this.at_event_boundary = data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n");
                    if let Some(kept) = &mut this.kept {
                        if kept.len() + data.len() <= this.limits.keep_bytes {
                            kept.extend_from_slice(data);
                        } else {
                            this.kept = None;
                        }
                    }
                }
                // A body of known length may not be polled again after its last byte.
                if this.inner.is_end_stream() {
                    this.finish(None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Some(e.to_string()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Finish `permit` once the body's report arrives (in the background: the response is
/// already streaming to the caller). The action counts as running until then.
pub fn finish_when_done(permit: Permit, status: u16, report: oneshot::Receiver<BodyReport>) {
    tokio::spawn(async move {
        let Ok(body) = report.await else {
            return;
        };
        let ok = body.error.is_none() && (200..300).contains(&status);
        let done = Dispatched {
            ok,
            status: Some(status),
            sha256: Some(body.sha256),
            size: Some(body.size),
            error: body.error,
            body: body.kept,
        };
        permit.finish(done).await;
    });
}

/// Finish `permit` for a dispatch that got no answer from its upstream (in the background).
pub fn fail(permit: Permit, error: String) {
    tokio::spawn(permit.fail(error));
}
