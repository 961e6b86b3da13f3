//! Requests refused before anything is read or published: a declared body
//! over the limit, integers JSON would round.

mod common;

use std::time::Duration;

use agentbus::EventBus;
use agentbus_web::WebApi;
use common::*;

/// The reply's status line, headers and body, read from a raw connection.
async fn read_reply(stream: &mut tokio::net::TcpStream) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a reply in time")
            .unwrap();
        bytes.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if n == 0 || text.len() >= end + 4 + length {
                return (head, text[end + 4..].to_owned());
            }
        }
        if n == 0 {
            return (text, String::new());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_over_the_limit_gets_413_before_100_continue() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(WebApi::new(EventBus::new()).body_limit(1024)).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
              content-length: 1000000000\r\nexpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let (head, body) = read_reply(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error["error"],
        "request body is larger than the limit of 1024 bytes"
    );

    // Within the limit, the client is invited to send the body.
    let event = br#"{"type":"task.created"}"#;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        event.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = read_reply(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");
    stream
        .write_all(br#"{"type":"task.created"}"#)
        .await
        .unwrap();
    let (head, body) = read_reply(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_64_bits_are_refused_not_rounded() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let url = server.url("/api/events");
    for (body, expected) in [
        (
            r#"[{"type":"task.created"},{"type":"task.created","data":{"big":18446744073709551616}}]"#,
            "event 1: integer 18446744073709551616 is beyond 64 bits",
        ),
        (
            r#"{"type":"task.created","data":{"list":[1,-9223372036854775809]}}"#,
            "integer -9223372036854775809 is beyond 64 bits",
        ),
        (
            r#"[{"type":"task.created","data":{"s":"[1,2,\"x\"]","n":123456789012345678901234567890}}]"#,
            "event 0: integer 123456789012345678901234567890 is beyond 64 bits",
        ),
    ] {
        let reply = post_json(&url, body).await;
        assert_eq!(
            reply.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            reply.error().starts_with(expected),
            "{body}: {}",
            reply.error()
        );
    }
    // The shortest literal beyond 64 bits (19 digits) is found wherever it
    // falls in the body: the first look only probes every 19th byte.
    for padding in 0..19 {
        let body = format!(
            r#"{{"type":"task.created",{}"data":{{"n":-9223372036854775809}}}}"#,
            " ".repeat(padding)
        );
        let reply = post_json(&url, &body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert!(
            reply
                .error()
                .starts_with("integer -9223372036854775809 is beyond 64 bits"),
            "{body}: {}",
            reply.error()
        );
    }
    assert_eq!(bus.stats().events_published, 0, "nothing published");

    // The largest 64-bit integers, floats with exponents and digits in
    // strings go through exactly.
    let reply = post_json(
        &url,
        r#"{"type":"task.created","data":{"u":18446744073709551615,"i":-9223372036854775808,"f":1e300,"s":"123456789012345678901234567890"}}"#,
    )
    .await;
    reply.assert_status(200);
    let history = bus.history(&agentbus::HistoryQuery::new());
    assert_eq!(history[0].data["u"].as_u64(), Some(u64::MAX));
    assert_eq!(history[0].data["i"].as_i64(), Some(i64::MIN));
}
