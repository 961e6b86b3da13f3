//! Safe to expose: foreign web pages (`Origin`, `Host`), SSE clients that
//! stop reading, slow and idle connections, the connection limit, JSON for
//! every error, and the security headers.

mod common;

use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_web::WebApi;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn a_foreign_origin_is_refused_on_every_route() {
    let server = Server::start(WebApi::new(EventBus::new())).await;
    for path in [
        "/",
        "/api/health",
        "/api/events",
        "/api/stats",
        "/api/stream",
        "/api/openapi.json",
        "/ws",
        "/no/such/route",
    ] {
        let reply = request("GET", &server.url(path), &[("origin", EVIL)], "").await;
        assert_eq!(reply.status, 403, "{path}");
        assert!(
            reply
                .error()
                .contains("origin `https://evil.example` is not allowed"),
            "{path}"
        );
    }
    let reply = request(
        "POST",
        &server.url("/api/events"),
        &[("origin", EVIL), ("content-type", "application/json")],
        r#"{"type":"task.created"}"#,
    )
    .await;
    assert_eq!(reply.status, 403);
    // Sandboxed frames and local files send `Origin: null`.
    let reply = request("GET", &server.url("/api/events"), &[("origin", "null")], "").await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn a_websocket_handshake_from_a_foreign_page_is_refused() {
    let server = Server::start(WebApi::new(EventBus::new())).await;
    let mut handshake = server.ws_url("/ws").into_client_request().unwrap();
    handshake
        .headers_mut()
        .insert("origin", EVIL.parse().unwrap());
    match tokio_tungstenite::connect_async(handshake).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert!(body["error"].as_str().unwrap().contains("is not allowed"));
        }
        Ok(_) => panic!("the handshake from {EVIL} was accepted"),
        Err(other) => panic!("unexpected error {other}"),
    }
    // The dashboard's own page is let in.
    let mut handshake = server.ws_url("/ws").into_client_request().unwrap();
    let own = format!("http://{}", server.addr);
    handshake
        .headers_mut()
        .insert("origin", own.parse().unwrap());
    tokio_tungstenite::connect_async(handshake).await.unwrap();
}

