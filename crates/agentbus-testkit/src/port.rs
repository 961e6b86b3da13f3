//! Loopback ports for servers the tests start.

use std::net::TcpListener;
use std::sync::Mutex;

/// A loopback port that is free now and was not handed out before by this
/// process.
///
/// The port is found by binding `127.0.0.1:0` and closing the listener, so
/// another program may take it before the server binds it; the servers of
/// this crate check that they are the one answering and retry on another
/// port. Remembering the ports handed out keeps tests running in parallel
/// threads from getting the same one (the kernel hands a just-closed port
/// out again readily). It also serves as a port nothing listens on, for
/// "unreachable server" tests.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
