//! Out of file descriptors: the server says so in the log, pauses between
//! attempts instead of spinning on `accept`, and serves the clients that
//! waited once descriptors are free again.
//!
//! Alone in its test binary: it lowers the whole process's descriptor
//! limit, which would break any test running beside it.
#![cfg(target_os = "linux")]

mod common;

use agentbus::EventBus;
use agentbus_testkit::logs::ProcessLogs;
use agentbus_web::WebApi;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const CLIENTS: usize = 6;

/// The soft limit on open descriptors, or sets it (the hard one unchanged).
fn soft_limit(set: Option<libc::rlim_t>) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the call's duration.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(read, 0);
    if let Some(soft) = set {
        let lowered = libc::rlimit {
            rlim_cur: soft,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `lowered` is a valid `rlimit`; a soft limit under the hard
        // one is always allowed.
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) };
        assert_eq!(set, 0);
    }
    limit.rlim_cur
}

/// Takes every free descriptor number up to the highest in use, so that
/// the next descriptor anyone opens is a new highest: the files to keep
/// open, and the limit that leaves no descriptor free.
fn fill_descriptors() -> (Vec<std::fs::File>, libc::rlim_t) {
    use std::os::fd::AsRawFd;
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .unwrap();
    let mut files = Vec::new();
    loop {
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = file.as_raw_fd();
        files.push(file);
        if fd > highest {
            return (files, fd as libc::rlim_t + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_server_pauses_logs_and_serves_the_waiting_clients_later() {
    let logs = ProcessLogs::start();
    let server = Server::start(WebApi::new(EventBus::new())).await;
    assert_eq!(get(&server.url("/api/health")).await.status, 200);
    // Every descriptor the clients need, taken before the limit drops.
    let sockets: Vec<TcpSocket> = (0..CLIENTS).map(|_| TcpSocket::new_v4().unwrap()).collect();
    // Connections pile up in the listen queue: `accept` fails with EMFILE.
    let (fillers, full) = fill_descriptors();
    let before = soft_limit(Some(full));
    let mut clients = Vec::new();
    for socket in sockets {
        clients.push(socket.connect(server.addr).await.unwrap());
    }
    // A few of the server's 500 ms pauses.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    soft_limit(Some(before));
    drop(fillers);

    for mut client in clients {
        client
            .write_all(b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(ARRIVAL, client.read_to_end(&mut reply))
            .await
            .expect("a waiting client is served once descriptors are free")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let logged = logs.finish();
    let errors = logged
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("cannot accept connections"))
        .count();
    // One a pause: about three in 1.5 s, not one per failed `accept`.
    assert!((1..=6).contains(&errors), "{errors} errors:\n{logged}");
}
