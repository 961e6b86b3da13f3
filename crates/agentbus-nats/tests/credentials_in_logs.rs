//! Credentials written in the server URL show in no log line, the NATS
//! client's DEBUG lines included. Its own test binary: it installs the
//! process-wide subscriber that captures every thread's logs.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use agentbus::EventBus;
use agentbus_nats::{BridgeConfig, NatsBridge};
use common::runtime;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn credentials_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();
    let port = agentbus_testkit::free_port();
    for url in [
        format!("nats://ann:natspass@127.0.0.1:{port}"),
        format!("nats://tokenpass@127.0.0.1:{port}"),
    ] {
        let refused = runtime().block_on(NatsBridge::connect(
            &url,
            &EventBus::new(),
            BridgeConfig::default().name("logs-test"),
        ));
        assert!(refused.is_err(), "nothing listens on {port}");
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains(&format!("127.0.0.1:{port}")),
        "the client logged its attempts: {logs}"
    );
    for secret in ["natspass", "tokenpass"] {
        assert!(!logs.contains(secret), "{secret} is in the logs:\n{logs}");
    }
}
