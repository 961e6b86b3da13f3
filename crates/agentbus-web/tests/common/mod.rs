//! Test harness: a server on 127.0.0.1:0 stopped on drop, and small HTTP
//! and WebSocket clients.
#![allow(dead_code)]

pub mod browser;

use std::net::SocketAddr;
use std::time::Duration;

use agentbus_web::WebApi;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// A running server; aborted when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(api: WebApi) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener, api)
    }

    pub fn on(listener: TcpListener, api: WebApi) -> Self {
        Self::serving(listener, api.router())
    }

    /// Serves a router built beforehand (possibly outside any runtime).
    pub fn serving(listener: TcpListener, app: axum::Router) -> Self {
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            agentbus_web::serve(listener, app).await.unwrap();
        });
        Self { addr, task }
    }

    /// Serves `api` with the connection limits set by `configure`.
    pub async fn with_limits(
        api: WebApi,
        configure: impl FnOnce(agentbus_web::Serve) -> agentbus_web::Serve,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = configure(agentbus_web::Serve::new(listener, api.router()));
        let task = tokio::spawn(async move {
            serve.run().await.unwrap();
        });
        Self { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A reply: status, headers and the body (as JSON when it is JSON).
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` message of a JSON error reply.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field in {}", String::from_utf8_lossy(&self.body)))
            .to_owned()
    }

    /// Fails the test, showing the body, unless the status is `status`.
    #[track_caller]
    pub fn assert_status(&self, status: u16) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

/// How long [`request`] waits for a whole reply before the test fails: a
/// reply that never ends (a stream opened where an error was due) fails
/// the test instead of hanging it.
pub const REPLY_WITHIN: Duration = Duration::from_secs(60);

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let exchange = async {
        let response = client
            .request(builder.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(REPLY_WITHIN, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: no whole reply within {REPLY_WITHIN:?}"))
}

/// Sends `raw` on a new connection and reads until the server closes it
/// or `within` passes; returns what was read.
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8], within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(raw).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(within, socket.read_to_end(&mut received)).await;
    String::from_utf8_lossy(&received).into_owned()
}

pub async fn get(url: &str) -> Reply {
    request("GET", url, &[], Bytes::new()).await
}

pub async fn post_json(url: &str, body: &str) -> Reply {
    request(
        "POST",
        url,
        &[("content-type", "application/json")],
        body.to_owned(),
    )
    .await
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect_ws(url: &str) -> Ws {
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
}

/// How long a test waits for what must come (a frame, an SSE line, a
/// client counted): only a failing test waits it out, so it is generous
/// enough for a machine loaded by a mutation run or a parallel build.
pub const ARRIVAL: Duration = Duration::from_secs(20);

/// The next text frame as JSON, or a panic after `within`.
pub async fn next_json(socket: &mut Ws, within: Duration) -> Value {
    loop {
        let message = tokio::time::timeout(within, socket.next())
            .await
            .expect("no websocket message in time")
            .expect("websocket closed")
            .expect("websocket error");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Reads a raw SSE response from `stream` until it holds a `data:` line,
/// or a panic after `within` (in all: keep-alive comments do not extend
/// it); returns everything read.
pub async fn read_until_sse_data(stream: &mut tokio::net::TcpStream, within: Duration) -> String {
    read_sse_until(stream, within, |text| {
        text.lines().any(|line| line.starts_with("data:"))
    })
    .await
}

/// Reads a raw SSE response from `stream` until `done` holds for what was
/// read, or a panic after `within` in all; returns everything read.
pub async fn read_sse_until(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    let reading = async {
        while !done(&text) {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed: {text}");
            text.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    };
    if tokio::time::timeout(within, reading).await.is_err() {
        panic!("sse data not in time; read so far: {text}");
    }
    text
}

/// A server on its own thread and runtime, like a separate process: when
/// dropped, every connection it holds goes with it (what a restart does).
pub struct ThreadServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadServer {
    /// Serves the API built by `make` (inside the server's runtime) on
    /// `addr` (port 0 for any).
    pub fn start(addr: SocketAddr, make: impl FnOnce() -> WebApi + Send + 'static) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, bound_at) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = bind_retrying(addr).await;
                bound.send(listener.local_addr().unwrap()).unwrap();
                let app = make().router();
                tokio::select! {
                    result = agentbus_web::serve(listener, app) => result.unwrap(),
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here drops every connection task.
        });
        let addr = bound_at.recv().unwrap();
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// The port may still be held for a moment by the server just stopped.
async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) if attempts < 100 => {
                attempts += 1;
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot bind {addr}: {error}"),
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until the server counts `n` live clients.
pub async fn wait_for_clients(server: &Server, n: u64) {
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    let mut seen = serde_json::Value::Null;
    while tokio::time::Instant::now() < deadline {
        seen = get(&server.url("/api/stats")).await.json()["clients"].clone();
        if seen == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw {n} clients within {ARRIVAL:?} (last saw {seen})");
}
