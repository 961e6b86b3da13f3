//! One connection of [`Serve`](crate::Serve): hyper's HTTP/1.1 over a
//! socket that tracks when bytes last moved, holds the connection's slot
//! until it closes (an upgraded WebSocket included), and gives hyper's own
//! error replies a JSON body.

use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower_service::Service;

use crate::origin::LocalAddr;

/// What a connection task needs besides its socket.
pub(crate) struct Connection {
    pub(crate) app: Router,
    pub(crate) http: http1::Builder,
    pub(crate) idle_timeout: Option<Duration>,
    /// Changes when the server shuts down.
    pub(crate) stopping: watch::Receiver<bool>,
}

impl Connection {
    /// Serves requests on `stream` until the client leaves, a timeout
    /// closes it, or the server shuts down.
    pub(crate) async fn serve(mut self, stream: TcpStream, permit: OwnedSemaphorePermit) {
        let local = stream.local_addr().ok();
        let activity = Arc::new(Activity::new());
        let io = Watched {
            stream,
            activity: Arc::clone(&activity),
            replacement: None,
            _permit: permit,
        };
        let app = self.app;
        let requests = Arc::clone(&activity);
        let service = service_fn(move |mut request: Request<Incoming>| {
            requests.awaiting_reply.store(true, Ordering::Release);
            if let Some(local) = local {
                request.extensions_mut().insert(LocalAddr(local));
            }
            let mut app = app.clone();
            async move { app.call(request).await }
        });
        let mut conn = pin!(self
            .http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades());
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                _ = self.stopping.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = idle(&activity, self.idle_timeout) => {
                    tracing::debug!("no byte moved on a connection for the idle timeout; closing it");
                    return;
                }
            }
        }
    }
}

/// Resolves once no byte has moved for `timeout`; never without one.
async fn idle(activity: &Activity, timeout: Option<Duration>) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        let deadline = activity.last_moved() + timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// When bytes last moved on a connection, and whether a reply of the
/// application is due.
struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last read or write.
    moved_at: AtomicU64,
    /// Set when a request reaches the application, cleared when its reply
    /// starts: a reply written while it is clear is hyper's own.
    awaiting_reply: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            moved_at: AtomicU64::new(0),
            awaiting_reply: AtomicBool::new(false),
        }
    }

    fn moved(&self) {
        let millis = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.moved_at.store(millis, Ordering::Relaxed);
    }

    fn last_moved(&self) -> Instant {
        self.opened + Duration::from_millis(self.moved_at.load(Ordering::Relaxed))
    }
}

/// The socket as hyper sees it.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// A JSON error reply written in place of hyper's empty one, and how
    /// much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
    /// The connection's slot, freed when the socket is dropped.
    _permit: OwnedSemaphorePermit,
}

impl Watched {
    /// Writes what is left of the replacement reply.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((reply, written)) = &mut self.replacement {
            if *written == reply.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &reply[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            self.activity.moved();
        }
        Poll::Ready(Ok(()))
    }

    /// Whether a write of `len` bytes starting with `first` is hyper's own
    /// error reply; if so, queues the JSON one in its place.
    fn replaced(&mut self, first: &[u8], len: usize) -> bool {
        if !(first.starts_with(b"HTTP/1.1 ") || first.starts_with(b"HTTP/1.0 ")) {
            return false;
        }
        if first.get(9) == Some(&b'1') {
            // `100 Continue` comes before the application's reply.
            return false;
        }
        if self.activity.awaiting_reply.swap(false, Ordering::AcqRel) {
            return false;
        }
        match protocol_error_reply(first, len) {
            Some(reply) => {
                self.replacement = Some((reply, 0));
                true
            }
            None => false,
        }
    }
}

/// The JSON reply for a bodiless 4xx head that hyper wrote by itself.
fn protocol_error_reply(head: &[u8], len: usize) -> Option<Vec<u8>> {
    let status: u16 = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    let bodiless = head.len() == len
        && head.ends_with(b"\r\n\r\n")
        && head
            .to_ascii_lowercase()
            .windows(b"\r\ncontent-length: 0\r\n".len())
            .any(|window| window == b"\r\ncontent-length: 0\r\n");
    if !(400..500).contains(&status) || !bodiless {
        return None;
    }
    let status = axum::http::StatusCode::from_u16(status).ok()?;
    let message = match status.as_u16() {
        400 => "malformed http request".to_owned(),
        414 => "the request target (path and query) is too long".to_owned(),
        431 => "the request headers are too large".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let body = serde_json::json!({ "error": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len(),
        )
        .into_bytes(),
    )
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.stream).poll_read(cx, buf));
        if buf.filled().len() > before {
            this.activity.moved();
        }
        Poll::Ready(result)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if this.replaced(buf, buf.len()) {
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        if n > 0 {
            this.activity.moved();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if let Some(first) = bufs.iter().find(|buf| !buf.is_empty()) {
            if this.replaced(first, len) {
                return Poll::Ready(Ok(len));
            }
        }
        let n = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            this.activity.moved();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(head: &str, len: usize) -> Option<(String, serde_json::Value)> {
        let reply = String::from_utf8(protocol_error_reply(head.as_bytes(), len)?).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        let length = format!("\r\ncontent-length: {}\r\n", body.len());
        assert!(head.contains(&length), "{reply}");
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{reply}"
        );
        assert!(head.ends_with("\r\nconnection: close"), "{reply}");
        Some((
            head.lines().next().unwrap().to_owned(),
            serde_json::from_str(body).unwrap(),
        ))
    }

    fn bodiless(status: &str) -> String {
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\ndate: now\r\n\r\n")
    }

    #[test]
    fn hypers_own_bodiless_client_errors_get_a_json_body() {
        for (status, line, error) in [
            (
                "400 Bad Request",
                "HTTP/1.1 400 Bad Request",
                "malformed http request",
            ),
            (
                "414 URI Too Long",
                "HTTP/1.1 414 URI Too Long",
                "the request target (path and query) is too long",
            ),
            (
                "431 Request Header Fields Too Large",
                "HTTP/1.1 431 Request Header Fields Too Large",
                "the request headers are too large",
            ),
            (
                "405 Method Not Allowed",
                "HTTP/1.1 405 Method Not Allowed",
                "method not allowed",
            ),
            ("499 Whatever", "HTTP/1.1 499 ", "error"),
        ] {
            let head = bodiless(status);
            assert_eq!(
                reply_to(&head, head.len()),
                Some((line.to_owned(), serde_json::json!({ "error": error }))),
                "{head}"
            );
        }
    }

    #[test]
    fn other_replies_are_left_alone() {
        for status in [
            "500 Internal Server Error",
            "399 Odd",
            "304 Not Modified",
            "200 OK",
            "4xx Bad",
            "40",
        ] {
            let head = bodiless(status);
            assert_eq!(reply_to(&head, head.len()), None, "{head}");
        }
        let head = bodiless("400 Bad Request");
        // A body follows in the same write.
        assert_eq!(reply_to(&head, head.len() + 5), None);
        // Not the whole head, or a head announcing a body.
        assert_eq!(reply_to(&head[..head.len() - 2], head.len() - 2), None);
        let with_body = "HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n";
        assert_eq!(reply_to(with_body, with_body.len()), None);
        let no_length = "HTTP/1.1 400 Bad Request\r\n\r\n";
        assert_eq!(reply_to(no_length, no_length.len()), None);
    }
}