#[tokio::test]
async fn the_own_origin_and_listed_origins_are_accepted() {
    let server =
        Server::start(WebApi::new(EventBus::new()).allowed_origins(["https://App.example/"])).await;
    let own = format!("http://{}", server.addr);
    let local = format!("http://localhost:{}", server.addr.port());
    for (origin, host) in [
        (own.as_str(), None),
        ("https://app.example", None),
        (
            local.as_str(),
            Some(format!("localhost:{}", server.addr.port())),
        ),
    ] {
        let mut headers = vec![("origin", origin)];
        if let Some(host) = &host {
            headers.push(("host", host.as_str()));
        }
        let reply = request("GET", &server.url("/api/events"), &headers, "").await;
        assert_eq!(
            reply.status,
            200,
            "{origin}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // A listed origin's pages may read the replies (CORS), a preflight
    // included; the server's own pages need no CORS.
    let reply = request(
        "GET",
        &server.url("/api/events"),
        &[("origin", "https://app.example")],
        "",
    )
    .await;
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let reply = request("GET", &server.url("/api/events"), &[("origin", &own)], "").await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
    let reply = request(
        "OPTIONS",
        &server.url("/api/events"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(reply.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("content-type"));
    // Only an OPTIONS naming a method is a preflight: a plain OPTIONS goes
    // to the routes (which have none), a GET naming one is a GET.
    let reply = request(
        "OPTIONS",
        &server.url("/api/events"),
        &[("origin", "https://app.example")],
        "",
    )
    .await;
    assert_eq!(reply.status, 405);
    let reply = request(
        "GET",
        &server.url("/api/events"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.json()["events"].is_array());
    let reply = request(
        "OPTIONS",
        &server.url("/api/events"),
        &[("origin", EVIL), ("access-control-request-method", "POST")],
        "",
    )
    .await;
    assert_eq!(reply.status, 403);
    // Another port of the same host is another origin.
    let other_port = format!("http://127.0.0.1:{}", server.addr.port().wrapping_add(1));
    let reply = request(
        "GET",
        &server.url("/api/events"),
        &[("origin", &other_port)],
        "",
    )
    .await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn a_foreign_host_is_refused_even_on_health() {
    let server = Server::start(
        WebApi::new(EventBus::new()).allowed_hosts(["bus.example", "api.example:8080"]),
    )
    .await;
    let port = server.addr.port();
    for (host, status) in [
        // DNS rebinding: a name the attacker controls now points here.
        ("evil.example".to_owned(), 403),
        (format!("evil.example:{port}"), 403),
        (format!("localhost:{port}"), 200),
        ("localhost".to_owned(), 200),
        (format!("127.0.0.2:{port}"), 200),
        (format!("[::1]:{port}"), 200),
        // What a server bound to every interface prints as its address.
        (format!("0.0.0.0:{port}"), 200),
        ("bus.example".to_owned(), 200),
        ("BUS.example:443".to_owned(), 200),
        ("api.example:8080".to_owned(), 200),
        ("api.example:8081".to_owned(), 403),
        ("10.1.2.3".to_owned(), 403),
    ] {
        let reply = request("GET", &server.url("/api/health"), &[("host", &host)], "").await;
        assert_eq!(reply.status, status, "{host}");
        if status == 403 {
            assert!(reply.error().contains("is not allowed"), "{host}");
        }
    }
}

/// The rule is the router's, so it also holds when the router is mounted
/// in another server (which tells the router nothing about its address).
#[tokio::test]
async fn a_mounted_router_checks_host_and_origin_too() {
    let app = axum::Router::new().nest("/bus", WebApi::new(EventBus::new()).router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/bus/api/events");
    assert_eq!(
        request("GET", &url, &[("origin", EVIL)], "").await.status,
        403
    );
    assert_eq!(
        request("GET", &url, &[("host", "evil.example")], "")
            .await
            .status,
        403
    );
    assert_eq!(request("GET", &url, &[], "").await.status, 200);
    task.abort();
}

/// Publishes padded events until `done` says stop, or panics after `within`.
async fn flood_until(bus: &EventBus, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let padding = "z".repeat(16 << 10);
    let deadline = tokio::time::Instant::now() + within;
    let mut n = 0;
    loop {
        for _ in 0..50 {
            bus.publish(Event::new(EventType::MemoryRecalled).with_data(json!({"pad": padding})))
                .await;
            n += 1;
        }
        if done().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still not done after {n} events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_stops_reading_is_dropped() {
    let bus = EventBus::new();
    let server =
        Server::start(WebApi::new(bus.clone()).send_timeout(Duration::from_millis(300))).await;
    let mut never_reads = TcpStream::connect(server.addr).await.unwrap();
    never_reads
        .write_all(b"GET /api/stream HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let stats = server.url("/api/stats");
    for _ in 0..500 {
        if get(&stats).await.json()["sse_clients"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(&stats).await.json()["sse_clients"], 1);
    flood_until(&bus, Duration::from_secs(60), async || {
        get(&stats).await.json()["sse_clients"] == 0
    })
    .await;
    // A client that reads is served as before.
    let reply = raw_exchange(
        server.addr,
        b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop(never_reads);
}

/// Reads until the server closes the connection; panics after `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    match tokio::time::timeout(within, socket.read_to_end(&mut received)).await {
        Ok(_) => received,
        Err(_) => panic!(
            "the server kept the connection open; it sent {:?}",
            String::from_utf8_lossy(&received)
        ),
    }
}

#[tokio::test]
async fn headers_sent_one_byte_a_second_are_cut_off() {
    let server = Server::with_limits(WebApi::new(EventBus::new()), |serve| {
        serve.header_read_timeout(Some(Duration::from_secs(1)))
    })
    .await;
    let socket = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = socket.into_split();
    let trickle = tokio::spawn(async move {
        for byte in b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: 0123456789\r\n\r\n" {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the trickling client was never cut off");
    assert!(!String::from_utf8_lossy(&received).contains("200 OK"));
    trickle.abort();
}

#[tokio::test]
async fn a_connection_that_moves_no_byte_is_closed_after_the_idle_timeout() {
    let server = Server::with_limits(WebApi::new(EventBus::new()), |serve| {
        serve
            .header_read_timeout(None)
            .idle_timeout(Some(Duration::from_secs(1)))
    })
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let received = closed_within(&mut silent, Duration::from_secs(30)).await;
    assert!(received.is_empty());
}

/// The idle timeout counts from the last byte moved, not from the start: an
/// SSE stream whose events keep coming outlives it several times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_keeps_moving_bytes_outlives_the_idle_timeout() {
    let bus = EventBus::new();
    let server = Server::with_limits(WebApi::new(bus.clone()), |serve| {
        serve.idle_timeout(Some(Duration::from_millis(600)))
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /api/stream HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    wait_for_clients(&server, 1).await;
    let mut text = String::new();
    for n in 0..10 {
        let event = Event::new(EventType::TaskCreated);
        let id = event.id.to_string();
        bus.publish(event).await;
        text = read_sse_until(&mut stream, ARRIVAL, |text| text.contains(&id)).await;
        if n < 9 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert!(text.contains("data:"), "{text}");
}

/// Bytes read count as much as bytes written: a request body that keeps
/// arriving, a byte at a time, outlives the idle timeout several times over
/// and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_keeps_arriving_outlives_the_idle_timeout() {
    let server = Server::with_limits(WebApi::new(EventBus::new()), |serve| {
        serve.idle_timeout(Some(Duration::from_millis(800)))
    })
    .await;
    let body = br#"{"type":"task.created"}"#;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // 23 bytes 150 ms apart: over four idle timeouts in all.
    for byte in body {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let sent = stream.write_all(&[*byte]).await;
        assert!(sent.is_ok(), "closed while the body was arriving: {sent:?}");
    }
    let reply = read_reply(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// At the limit, new connections wait to be accepted; the open ones are
/// served meanwhile, and a waiting one is served once a slot frees.
#[tokio::test]
async fn idle_sockets_beyond_the_limit_wait_and_do_not_stall_the_others() {
    let server = Server::with_limits(WebApi::new(EventBus::new()), |serve| {
        serve.max_connections(4)
    })
    .await;
    let health = b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    let mut within = TcpStream::connect(server.addr).await.unwrap();
    within.write_all(health).await.unwrap();
    read_reply(&mut within).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Beyond the limit: connected by the kernel, not accepted.
    let mut beyond = Vec::new();
    for _ in 0..10 {
        beyond.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut waiting = beyond.pop().unwrap();
    waiting.write_all(health).await.unwrap();
    for _ in 0..3 {
        within.write_all(health).await.unwrap();
        let reply = read_reply(&mut within).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut byte))
            .await
            .is_err(),
        "a connection beyond the limit was served"
    );
    // Freeing slots lets the waiting connections in, in order.
    drop(beyond);
    drop(idle);
    let reply = read_reply(&mut waiting).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// Reads one `{"status":"ok"}` reply (or whatever arrives within 10 s).
async fn read_reply(socket: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !received.ends_with(b"}") {
        match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// The JSON body of a raw reply.
fn raw_error(reply: &str) -> String {
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not json ({e}): {reply:?}"));
    json["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_error_body_is_json() {
    let server = Server::start(WebApi::new(EventBus::new())).await;
    let reply = request("DELETE", &server.url("/api/events"), &[], "").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert!(
        reply.error().contains("method DELETE is not allowed"),
        "{}",
        reply.error()
    );
    assert!(reply.headers.contains_key("allow"));
    let reply = request("PUT", &server.url("/api/stats"), &[], "").await;
    assert_eq!(reply.status, 405);
    reply.error();

    let reply = get(&server.url("/api/events/%ff")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert!(
        reply.error().starts_with("invalid url: invalid utf-8"),
        "{}",
        reply.error()
    );

    // Errors hyper answers by itself, before any routing.
    let long = format!(
        "GET /api/events?type={} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        "a".repeat(70_000)
    );
    let reply = raw_exchange(server.addr, long.as_bytes(), Duration::from_secs(10)).await;
    assert!(reply.starts_with("HTTP/1.1 414"), "{reply:.200}");
    assert!(raw_error(&reply).contains("too long"));

    let huge = format!(
        "GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-pad: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let reply = raw_exchange(server.addr, huge.as_bytes(), Duration::from_secs(10)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:.200}");
    assert!(raw_error(&reply).contains("too large"));

    let reply = raw_exchange(
        server.addr,
        b"NOT A REQUEST\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:.200}");
    raw_error(&reply);

    // After a good reply on the same connection too.
    let reply = raw_exchange(
        server.addr,
        format!(
            "GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\nGET /{} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
            "c".repeat(70_000)
        )
        .as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    let second = &reply[reply.find("HTTP/1.1 414").expect("no 414")..];
    assert!(raw_error(second).contains("too long"));
}

#[tokio::test]
async fn every_reply_carries_the_security_headers() {
    let server = Server::start(WebApi::new(EventBus::new())).await;
    for path in ["/api/health", "/api/events", "/nope", "/"] {
        let reply = get(&server.url(path)).await;
        assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(reply.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(reply.headers["referrer-policy"], "no-referrer", "{path}");
        let policy = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(policy.starts_with("default-src 'none'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
    }
    let policy = get(&server.url("/")).await.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'sha256-"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_progress_and_stops_accepting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        agentbus_web::Serve::new(listener, WebApi::new(EventBus::new()).router())
            .graceful_shutdown(async {
                let _ = stopped.await;
            })
            .run(),
    );
    // A request whose headers are half sent when the shutdown starts.
    let mut in_progress = TcpStream::connect(addr).await.unwrap();
    in_progress
        .write_all(b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let reply = raw_exchange(
        addr,
        b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    stop.send(()).unwrap();
    in_progress.write_all(b"\r\n").await.unwrap();
    let reply = closed_within(&mut in_progress, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

/// An upgraded WebSocket keeps its connection slot until it closes.
#[tokio::test]
async fn a_websocket_counts_against_the_connection_limit() {
    let server = Server::with_limits(WebApi::new(EventBus::new()), |serve| {
        serve.max_connections(1)
    })
    .await;
    let socket = connect_ws(&server.ws_url("/ws")).await;
    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting
        .write_all(b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut byte))
            .await
            .is_err(),
        "served beyond the limit while the websocket is open"
    );
    drop(socket);
    let reply = read_reply(&mut waiting).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// A reply the client stopped reading moves no byte: the idle timeout
/// closes the connection, whatever the handler's own timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_reply_is_closed_after_the_idle_timeout() {
    let bus = EventBus::new();
    let server = Server::with_limits(
        WebApi::new(bus.clone()).send_timeout(Duration::from_secs(3600)),
        |serve| serve.idle_timeout(Some(Duration::from_secs(1))),
    )
    .await;
    let mut never_reads = TcpStream::connect(server.addr).await.unwrap();
    never_reads
        .write_all(b"GET /api/stream HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let stats = server.url("/api/stats");
    for _ in 0..500 {
        if get(&stats).await.json()["sse_clients"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    flood_until(&bus, Duration::from_secs(60), async || {
        get(&stats).await.json()["sse_clients"] == 0
    })
    .await;
    drop(never_reads);
}

/// The token never shows in `Debug` output (a log line of the config, a
/// panic message): only that one is set.
#[test]
fn the_token_is_redacted_in_debug_output() {
    let api = WebApi::new(EventBus::new()).token(Some("hunter2-very-secret".into()));
    let shown = format!("{api:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("token: Some(Token(..))"), "{shown}");
    let shown = format!("{:?}", WebApi::new(EventBus::new()));
    assert!(shown.contains("token: None"), "{shown}");
}

/// `Serve`'s `Debug` shows the limits it will enforce.
#[tokio::test]
async fn serve_shows_its_limits_in_debug_output() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve = agentbus_web::Serve::new(listener, WebApi::new(EventBus::new()).router())
        .idle_timeout(None)
        .max_connections(7);
    let shown = format!("{serve:?}");
    for part in [
        "Serve {",
        "header_read_timeout: Some(",
        "idle_timeout: None",
        "max_connections: 7",
        "graceful_shutdown: false",
    ] {
        assert!(shown.contains(part), "no `{part}` in {shown}");
    }
}
