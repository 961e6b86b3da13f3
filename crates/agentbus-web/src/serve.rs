//! [`serve`] and [`Serve`]: run a router on a listener, with the limits a
//! server reachable by untrusted clients needs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::connection::Connection;

/// The default time a client gets to send a request's headers, 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a connection may move no byte before it is closed, 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default largest number of open connections, 2048.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;

/// How long to wait before accepting again after an error that is not the
/// client's (no file descriptor left, no memory).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// Serves `app` on `listener` (HTTP/1.1, WebSocket upgrades included) with
/// the default limits, until the process ends.
///
/// The same as `Serve::new(listener, app).run().await`; see [`Serve`] for
/// the limits and graceful shutdown.
pub async fn serve(listener: TcpListener, app: Router) -> io::Result<()> {
    Serve::new(listener, app).run().await
}

/// Serves a router on a listener (HTTP/1.1, WebSocket upgrades included),
/// with limits on slow, idle and numerous connections.
///
/// - **Header read timeout** ([`header_read_timeout`](Self::header_read_timeout),
///   default 10 s): a connection waiting for a request, new or kept alive
///   after a reply, whose request headers have not all arrived in that time
///   is closed. This bounds both clients that trickle their headers and
///   idle keep-alive connections.
/// - **Idle timeout** ([`idle_timeout`](Self::idle_timeout), default 60 s):
///   a connection on which no byte moves either way for that long while a
///   request is served (a client that stopped sending its body, or stopped
///   reading the reply) is closed. Server-Sent Events send a comment every
///   15 s, so a live stream that is read is never idle (keep the timeout
///   above that). A WebSocket, once
///   upgraded, is governed by the API's `send_timeout` instead.
/// - **Connection limit** ([`max_connections`](Self::max_connections),
///   default 2048, WebSockets and SSE streams included): at the limit, new
///   connections are not accepted; they wait in the system's listen queue
///   until one closes, while the open ones are served as usual. Keep it
///   below the process's open-file limit (`ulimit -n`).
///
/// When accepting fails for a reason other than the client (no file
/// descriptor left), the loop pauses half a second and tries again: it
/// neither spins nor stops.
///
/// Every request carries the local address of its connection, so the
/// [`WebApi`](crate::WebApi)'s `Host` check accepts the address the server
/// listens on. Protocol errors hyper answers by itself (a request target
/// over 64 KiB, headers over 400 KiB, a malformed request) get the same
/// JSON error body as every other error.
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// use std::time::Duration;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = agentbus_web::Serve::new(listener, app)
///     .header_read_timeout(Some(Duration::from_secs(5)))
///     .max_connections(512)
///     .graceful_shutdown(async {
///         let _ = stopped.await;
///     });
/// let running = tokio::spawn(server.run());
/// // ... later: stop accepting, let the requests in progress finish.
/// let _ = stop.send(());
/// running.await.expect("the server task panicked")
/// # }
/// ```
#[must_use = "a server does nothing until `run` is awaited"]
pub struct Serve {
    listener: TcpListener,
    app: Router,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    max_connections: usize,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("graceful_shutdown", &self.shutdown.is_some())
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Serves `app` on `listener` with the default limits.
    pub fn new(listener: TcpListener, app: Router) -> Self {
        Self {
            listener,
            app,
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown: None,
        }
    }

    /// The time a client gets to send a request's headers (default 10 s);
    /// `None` waits forever.
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The time a connection may move no byte while a request is served
    /// (default 60 s); `None` waits forever.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The largest number of open connections (default 2048, at least 1);
    /// more wait to be accepted.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Stops accepting when `signal` resolves, lets every connection finish
    /// the request it is serving (upgraded WebSockets are not waited for),
    /// then returns.
    pub fn graceful_shutdown(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// Serves until the [`graceful_shutdown`](Self::graceful_shutdown)
    /// signal (without one, until the process ends). Accept errors are
    /// logged and retried, so the only `Ok` is after the shutdown; the
    /// `io::Result` keeps the signature of `axum::serve`.
    pub async fn run(self) -> io::Result<()> {
        let Self {
            listener,
            app,
            header_read_timeout,
            idle_timeout,
            max_connections,
            shutdown,
        } = self;
        let mut shutdown = shutdown.unwrap_or_else(|| Box::pin(std::future::pending()));
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let limit = Arc::new(Semaphore::new(max_connections));
        // Each connection holds a receiver: `stopping` tells them to finish,
        // and `closed` says when the last one has.
        let (stopping, connections) = watch::channel(false);
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&limit).acquire_owned() => permit.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, "cannot accept connections; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            let connection = Connection {
                app: app.clone(),
                http: http.clone(),
                idle_timeout,
                stopping: connections.clone(),
            };
            tokio::spawn(connection.serve(stream, permit));
        }
        drop(listener);
        drop(connections);
        stopping.send_replace(true);
        stopping.closed().await;
        Ok(())
    }
}

/// An accept error caused by one client, not by the server.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
