//! An opaque CONNECT tunnel: bytes both ways until either side closes, bounded by the
//! verdict's time limit and, downstream, its size limit; then a result pointer.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::gate::{Dispatched, Permit};

/// Buffer per direction: 64 KiB moves bulk transfers with an eighth of the syscalls tokio's
/// 8 KiB default needs.
const SPLICE_BUFFER: usize = 64 * 1024;

/// How a tunnel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelReport {
    /// Bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the client.
    pub bytes_down: u64,
    /// `None` when both sides closed normally.
    pub error: Option<String>,
}

/// Copy between `client` and `upstream` until both directions end, the deadline passes or
/// more than `max_down` bytes come back.
pub async fn splice<C, U>(
    mut client: C,
    upstream: U,
    max_down: Option<u64>,
    deadline: tokio::time::Instant,
) -> TunnelReport
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut metered = Metered {
        inner: upstream,
        read: 0,
        written: 0,
        max_read: max_down,
    };
    let copied = tokio::time::timeout_at(
        deadline,
        tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut metered,
            SPLICE_BUFFER,
            SPLICE_BUFFER,
        ),
    )
    .await;
    let error = match copied {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the tunnel reached its time limit and was closed".to_string()),
    };
    TunnelReport {
        bytes_up: metered.written,
        bytes_down: metered.read,
        error,
    }
}

/// Finish a tunnel's permit: what went down it, and how it ended (status 200: the tunnel
/// was established).
pub async fn finish(permit: Permit, report: TunnelReport) {
    let done = Dispatched {
        ok: report.error.is_none(),
        status: Some(200),
        size: Some(report.bytes_down),
        error: report.error,
        ..Dispatched::default()
    };
    permit.finish(done).await;
}

/// The upstream side of a tunnel, counting bytes each way and refusing to read past a limit.
struct Metered<S> {
    inner: S,
    read: u64,
    written: u64,
    max_read: Option<u64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.read += (buf.filled().len() - before) as u64;
            if let Some(max) = self.max_read
                && self.read > max
            {
                return Poll::Ready(Err(std::io::Error::other(format!(
                    "the tunnel exceeded its size limit of {max} bytes from the upstream"
                ))));
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.written += n as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
