//! `agentbus serve`'s flags for exposure: `--allow-origin`, `--allow-host`,
//! `--header-timeout` (the limits themselves are tested in agentbus-web).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{run, Server};

/// Sends one request with `headers` and returns the reply's status line.
fn status(url: &str, path: &str, headers: &[&str]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nconnection: close\r\n");
    if !headers
        .iter()
        .any(|h| h.to_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("host: {addr}\r\n"));
    }
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = socket.read_to_string(&mut reply);
    reply.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn allow_origin_and_allow_host_widen_the_defaults() {
    let server = Server::start(&[
        "--store",
        "none",
        "--allow-origin",
        "https://app.example",
        "--allow-host",
        "bus.example",
        "--allow-host",
        "other.example:9000",
    ]);
    let url = &server.url;
    assert!(status(url, "/api/events", &[]).contains(" 200 "));
    for (headers, wanted) in [
        (vec!["origin: https://evil.example"], " 403 "),
        (vec!["origin: https://app.example"], " 200 "),
        (vec!["host: evil.example"], " 403 "),
        (vec!["host: bus.example"], " 200 "),
        (vec!["host: other.example:9000"], " 200 "),
        (vec!["host: other.example:9001"], " 403 "),
    ] {
        let line = status(url, "/api/health", &headers);
        assert!(line.contains(wanted), "{headers:?}: {line}");
    }
}

#[test]
fn header_timeout_cuts_off_a_client_that_trickles_its_headers() {
    let server = Server::start(&["--store", "none", "--header-timeout", "1s"]);
    let mut socket = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    let mut writer = socket.try_clone().unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let trickle = std::thread::spawn({
        let finished = Arc::clone(&finished);
        move || {
            // 8 s of headers, one byte every 100 ms.
            for byte in "GET /api/health HTTP/1.1\r\nx-slow: "
                .bytes()
                .chain([b'x'; 50])
            {
                if writer.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            finished.store(true, Ordering::SeqCst);
        }
    });
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut received = Vec::new();
    let closed = socket.read_to_end(&mut received).is_ok();
    assert!(
        closed && !finished.load(Ordering::SeqCst),
        "the server waited for the whole trickle"
    );
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    drop(socket);
    trickle.join().unwrap();
}

#[test]
fn bad_exposure_flags_are_usage_errors() {
    for args in [
        ["--allow-origin", "evil.example"],
        ["--allow-origin", "https://app.example/path"],
        ["--allow-host", "https://bus.example"],
        ["--max-connections", "0"],
        ["--header-timeout", "soon"],
    ] {
        let output = run(&["serve", args[0], args[1]]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}
