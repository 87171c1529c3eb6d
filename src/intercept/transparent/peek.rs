//! What a redirected connection opens with, read without consuming it (`MSG_PEEK`): a TLS
//! ClientHello (its server name), an HTTP/1 request head, or anything else (raw TCP). The
//! bytes stay in the socket for whoever serves the connection next.

use std::time::Duration;

use tokio::net::TcpStream;

/// Largest opening looked at: a whole HTTP/1 request head (the other listeners allow 64 KiB),
/// or a ClientHello spread over several TLS records.
pub const MAX_PEEK: usize = 64 * 1024;

/// What the connection opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// A TLS ClientHello, with its server name (SNI) when it sent one.
    Tls { sni: Option<String> },
    /// A complete HTTP/1.x request head.
    Http,
    /// Anything else: judged by its address alone.
    Raw,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeekError {
    #[error("the client sent nothing within {0} ms")]
    Silent(u128),
    #[error("the client's opening was not complete within {0} ms")]
    Incomplete(u128),
    #[error("the client closed the connection before sending anything complete")]
    Closed,
    #[error("the client's opening is larger than {MAX_PEEK} bytes")]
    TooLarge,
    #[error("cannot read the connection: {0}")]
    Io(String),
}

/// Classify the bytes seen so far: `None` means they are the start of something that needs
/// more bytes to tell.
pub fn classify(bytes: &[u8]) -> Option<Opening> {
    match bytes.first() {
        None => None,
        // A TLS handshake record (content type 22).
        Some(0x16) => tls(bytes),
        Some(_) => http(bytes),
    }
}

fn tls(bytes: &[u8]) -> Option<Opening> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rd = bytes;
    while !rd.is_empty() {
        match acceptor.read_tls(&mut rd) {
            Ok(0) => break,
            Ok(_) => {}
            // Its buffer is full: more than any ClientHello needs.
            Err(_) => return Some(Opening::Tls { sni: None }),
        }
    }
    match acceptor.accept() {
        Ok(Some(accepted)) => Some(Opening::Tls {
            sni: accepted
                .client_hello()
                .server_name()
                .map(|s| s.trim_end_matches('.').to_ascii_lowercase()),
        }),
        Ok(None) => None,
        // Not a ClientHello rustls can read: no name to go by, judged by address.
        Err(_) => Some(Opening::Raw),
    }
}

/// Request methods that make an opening plain HTTP (RFC 9110, PATCH, WebDAV). An opening
/// with another first word is raw TCP at once: a short greeting (`ping`) is not held back
/// waiting to become an HTTP request.
const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"CONNECT",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
];

fn http(bytes: &[u8]) -> Option<Opening> {
    // Servers skip empty lines before a request line (RFC 9112, 2.2), so this does too: a
    // request that opens with CRLF must not pass as raw bytes.
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &bytes[start..];
    // The method ends at any whitespace: lenient servers split request lines on tabs too.
    match rest.iter().position(|b| b.is_ascii_whitespace()) {
        None if METHODS.iter().any(|m| m.starts_with(rest)) => return None,
        None => return Some(Opening::Raw),
        Some(end) if !METHODS.contains(&&rest[..end]) => return Some(Opening::Raw),
        Some(_) => {}
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => None,
        // Complete, too many headers for a look, or malformed: a request line that opens
        // with a method is HTTP, and the HTTP server reads it (refusing what it cannot
        // parse). Passed on as raw bytes, a head this parser rejects but a lenient upstream
        // accepts would reach it judged only by its address.
        Ok(httparse::Status::Complete(_)) | Err(_) => Some(Opening::Http),
    }
}

/// Peek at `stream` until its opening can be classified, for at most `timeout` in all. A
/// client that sends nothing, or half an opening, is refused when the time is up (fail
/// closed: a connection is never passed on unjudged).
pub async fn peek_opening(stream: &TcpStream, timeout: Duration) -> Result<Opening, PeekError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_PEEK];
    let mut seen = 0usize;
    let mut pause = Duration::from_millis(1);
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        let n = match peeked {
            Err(_) if seen == 0 => return Err(PeekError::Silent(timeout.as_millis())),
            Err(_) => return Err(PeekError::Incomplete(timeout.as_millis())),
            Ok(Err(e)) => return Err(PeekError::Io(e.to_string())),
            Ok(Ok(0)) => return Err(PeekError::Closed),
            Ok(Ok(n)) => n,
        };
        if n > seen {
            seen = n;
            pause = Duration::from_millis(1);
            if let Some(opening) = classify(&buf[..n]) {
                return Ok(opening);
            }
            if n == buf.len() {
                return Err(PeekError::TooLarge);
            }
        } else {
            // Peeking again returns the same bytes at once until more arrive: wait a little
            // (backing off to 20 ms) instead of spinning.
            if tokio::time::Instant::now() + pause > deadline {
                return Err(PeekError::Incomplete(timeout.as_millis()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello(name: &str) -> Vec<u8> {
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn client_hellos_whole_split_and_nameless() {
        let hello = client_hello("API.Example.com");
        assert_eq!(
            classify(&hello),
            Some(Opening::Tls {
                sni: Some("api.example.com".into())
            })
        );
        // Part of it: wait for the rest, never guess.
        assert_eq!(classify(&hello[..hello.len() / 2]), None);
        // rustls sends no SNI for an address.
        assert_eq!(
            classify(&client_hello("192.0.2.1")),
            Some(Opening::Tls { sni: None })
        );
        // A handshake record that is no ClientHello.
        let mut bogus = hello.clone();
        bogus[5] = 0x02;
        assert_eq!(classify(&bogus), Some(Opening::Raw));
    }

    #[tokio::test]
    async fn a_silent_client_is_given_up_on_in_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let started = std::time::Instant::now();
        let got = peek_opening(&server, Duration::from_millis(100)).await;
        assert_eq!(got, Err(PeekError::Silent(100)));
        assert!(started.elapsed() < Duration::from_secs(2));
        // Half an HTTP head, then silence: incomplete, also bounded.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\nHost: a")
            .await
            .unwrap();
        let got = peek_opening(&server, Duration::from_millis(100)).await;
        assert_eq!(got, Err(PeekError::Incomplete(100)));
        // The bytes are still there for whoever reads next.
        let mut buf = [0u8; 3];
        let n = server.peek(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET");
    }

    #[test]
    fn http_heads_and_other_bytes() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(Opening::Http)
        );
        assert_eq!(classify(b"SSH-2.0-OpenSSH_9.6\r\n"), Some(Opening::Raw));
        assert_eq!(classify(b"\x00\x01binary"), Some(Opening::Raw));
        // A greeting that is no method is raw at once; a method's prefix waits for more.
        assert_eq!(classify(b"ping"), Some(Opening::Raw));
        assert_eq!(classify(b"HELO mail.example\r\n"), Some(Opening::Raw));
        assert_eq!(classify(b"PO"), None);
        // Openings a lenient server takes for a request are requests here too: a leading
        // empty line, a tab after the method, a head httparse refuses.
        assert_eq!(classify(b"\r\n"), None);
        assert_eq!(
            classify(b"\r\nPOST /deploy HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(Opening::Http)
        );
        assert_eq!(
            classify(b"POST\t/deploy HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(Opening::Http)
        );
        assert_eq!(
            classify(b"POST /deploy HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Some(Opening::Http)
        );
        // A TLS record header alone needs more bytes.
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), None);
    }
}
